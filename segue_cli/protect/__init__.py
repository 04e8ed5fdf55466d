"""``segue protect`` as a library: :func:`protect`, the one entry of the CLI, the server's
batch runs and scripts alike.

* ``config``: :class:`ProtectConfig`, checked when made, INPUT and OUT parsed into typed
  values (imports nothing heavy);
* ``folder``: a folder tree out: plan the job (``inputs``, ``outputs``, each file's code),
  hold OUT, run the job on an engine, note each result in OUT's record;
* ``single``: one image in, one file (or standard output) out: no folder, record or lock;
* ``job``: the planned job an engine runs and what a run reports (a leaf of types: the
  engines import it and nothing else of this package).

One photo's own steps (plans, compose, the cloak, :class:`~segue_cli.photo.protector.Protector`)
are ``segue_cli.photo``'s. This module imports nothing at load, so that an engine importing
``job`` loads nothing else of the package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..backends import PerturbationBackend
    from ..photo.compose import Planner
    from ..progress import ProgressCallback
    from .config import ProtectConfig, default_workers
    from .job import FileResult, ProtectSummary

_EXPORTS = {"ProtectConfig": ".config", "default_workers": ".config", "FileResult": ".job", "ProtectSummary": ".job"}
__all__ = ["FileResult", "ProtectConfig", "ProtectSummary", "default_workers", "protect"]


def protect(config: ProtectConfig, on_event: ProgressCallback | None = None, *,
            backend: PerturbationBackend | None = None, planner: Planner | None = None) -> ProtectSummary:
    """Protect what ``config`` names: one image into one file (or standard output) when its
    destination says so, else every photo into a folder tree. The CLI, the library and every
    engine take this one way, so the same settings give the same bytes and the same kind of
    output everywhere. Failures in a folder run are reported per file, never raised.

    ``backend`` and ``planner`` replace the ones ``config`` asks for (a folder run on the
    local engine only). Raises a SegueError only for problems with the run as a whole (bad
    options, missing input, unusable model, output folder inside the input).
    """
    if config.one_image:
        from ..errors import ConfigError
        from .single import protect_single

        if backend is not None or planner is not None:
            raise ConfigError("a backend or planner passed to protect() runs a folder job only",
                              "pass a folder as out, or use Protector for one image")
        return protect_single(config, on_event)
    from .folder import protect_folder

    return protect_folder(config, on_event, backend=backend, planner=planner)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
