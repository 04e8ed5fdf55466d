"""What ``segue protect`` tells a person while it runs and when it ends: the run's start
(who the photos are said to show, and how to change it), each file's notes and failures,
a progress display, warnings, and the summary; with ``--json`` each file's record and the
summary on stdout. :class:`ProtectReport` holds the state the events leave (files written,
failures a quiet run says at its end), so that the command itself holds none."""

from __future__ import annotations

import os
import signal
from contextlib import contextmanager, nullcontext
from typing import TYPE_CHECKING, Any, Iterator

from rich.markup import escape

from .render import ProgressRenderer, print_json, progress, stderr_console

if TYPE_CHECKING:
    from ..progress import ProgressEvent
    from ..protect.job import FileResult, ProtectSummary


class ProtectReport:
    """The event callback of one run and its last words. Human text unless --json (then
    stderr carries only warnings and errors) or --quiet (errors only); failed files are
    always named on stderr. One image in gets no start lines and no progress display."""

    def __init__(self, quiet: bool, json_output: bool, one_image: bool) -> None:
        self.quiet, self.json_output, self.one_image = quiet, json_output, one_image
        self.chatty = not (quiet or json_output)
        self.draw: ProgressRenderer | None = None
        self.written = 0
        self.failures: list[str] = []

    @contextmanager
    def live(self) -> Iterator[None]:
        """The progress display around a folder run (a live bar, or log lines)."""
        with progress(transient=False) if self.chatty and not self.one_image else nullcontext(None) as bar:
            self.draw = ProgressRenderer(bar) if bar is not None else None
            yield

    def __call__(self, event: ProgressEvent) -> None:
        if event.name == "start":
            if self.draw is not None:
                print_start(event.data)
            elif not self.quiet:
                print_warnings(event.data.warnings)
        elif event.name == "file":
            result: FileResult = event.data
            self.written += result.status == "written"
            if self.json_output:
                print_json(result.to_dict())
            if result.status == "failed":
                self.failures.append(f"[red]failed:[/] {escape(str(result.source))}: {escape(result.reason or '')}")
                if not self.quiet:  # a quiet run says its failures when it ends: a quiet Ray run mutes stderr meanwhile
                    _say(self.failures[-1])
            if self.chatty:
                for note in result.notes:
                    _say(f"[yellow]note:[/] {escape(str(result.source))}: {escape(note)}")
        if self.draw is not None:
            self.draw(event)

    def interrupted(self) -> None:
        self._quiet_failures()
        # The photo being written is finished or dropped whole (writes are atomic).
        stderr_console.print(f"interrupted: {self.written} written, re-run to finish", highlight=False)

    def finish(self, summary: ProtectSummary, after: str | None = None) -> None:
        """The run's last words: the summary (and ``after``, for a person), or the JSON summary."""
        self._quiet_failures()
        if not self.chatty:
            print_stopped(summary)
        else:
            print_summary(summary, side=self.one_image)
            if after:
                _say(after)
        if self.json_output:
            print_json(summary.to_dict())

    def _quiet_failures(self) -> None:
        for line in self.failures if self.quiet else []:
            _say(line)


def _say(line: str) -> None:
    stderr_console.print(line, highlight=False, soft_wrap=True)


@contextmanager
def stopping_on_sigterm() -> Iterator[list[bool]]:
    """SIGTERM (kill, systemd, a cron timeout) stops the run like Ctrl-C; the list says
    whether it was SIGTERM, for exit code 143 instead of 130."""
    stopped: list[bool] = []

    def on_sigterm(signum: int, frame: Any) -> None:
        stopped.append(True)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield stopped
    finally:
        signal.signal(signal.SIGTERM, previous)


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
