"""What every inference backend is: :class:`BackendInfo` and the
:class:`PerturbationBackend` interface.

A backend turns a batch of images in [0, 1] and their side-information codes into the
perturbation delta (|delta| <= epsilon). Callers never touch torch modules or ONNX
sessions directly, so ``protect`` works the same on either.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from ..side_info import CodeSpace


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
