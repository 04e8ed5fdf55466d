"""The torch backend: a ``segue train`` checkpoint run by PyTorch (the train extra)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..artifacts import load_generator

from ..storage import model_sha256
from . import BackendInfo


class TorchBackend:
    def __init__(self, model_path: Path, device: str = "auto", threads: int | None = None) -> None:
        """``threads`` is not this backend's to set: torch's thread count is process-wide, so
        callers set it (``engines.local.torch_threads_for_run``)."""
        from ..extras import require
        from . import resolve_device

        require("protect --backend torch")
        self._device = resolve_device(device)
        loaded = load_generator(model_path, self._device)
        self._model = loaded.model
        meta = loaded.metadata
        self.info = BackendInfo(
            name="torch",
            device=str(self._device),
            model_path=model_path,
            epsilon=meta.epsilon,
            image_size=meta.image_size,
            code_bits=meta.code_bits,
            model_sha256=meta.content_sha256,
            file_sha256=model_sha256(model_path),
            decoys=int(meta.architecture.get("decoys", 0)),
        )

    def perturb(self, images: np.ndarray, codes: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            batch = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).to(self._device)
            delta = self._model.perturbation(batch, torch.as_tensor(codes, dtype=torch.long), self.info.epsilon)
            return delta.float().cpu().numpy()
