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

from ..choices import Spec, registry


@dataclass(frozen=True, kw_only=True)
class EngineSpec(Spec):
    """An engine: its factory is ``run(job, finish)``, which turns the job's planned files
    into results, handing each to ``finish`` as it is done."""

    check: str = ""  # "package.module:attribute" of check(config), run before anything is planned or written
    remote: bool  # reads and writes object-store URIs
    in_process: bool  # runs a planner passed in by the caller (a function in this process)


#: The one registry of engines: ``--engine NAME`` -> how it runs a job.
ENGINES: dict[str, EngineSpec] = registry(
    EngineSpec(name="local", help="this machine's threads (the default)", factory="segue_cli.engines.local:run",
               remote=False, in_process=True),
    EngineSpec(name="ray", help="a Ray cluster through Ray Data, object stores too (pip install 'segue[ray]')",
               factory="segue_cli.engines.ray_engine:run", check="segue_cli.engines.ray_engine:check",
               remote=True, in_process=False),
)
ENGINE_CHOICES = tuple(ENGINES)
