"""segue: protect face photos from unauthorised face-recognition training.

The library is importable without the CLI; each subcommand's logic lives in its own
module (training, protect, export, evaluation, clustering) with typed functions.
"""

import os
from typing import Any

# OpenMP threads that spin while waiting make torch ~10x slower on a busy 2-core machine
# (measured here); set before torch is imported, and only if the user has not chosen.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# A privacy tool phones nowhere (issue 44): ONNX Runtime's POSIX telemetry writes a device id
# under $HOME/.cache/Microsoft and looks up Microsoft's event collector unless its opt-out is
# set before the runtime is loaded. 1.32 reads ORT_DISABLE_TELEMETRY (measured here: with it
# HOME stays empty, with ORT_TELEMETRY_DISABLED alone it does not); later builds read
# ORT_TELEMETRY_DISABLED. Both, forced rather than defaulted: no setting of the user's turns it
# on. Every process that runs segue's code imports this package first (the CLI, the library,
# the server, Ray's workers), so setting them here covers them all (tests/test_no_telemetry.py).
os.environ["ORT_DISABLE_TELEMETRY"] = "1"
os.environ["ORT_TELEMETRY_DISABLED"] = "1"

__version__ = "0.1.0"

__all__ = ["CloakConfig", "Protector", "__version__"]


def __getattr__(name: str) -> Any:
    # Lazy, so that `import segue_cli` (and the CLI's --help) stays free of torch and ONNX Runtime.
    if name == "Protector":
        from .photo.protector import Protector

        return Protector
    if name == "CloakConfig":
        from .photo.cloak import CloakConfig

        return CloakConfig
    raise AttributeError(f"module 'segue_cli' has no attribute {name!r}")
