"""``segue protect`` as a library: a folder (or file list) in, protected photos out.

* ``config``: :class:`ProtectConfig`, checked when made (imports nothing heavy);
* ``results``: :class:`FileResult` per file and the run's :class:`ProtectSummary`;
* ``side_information``: which code each file gets, and the settings record;
* ``outputs``: inputs found, output names, skips, the lock and the settings file;
* ``plans``: what the generator sees of each photo and how its output maps back;
* ``pipeline``: the streaming decode -> generator -> encode loop (the local engine);
* ``job``: :func:`protect`, which plans a job and hands it to an engine.

For one image in memory use :class:`segue_cli.Protector`. The names below load their
module on first use, so that ``from segue_cli.protect import ProtectConfig`` stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import ProtectConfig, default_workers
    from .job import protect
    from .results import FileResult, ProtectSummary

_EXPORTS = {"ProtectConfig": "config", "default_workers": "config", "protect": "job",
            "FileResult": "results", "ProtectSummary": "results"}
__all__ = ["FileResult", "ProtectConfig", "ProtectSummary", "default_workers", "protect"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
