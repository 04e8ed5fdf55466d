"""One exception family. Each error carries a hint that tells the user what to do.

The CLI maps these to exit codes in one place (``segue_cli.cli.app``): usage and input
errors exit 2, anything that ran but failed on some files exits 1.
"""

from __future__ import annotations


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


def quoted(value: str, at_most: int = 40) -> str:
    """Text a user or a client sent, as a message may quote it: escaped, short."""
    text = value[:at_most].encode("unicode_escape").decode("ascii")
    return repr(text + ("..." if len(value) > at_most else ""))


class SegueWarning(UserWarning):
    """What the library says where the CLI prints ``warning:`` (a lossy output format, ...)."""
