"""One exception family. Each error carries a hint that tells the user what to do.

The CLI maps these to exit codes in one place (``segue_cli.cli.app``): usage and input
errors exit 2, anything that ran but failed on some files exits 1.
"""

from __future__ import annotations

from typing import Iterable, Mapping


class SegueError(Exception):
    """Base class: a message for the user plus an optional hint on how to fix it."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class InputError(SegueError):
    """Bad user input: a missing folder, an unreadable image, a malformed labels file."""


class ConfigError(SegueError):
    """An option value that cannot work (negative epsilon, unknown device, ...)."""


class ArtifactError(SegueError):
    """A checkpoint or ONNX file that is missing, tampered with or of an unknown format."""


class OutputError(SegueError):
    """An output that would overwrite something, land inside the input, or cannot be written."""


class DiskFullError(OutputError):
    """The disk (or the user's quota) is full: the run stops at the first such write, since
    every later one would fail the same way."""


def disk_full(target: object, exc: OSError) -> DiskFullError:
    return DiskFullError(f"the disk is full ({exc.strerror or exc}) writing {target}",
                         "free some space, then run the same command again: what was written is kept, and only the "
                         "missing outputs are made")


def is_disk_full(exc: BaseException) -> bool:
    import errno

    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def input_not_found(target: object) -> InputError:
    """The error for an INPUT that does not exist (raised early by the CLI, before the
    heavy imports, and by the library)."""
    return InputError(f"input not found: {target}", "give an existing folder, an image file, or - to read paths from stdin")


def check_options(checks: list[tuple[bool, str]]) -> None:
    """Raise a ConfigError with the message of the first check that failed: every
    command's option checks, in one form."""
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


def check_choice(option: str, value: object, choices: Iterable[str]) -> None:
    """A named option (a format, a face mode, a strength, an engine, ...) is one of its
    registry's names: the one check, error and message of every entry point (the CLI,
    ProtectConfig, Protector, the server)."""
    names = tuple(choices)
    if not isinstance(value, str) or value not in names:
        raise ConfigError(f"unknown {option} {quoted(value) if isinstance(value, str) else repr(value)}",
                          f"use one of {', '.join(names)}")


def quoted(value: str, at_most: int = 40) -> str:
    """Text a user or a client sent, as a message may quote it: escaped, short."""
    text = value[:at_most].encode("unicode_escape").decode("ascii")
    return repr(text + ("..." if len(value) > at_most else ""))


Range = tuple[float, float]


def check_ranges(config: object, ranges: Mapping[str, Range], flag: str = "--{}") -> None:
    """Every numeric field of ``config`` (a dataclass) is a finite number in its stated
    range, or None where the field allows it; a ConfigError names the option, the range
    and the value. A numeric field missing from ``ranges`` is a programming error, so
    that no option can be added without a stated range."""
    import math
    from dataclasses import fields

    for item in fields(config):  # type: ignore[arg-type]
        if not item.init:
            continue  # derived from the options (ProtectConfig's parsed INPUT and OUT)
        value = getattr(config, item.name)
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        if item.name not in ranges:
            if numeric:
                raise AssertionError(f"{type(config).__name__}.{item.name} has no stated range")
            continue
        if value is None:
            continue
        low, high = ranges[item.name]
        option = flag.format(item.name.replace("_", "-"))
        integer = isinstance(item.default, int) and not isinstance(item.default, bool) or item.type in ("int", "int | None")
        if not numeric or (integer and not isinstance(value, int)):
            raise ConfigError(f"{option} must be {'an integer' if integer else 'a number'} (got {value!r})")
        if not math.isfinite(value) or not low <= value <= high:
            raise ConfigError(f"{option} must be between {low:g} and {high:g} (got {value!r})")


class SegueWarning(UserWarning):
    """What the library says where the CLI prints ``warning:`` (a lossy output format, ...)."""
