"""segue: protect face photos from unauthorised face-recognition training.

The library is importable without the CLI; each subcommand's logic lives in its own
module (training, protect, export, evaluation, clustering) with typed functions.
"""

import os
from typing import Any

# OpenMP threads that spin while waiting make torch ~10x slower on a busy 2-core machine
# (measured here); set before torch is imported, and only if the user has not chosen.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

__all__ = ["CloakConfig", "Protector", "__version__"]


def __getattr__(name: str) -> Any:
    # Lazy, so that `import segue_cli` (and the CLI's --help) stays free of torch and ONNX Runtime.
    if name == "Protector":
        from .protector import Protector

        return Protector
    if name == "CloakConfig":
        from .photo.cloak import CloakConfig

        return CloakConfig
    raise AttributeError(f"module 'segue_cli' has no attribute {name!r}")
