"""Engines run a planned ``segue protect`` job (``segue_cli.protect.job.Job``): the same files,
codes and settings, only where the work happens differs.

* ``local``: this machine's threads (``engines/local.py``), the default;
* ``ray``: a Ray cluster through Ray Data (``engines/ray_engine.py``, ``pip install
  "segue[ray]"``), which also reads and writes object stores (``s3://...``).

Planning (which inputs, which outputs, which codes, what is skipped, the settings record
and the lock) happens before an engine runs, in ``segue_cli.protect``; an engine only
turns planned files into results, each handed to a callback as it finishes. Adding one is
an entry in :data:`ENGINES`. This module imports nothing heavy (``--help`` reads the names).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from ..protect.job import FileResult, Job


def _run_local(job: Job, finish: Callable[[FileResult], None]) -> None:
    from .local import run

    run(job, finish)


def _run_ray(job: Job, finish: Callable[[FileResult], None]) -> None:
    from .ray_engine import run

    run(job, finish)


def _check_ray(config: Any) -> None:
    from ..extras import require

    require("protect --engine ray")
    from .ray_engine import check_address

    check_address(config.ray_address)


def _no_check(config: Any) -> None:
    return None


@dataclass(frozen=True)
class EngineSpec:
    run: Callable[["Job", Callable[["FileResult"], None]], None]
    check: Callable[[Any], None]  # before anything is planned or written: its extra, its cluster
    remote: bool  # reads and writes object-store URIs
    in_process: bool  # runs a planner passed in by the caller (a function in this process)


#: The one registry of engines: ``--engine NAME`` -> how it runs a job.
ENGINES: dict[str, EngineSpec] = {
    "local": EngineSpec(_run_local, _no_check, remote=False, in_process=True),
    "ray": EngineSpec(_run_ray, _check_ray, remote=True, in_process=False),
}
ENGINE_CHOICES = tuple(ENGINES)
