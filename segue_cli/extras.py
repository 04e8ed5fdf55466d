"""Which optional extra a command needs, said before it fails on a missing import.

The core install (`pip install segue`) runs `segue protect` on ONNX Runtime; train,
evaluate, export and cluster need the ``[train]`` extra (torch, torchvision, dlib, ...).
A command whose extra is missing stops with exit 2 and the pip line that fixes it.
"""

from __future__ import annotations

import importlib.util

from .errors import InputError

# import name -> what pip installs it as (for the message)
NEEDS: dict[str, tuple[str, ...]] = {
    "train": ("torch", "torchvision"),
    "evaluate": ("torch", "torchvision", "sklearn", "matplotlib"),
    "export": ("torch", "onnxscript"),
    "cluster": ("dlib", "sklearn", "face_recognition_models"),
    "protect --backend torch": ("torch",),
}
EXTRA = "train"


def require(command: str) -> None:
    """Raise InputError naming the missing modules and the install line, if any are missing."""
    missing = [name for name in NEEDS[command] if importlib.util.find_spec(name) is None]
    if missing:
        raise InputError(
            f"segue {command} needs {', '.join(missing)}, which the core install leaves out",
            f"pip install 'segue[{EXTRA}]' (from a checkout: pip install -e '.[{EXTRA}]')",
        )
