"""What every inference backend is: :class:`BackendInfo` and the
:class:`PerturbationBackend` interface.

A backend turns a batch of images in [0, 1] and their side-information codes into the
perturbation delta (|delta| <= epsilon). Callers never touch torch modules or ONNX
sessions directly, so ``protect`` works the same on either.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import numpy as np

from ..nn.codes import CodeSpace


@dataclass(frozen=True)
class BackendInfo:
    name: str  # "torch" or "onnx"
    device: str  # "cpu", "cuda", or the ONNX Runtime provider used
    model_path: Path
    epsilon: float
    image_size: int  # the generator's working scale
    code_bits: int
    model_sha256: str  # content sha256 of the checkpoint the weights come from (the model's identity)
    file_sha256: str = ""  # sha256 of the file actually run (the checkpoint, or its ONNX export)
    decoys: int = 0  # > 0: a model trained on decoy codes 0..decoys-1 (side_info.CodeSpace)
    note: str | None = None  # said to the user: why the file that runs is not the one a name pointed to

    @property
    def code_space(self) -> CodeSpace:
        return CodeSpace(self.code_bits, self.decoys)


class PerturbationBackend(Protocol):
    info: BackendInfo

    def perturb(self, images: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """float32 [B, 3, H, W] in [0, 1], int64 [B] -> float32 delta [B, 3, H, W]."""
        ...


class ScaledBackend:
    """A backend whose deltas are ``scale`` times its model's (``--strength``), with the
    epsilon it reports scaled alike, so every plan, clip and bound check downstream holds the
    smaller bound without knowing of it."""

    def __init__(self, backend: PerturbationBackend, scale: float) -> None:
        self.backend, self.scale = backend, scale
        self.info = replace(backend.info, epsilon=backend.info.epsilon * scale)

    def perturb(self, images: np.ndarray, codes: np.ndarray) -> np.ndarray:
        return self.backend.perturb(images, codes) * np.float32(self.scale)


def at_strength(backend: PerturbationBackend, strength: str) -> PerturbationBackend:
    """``backend`` at a ``--strength`` preset (high: itself)."""
    from ..choices import STRENGTHS

    scale = STRENGTHS[strength][0]
    return backend if scale == 1.0 else ScaledBackend(backend, scale)
