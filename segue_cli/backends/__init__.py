"""Inference backends: the registry, and how a model is opened.

* ``base``: :class:`BackendInfo` and the :class:`PerturbationBackend` interface;
* ``torch_backend`` / ``onnx_backend``: the two backends (torch needs the train extra;
  ONNX Runtime is in the core install);
* ``onnx_format``: the ONNX file's inputs, outputs and metadata, shared with ``export``;
* ``opening``: :func:`open_backend` (model names, shipped-file checks, the ONNX twin of a
  checkpoint, the choice of backend).

Adding a backend is one entry in :data:`BACKENDS`. This module imports nothing heavy, so
``--help`` and option checks can read the choices.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from .base import PerturbationBackend


def _torch(path: Path, device: str, threads: int | None) -> PerturbationBackend:
    from .torch_backend import TorchBackend

    return TorchBackend(path, device=device)  # torch's thread count is process-wide: callers set it


def _onnx(path: Path, device: str, threads: int | None) -> PerturbationBackend:
    from .onnx_backend import OnnxBackend

    return OnnxBackend(path, device=device, threads=threads)


@dataclass(frozen=True)
class BackendSpec:
    suffix: str  # the model file it runs: ".safetensors" or ".onnx"
    open: Callable[[Path, str, int | None], PerturbationBackend]  # (model path, device, threads) -> backend


#: The one registry of backends: name -> what it runs and how to open it.
BACKENDS: dict[str, BackendSpec] = {"torch": BackendSpec(".safetensors", _torch), "onnx": BackendSpec(".onnx", _onnx)}
BACKEND_CHOICES = ("auto", *BACKENDS)

