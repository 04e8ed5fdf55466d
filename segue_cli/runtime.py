"""Inference backends behind one interface.

A backend turns a batch of images in [0, 1] and their side-information codes into the
perturbation delta (|delta| <= epsilon). Callers never touch torch modules or ONNX
sessions directly, so ``protect`` works the same on either.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from .artifacts import load_generator, read_metadata, resolve_model_path
from .devices import resolve_device
from .errors import ArtifactError, ConfigError

BACKEND_CHOICES = ("auto", "torch", "onnx")


@dataclass(frozen=True)
class BackendInfo:
    name: str  # "torch" or "onnx"
    device: str  # "cpu", "cuda", or the ONNX Runtime provider used
    model_path: Path
    epsilon: float
    image_size: int  # the generator's working scale
    code_bits: int
    model_sha256: str


class PerturbationBackend(Protocol):
    info: BackendInfo

    def perturb(self, images: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """float32 [B, 3, H, W] in [0, 1], int64 [B] -> float32 delta [B, 3, H, W]."""
        ...


class TorchBackend:
    def __init__(self, model_path: Path, device: str = "auto") -> None:
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
        )

    @torch.inference_mode()
    def perturb(self, images: np.ndarray, codes: np.ndarray) -> np.ndarray:
        batch = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).to(self._device)
        delta = self._model.perturbation(batch, torch.as_tensor(codes, dtype=torch.long), self.info.epsilon)
        return delta.float().cpu().numpy()


def exported_twin(checkpoint: Path) -> Path | None:
    """``checkpoint`` with suffix .onnx, if that file was exported from exactly these weights."""
    twin = checkpoint.with_suffix(".onnx")
    if not twin.is_file():
        return None
    import onnx  # noqa: PLC0415

    from .onnx_format import OnnxMetadata  # noqa: PLC0415

    try:
        props = {p.key: p.value for p in onnx.load(str(twin), load_external_data=False).metadata_props}
        exported_from = OnnxMetadata.from_props(props, twin).source_sha256
    except (ArtifactError, OSError, ValueError, onnx.onnx_cpp2py_export.checker.ValidationError):
        return None
    return twin if exported_from == read_metadata(checkpoint).content_sha256 else None


def open_backend(
    model: str | Path | None = None, backend: str = "auto", device: str = "auto", threads: int | None = None
) -> PerturbationBackend:
    """Resolve ``model`` (path, name in models/, or None for the default) and open it.

    ``auto`` picks ONNX Runtime for ``.onnx`` files, and for a checkpoint on CPU when
    its export (same name, ``.onnx``, made from exactly these weights) lies beside it;
    torch otherwise.
    ``threads``: CPU threads ONNX Runtime may use per call (None: one per core). Torch's
    thread count is process-wide, so callers set it themselves (see ``protect``).
    """
    if backend not in BACKEND_CHOICES:
        raise ConfigError(f"unknown backend {backend!r}", f"use one of {', '.join(BACKEND_CHOICES)}")
    path = resolve_model_path(model)
    is_onnx = path.suffix.lower() == ".onnx"
    if not is_onnx and backend != "torch":
        # ONNX Runtime is 1.7-3.6x faster than torch on CPU (docs/benchmarks.md): use the
        # checkpoint's own export when one sits beside it.
        twin = exported_twin(path)
        if backend == "onnx" and twin is None:
            raise ConfigError(f"no ONNX export of {path} found beside it",
                              f"run `segue export {path} --out {path.with_suffix('.onnx')}` first, or pass the .onnx file")
        if twin is not None and (backend == "onnx" or resolve_device(device).type == "cpu"):
            path, is_onnx, backend = twin, True, "onnx"
    if backend == "onnx" or (backend == "auto" and is_onnx):
        from .onnx_backend import OnnxBackend  # noqa: PLC0415 (onnxruntime is only needed here)

        return OnnxBackend(path, device=device, threads=threads)
    if is_onnx:
        raise ConfigError(f"{path} is an ONNX file; the torch backend needs a .safetensors checkpoint",
                          "use --backend onnx, or pass the checkpoint")
    return TorchBackend(path, device=device)
