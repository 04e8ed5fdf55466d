"""Root Typer app. Errors become exit codes here and nowhere else:
0 success, 1 the command ran but some work failed, 2 usage or input error.

Option values converted without pydantic: Typer 0.2x converts every option's value
through a pydantic TypeAdapter, built at each start, which costs about 0.15 s of CPU (the
import of pydantic and one adapter per option): a third of a short ``segue protect`` run
(docs/benchmarks.md, "A small run"). segue's options are plain str, int, float, bool and
Path values, or Optional ones (each command checks its own ranges), which this converts
as Typer would, with the same "Invalid value" usage error. Options of any other type keep
Typer's way. This sets Typer's per-option converter (``_runtime_param``), an internal of
Typer 0.2x: a Typer without it is left alone, and tests/test_newcomer.py notices a change."""

from __future__ import annotations

import functools
import importlib
import sys
import types
import typing
from pathlib import Path
from typing import Any, Callable

import typer
from typer.core import TyperCommand, TyperGroup

from .. import __version__
from ..errors import SegueError, disk_full, is_disk_full
from rich.markup import escape

from .render import print_json, stderr_console

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


class LightGroup(TyperGroup):
    """The root group, its options converted without pydantic (:func:`light_coercion`)."""

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        light_coercion(self.params)
        return super().make_context(info_name, args, parent, **extra)

    def get_help_option(self, ctx: Any) -> Any:
        return light_coercion(super().get_help_option(ctx))


class PlainUsageCommand(TyperCommand):
    """Usage lines as Unix tools write them (``segue protect [OPTIONS] INPUT``): Typer 0.2x
    wraps required arguments in braces (``{INPUT}``), which reads like a set to choose from."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                name = param.metavar or (param.name or "").upper()
                pieces.append(name if param.required else f"[{name}]")
        return pieces

    def get_help_option(self, ctx: Any) -> Any:
        return light_coercion(super().get_help_option(ctx))

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        """A usage error (an unknown option, a value of the wrong type) is also a JSON error
        object on stdout when ``--json`` was asked for: a script reads stdout only."""
        wants_json = "--json" in args
        light_coercion(self.params)  # its options converted without pydantic: a third of a short run's CPU
        try:
            return super().make_context(info_name, list(args), parent, **extra)
        except typer.TyperException as exc:  # Typer's own click: UsageError, BadParameter, NoSuchOption
            if wants_json and getattr(exc, "exit_code", None) == 2 and hasattr(exc, "format_message"):
                context = getattr(exc, "ctx", None)
                hint = f"see {context.command_path if context is not None else 'segue'} --help"
                print_json(error_record(exc.format_message(), hint, 2))
            raise


def error_record(message: str, hint: str | None, exit_code: int) -> dict[str, Any]:
    """The JSON object that ``--json`` writes on stdout for an error, besides the message on stderr."""
    return {"type": "error", "error": message, "hint": hint, "exit_code": exit_code}


def _report(message: str, hint: str | None) -> None:
    stderr_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    if hint:
        stderr_console.print(f"  [yellow]hint:[/] {escape(hint)}", highlight=False, soft_wrap=True)


def _reporting_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a SegueError into its message, its hint and its exit code (and, with --json,
    a JSON error object on stdout)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        def report(message: str, hint: str | None, exit_code: int) -> typer.Exit:
            _report(message, hint)
            if kwargs.get("json_output"):
                print_json(error_record(message, hint, exit_code))
            return typer.Exit(exit_code)

        try:
            return command(*args, **kwargs)
        except SegueError as exc:
            raise report(exc.message, exc.hint, exc.exit_code) from exc
        except OSError as exc:  # a file or folder the command was pointed at: name it, never a traceback
            if is_disk_full(exc):  # not a question of existence or permissions
                full = disk_full(exc.filename or "its output", exc)
                raise report(full.message, full.hint, 2) from exc
            where = f" {exc.filename}" if exc.filename else ""
            raise report(f"cannot use{where}: {exc.strerror or exc}",
                         "check that the path exists, that it is a regular file or folder as asked, and its "
                         "permissions", 2) from exc

    return wrapper


# protect first: it is the command most people come for.
COMMANDS = ("protect", "train", "cluster", "evaluate", "export", "serve")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"segue {__version__}")
        raise typer.Exit()


def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Protect face photos from unauthorised face-recognition training."""


def build_app(names: tuple[str, ...] = COMMANDS) -> typer.Typer:
    """The root app with the commands ``names`` (each module imported here)."""
    app = typer.Typer(
        name="segue",
        cls=LightGroup,
        help="Protect face photos from unauthorised face-recognition training (Segue, ICASSP 2025).",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    for name in names:
        module = importlib.import_module(f"{__package__}.{name}")
        app.command(name, help=module.__doc__, cls=PlainUsageCommand)(_reporting_errors(getattr(module, name)))
    app.callback()(_root)  # a callback keeps the group even with one command: `segue protect ...` as ever
    return app


def __getattr__(name: str) -> Any:
    """``app``, with every command, made on first use (``from segue_cli.cli.app import app``)."""
    if name == "app":
        globals()["app"] = built = build_app()
        return built
    raise AttributeError(name)


def main() -> None:
    # Typer builds every registered command's options at each start, and each command module
    # imports its own libraries: a run registers only the command it names (about 0.04 s of
    # CPU, a tenth of a short protect run); --help and an unknown name get all of them.
    named = next((arg for arg in sys.argv[1:] if not arg.startswith("-")), None)
    build_app((named,) if named in COMMANDS else COMMANDS)()
