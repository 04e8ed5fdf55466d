"""Root Typer app. Errors become exit codes here and nowhere else:
0 success, 1 the command ran but some work failed, 2 usage or input error."""

from __future__ import annotations

import functools
from typing import Any, Callable

import typer

from .. import __version__
from ..errors import SegueError
from . import cluster, evaluate, export, protect, train
from rich.markup import escape

from .render import stderr_console

app = typer.Typer(
    name="segue",
    help="Protect face photos from unauthorised face-recognition training (Segue, ICASSP 2025).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _reporting_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a SegueError into its message, its hint and its exit code."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except SegueError as exc:
            stderr_console.print(f"[bold red]error:[/] {escape(exc.message)}", highlight=False, soft_wrap=True)
            if exc.hint:
                stderr_console.print(f"  [yellow]hint:[/] {escape(exc.hint)}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from exc

    return wrapper


for _name, _module in (
    ("train", train),
    ("cluster", cluster),
    ("protect", protect),
    ("evaluate", evaluate),
    ("export", export),
):
    app.command(_name, help=_module.__doc__)(_reporting_errors(getattr(_module, _name)))


def _version(value: bool) -> None:
    if value:
        typer.echo(f"segue {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Protect face photos from unauthorised face-recognition training."""


def main() -> None:
    app()
