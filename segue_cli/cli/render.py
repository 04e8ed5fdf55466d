"""Printing helpers: human text on stderr (rich), stable JSON on stdout, and one progress
display for every command (a live bar on a terminal, plain lines in a log) drawn by one
renderer of the jobs' progress events."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from rich.console import Console
from rich.text import Text

from ..progress import ProgressEvent

stderr_console = Console(stderr=True)

LOG_LINES_PER_TASK = 10  # a task of N steps prints about this many lines in a log


def print_json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()


class LogProgress:
    """The part of rich's Progress the commands use, for a stderr that is not a terminal
    (nohup, cron, CI logs): a live bar there comes out as cut-off fragments (``1300…``,
    ``0:00:…``), so each task prints a plain line every tenth of its steps and at its end."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._tasks: dict[int, dict[str, Any]] = {}

    def __enter__(self) -> "LogProgress":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def add_task(self, description: str, total: float | None = None, **fields: Any) -> int:
        task_id = len(self._tasks)
        self._tasks[task_id] = {"description": description, "total": total, "done": 0, "fields": dict(fields),
                                "started": time.perf_counter(), "printed": 0}
        return task_id

    def advance(self, task_id: int, advance: float = 1) -> None:
        self.update(task_id, advance=advance)

    def update(self, task_id: int, advance: float = 0, **fields: Any) -> None:
        task = self._tasks[task_id]
        task["done"] += advance
        task["fields"].update(fields)
        total = task["total"]
        if not advance or not total:
            return
        every = max(1, int(total) // LOG_LINES_PER_TASK)
        done = int(task["done"])
        finished = done >= total
        if (done % every == 0 or finished) and task["printed"] != done and (done <= total - every or finished):
            task["printed"] = done
            info = task["fields"].get("info") or ""
            elapsed = time.perf_counter() - task["started"]
            self.console.print(f"{task['description']}: {int(task['done'])}/{int(total)} {info} ({elapsed:.0f} s)".rstrip(),
                               highlight=False, markup=False, soft_wrap=True)


class ProgressRenderer:
    """Draws any job's :class:`~segue_cli.progress.ProgressEvent` values on a progress
    display (:func:`progress`): the one renderer of train, evaluate, cluster and protect."""

    def __init__(self, bar: Any) -> None:
        self.bar = bar
        self._tasks: dict[str, int] = {}

    def __call__(self, event: ProgressEvent) -> None:
        if event.total is not None and event.task is not None:
            self._tasks[event.task] = self.bar.add_task(event.text, total=event.total, info="")
        elif event.task in self._tasks and (event.advance or event.text):
            fields = {"info": event.text} if event.text else {}
            self.bar.update(self._tasks[event.task], advance=event.advance, **fields)
        if event.line is not None:
            self.bar.console.print(Text(event.line, style="yellow" if event.warning else ""), highlight=False,
                                   soft_wrap=True)


def progress(transient: bool = False) -> Any:
    """A progress display on stderr: rich's live bar on a terminal, LogProgress elsewhere.
    Tasks take ``info=`` for the text beside the bar."""
    if not stderr_console.is_terminal:
        return LogProgress(stderr_console)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(), TimeRemainingColumn(), console=stderr_console, transient=transient,
    )
