"""The one progress-event type of every long job (train, evaluate, cluster, protect).

A job calls its ``on_event`` with :class:`ProgressEvent` values. Each says what happened
in the job's own words (``name`` and ``data``, for programs: an epoch's figures, a
file's result) and, for people, what it does to the display: start a bar, move it, set
the text beside it, or print a permanent line. ``segue_cli.cli.render.ProgressRenderer``
draws every job's events the same way, so the CLI's commands hold no display logic of
their own. This module imports nothing heavy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class ProgressEvent:
    name: str  # what happened, in the job's vocabulary: "epoch_end", "file", ...
    data: Any = None  # its record: a dict of figures, or an object (protect's FileResult, ProtectSummary)
    task: str | None = None  # the bar it concerns (a name unique within the job)
    total: int | None = None  # not None: a new bar of this many steps starts, labelled ``text``
    advance: int = 0  # steps of ``task`` done by this event
    text: str = ""  # the new bar's label, or else the text beside the bar
    line: str | None = None  # a permanent line (logs of unattended runs show it too)
    warning: bool = False  # the line is a warning (drawn in yellow)


ProgressCallback = Callable[[ProgressEvent], None]


def ignore(event: ProgressEvent) -> None:
    """The callback of a job nobody watches."""


def start_task(name: str, task: str, label: str, total: int, data: Any = None) -> ProgressEvent:
    return ProgressEvent(name, data, task=task, total=total, text=label)


def step(name: str, task: str, text: str = "", data: Any = None, advance: int = 1) -> ProgressEvent:
    return ProgressEvent(name, data, task=task, advance=advance, text=text)


def say(name: str, line: str, data: Any = None, *, task: str | None = None, text: str = "",
        warning: bool = False) -> ProgressEvent:
    return ProgressEvent(name, data, task=task, text=text, line=line, warning=warning)
