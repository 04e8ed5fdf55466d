"""Option values converted without pydantic: Typer 0.2x converts every option's value
through a pydantic TypeAdapter, built at each start, which costs about 0.15 s of CPU (the
import of pydantic and one adapter per option): a third of a short ``segue protect`` run
(docs/benchmarks.md, "A small run"). segue's options are plain str, int, float, bool and
Path values, or Optional ones (each command checks its own ranges), which this converts
as Typer would, with the same "Invalid value" usage error. Options of any other type keep
Typer's way. This sets Typer's per-option converter (``_runtime_param``), an internal of
Typer 0.2x: a Typer without it is left alone, and tests/test_newcomer.py notices a change."""

from __future__ import annotations

import functools
import types
import typing
from pathlib import Path
from typing import Any, Callable

import typer

_TRUTH = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}


def _bool(value: str) -> bool:
    return _TRUTH[str(value).lower()]  # KeyError: not a boolean, a usage error below


_PLAIN: dict[Any, Callable[[str], Any]] = {str: str, int: int, float: float, bool: _bool, Path: Path}
_NAMES = {int: "integer", float: "number", bool: "boolean"}


def _plain_type(annotation: Any) -> Any:
    """``annotation`` without Optional, if it is one of the plain types; else None."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        annotation = args[0] if len(args) == 1 else None
    return annotation if annotation in _PLAIN else None


@functools.lru_cache(maxsize=1)
def _plain_converter() -> type | None:
    """Typer's converter class for plain values, or None for a Typer without runtime params."""
    try:
        from typer._coercion import RuntimeParam
    except ImportError:
        return None

    class Plain(RuntimeParam):
        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            kind = self.annotation
            if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
                return value
            try:
                return _PLAIN[kind](value)
            except (TypeError, ValueError, KeyError):
                raise typer.BadParameter(f"{value!r} is not a valid {_NAMES.get(kind, kind.__name__)}.",
                                         ctx=ctx, param=param) from None

    return Plain


def light_coercion(params: Any) -> Any:
    """Give each plain option in ``params`` (a list of them, one option or None) a converter
    that needs no pydantic; returns ``params``."""
    plain = _plain_converter()
    for param in params if isinstance(params, list) else [params] if params is not None else []:
        descriptor = getattr(param, "type_descriptor", None)
        if plain is None or descriptor is None or getattr(param, "_runtime_param", False) is not None:
            continue
        if getattr(param, "multiple", False) or getattr(param, "nargs", 1) != 1 or descriptor.file_annotation is not None:
            continue
        kind = _plain_type(descriptor.annotation)
        if kind is not None and descriptor.parameter_info.parser is None:
            param._runtime_param = plain(parameter_info=descriptor.parameter_info, annotation=kind)
    return params
