"""What ``segue protect`` tells a person on stderr: the run's start (who the photos are
said to show, and how to change it), warnings, and the summary at the end."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from rich.markup import escape

from .render import stderr_console

if TYPE_CHECKING:
    from ..job import ProtectSummary


def print_warnings(warnings: list[str]) -> None:
    for warning in warnings:
        stderr_console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)


def print_start(summary: ProtectSummary) -> None:
    stderr_console.print(f"side information: {escape(summary.side_information)}", highlight=False, soft_wrap=True)
    stderr_console.print(f"protection: {escape(summary.protection)}", highlight=False, soft_wrap=True)
    print_warnings(summary.warnings)


def duration(seconds: float) -> str:
    """A run's time as people read it: 34 ms, 2.4 s, 3 min 05 s."""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"


def print_summary(summary: ProtectSummary, side: bool = False) -> None:
    """A few lines, never cut: what happened, where it went, which model did it (``side``:
    and who the photos were said to show, for a run that printed no start)."""
    if side:
        stderr_console.print(f"side information: {escape(summary.side_information)}", highlight=False, soft_wrap=True)
    if not summary.total:  # the warnings say where no image was found; OUT was never made, so not named
        head = "nothing written: no images to protect" + (
            "" if os.path.isdir(str(summary.out_dir)) else f" (no output folder made; it would be {summary.out_dir})")
    elif summary.skipped == summary.total:
        done = "the output is" if summary.total == 1 else f"all {summary.total} outputs are"
        head = f"nothing to do: {done} already in {escape(str(summary.out_dir))} (--overwrite to redo)"
    else:
        failed = f"[red]{summary.failed} failed[/]" if summary.failed else "0 failed"
        skipped = f"{summary.skipped} skipped (outputs already there)" if summary.skipped else "0 skipped"
        rate = f" ({summary.images_per_second:.1f} images/s)" if summary.seconds >= 1 and summary.written > 1 else ""
        head = (f"written {summary.written}, {skipped}, {failed} in {duration(summary.seconds)}{rate} "
                f"to {escape(str(summary.out_dir))}")
    stderr_console.print(head, highlight=False, soft_wrap=True)
    print_stopped(summary)
    if summary.face_aware or summary.no_face:
        stderr_console.print(f"faces: {summary.face_aware} photo(s) protected face by face ({summary.faces_found} "
                             f"face(s)), {summary.no_face} with no face found protected whole", highlight=False,
                             soft_wrap=True)
    if summary.cloaked or summary.cloak_no_face:
        no_face = (f"; {summary.cloak_no_face} photo(s) with no face found, written without a cloak"
                   if summary.cloak_no_face else "")
        stderr_console.print(f"cloak: {summary.cloaked} photo(s) cloaked against "
                             f"{', '.join(summary.cloak_networks)}{no_face}",
                             highlight=False, soft_wrap=True)
    stderr_console.print(escape(f"model: {summary.model} (file sha256 {summary.file_sha256[:12]}, {summary.backend} on "
                                f"{summary.device}, epsilon {summary.epsilon * 255:.1f}/255)"), highlight=False, soft_wrap=True)
    print_warnings(summary.warnings)
    if summary.failures:
        stderr_console.print(f"[red]{summary.failed} file(s) failed:[/]")
        for failure in summary.failures:
            stderr_console.print(f"  {escape(str(failure.source))}: {escape(failure.reason or '')}", highlight=False, soft_wrap=True)


def print_stopped(summary: ProtectSummary) -> None:
    """Why a run stopped early (a full disk), with the fix: said even by a quiet run."""
    if summary.stopped:
        stderr_console.print(f"[bold red]stopped:[/] {escape(summary.stopped)}", highlight=False, soft_wrap=True)
