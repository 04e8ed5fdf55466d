"""``segue protect`` as a library: a folder, a file, a list of paths or an object-store
prefix in, protected photos out.

* ``config``: :class:`ProtectConfig`, checked when made (imports nothing heavy);
* ``inputs``: which photos a job reads (:func:`~segue_cli.protect.inputs.find_inputs`);
* ``outputs``: OUT: output names, the settings record that says what is done, the lock;
* ``side_information``: which code each file gets, and the settings that decide its pixels;
* ``planner``: :func:`protect`, which plans the job and hands it to an engine.

One photo's own steps (plans, compose, the cloak) are ``segue_cli.photo``'s, shared with
the engines and :class:`segue_cli.Protector`; the job and its results are
``segue_cli.job``'s. The names below load their module on first use, so that
``from segue_cli.protect import ProtectConfig`` stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..job import FileResult, ProtectSummary
    from .config import ProtectConfig, default_workers
    from .planner import protect

_EXPORTS = {"ProtectConfig": ".config", "default_workers": ".config", "protect": ".planner",
            "FileResult": "..job", "ProtectSummary": "..job"}
__all__ = ["FileResult", "ProtectConfig", "ProtectSummary", "default_workers", "protect"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
