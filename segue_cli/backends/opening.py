"""Opening a model: resolve its name or path, check a shipped file against its card,
find a checkpoint's ONNX twin, and pick the backend from the registry in
:mod:`segue_cli.backends`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..artifacts import MODELS_DIR, file_sha256, read_metadata, resolve_model_path, untrained_reason
from ..errors import ArtifactError, ConfigError
from . import BACKEND_CHOICES, BACKENDS
from .base import PerturbationBackend


def shipped_sha256(path: Path) -> str | None:
    """The sha256 that the model card in models/ pins for a shipped file, or None for a
    file that is not one of the shipped models."""
    if path.resolve().parent != MODELS_DIR.resolve():
        return None
    card = MODELS_DIR / f"{path.stem}.json"
    if not card.is_file():
        return None
    import json  # noqa: PLC0415

    record = json.loads(card.read_text(encoding="utf-8"))
    if path.suffix.lower() == ".onnx":
        return (record.get("onnx") or {}).get("file_sha256")
    return record.get("file_sha256") if path.name == record.get("file") else None


def verify_shipped(path: Path) -> None:
    """Refuse a shipped model file whose bytes are not the ones its model card names."""
    pinned = shipped_sha256(path)
    if pinned is not None and file_sha256(path) != pinned:
        raise ArtifactError(f"{path} does not match the sha256 its model card pins ({pinned[:12]}...)",
                            "the shipped model was changed or corrupted: reinstall segue")


def _twin_holds_weights(twin_model: Any, checkpoint: Path) -> bool:
    """Whether the ONNX graph's weights are the checkpoint's: every initialiser named after
    a checkpoint tensor must equal it, and most of the checkpoint's weights must be there
    (the exporter folds BatchNorm into the convolutions before it, so those differ by design)."""
    from onnx import numpy_helper  # noqa: PLC0415
    from safetensors.numpy import load_file  # noqa: PLC0415

    tensors = load_file(str(checkpoint))

    def folded(name: str) -> bool:  # a convolution followed by a BatchNorm: the exporter merged them
        module, _, _ = name.rpartition(".")
        parent, _, index = module.rpartition(".")
        return index.isdigit() and f"{parent}.{int(index) + 1}.running_mean" in tensors

    matched = 0
    for initializer in twin_model.graph.initializer:
        name = initializer.name.removeprefix("generator.")
        if name in tensors and not folded(name):
            value = numpy_helper.to_array(initializer)
            if value.shape != tensors[name].shape or not np.array_equal(value, tensors[name].astype(value.dtype)):
                return False
            matched += 1
    weights = [k for k in tensors if k.endswith(".weight")]
    return matched >= len(weights) // 2


def _card_pins_both(checkpoint: Path, twin: Path) -> bool:
    """Whether ``checkpoint`` and ``twin`` are one shipped model's two files, each with the
    bytes its model card pins."""
    pins = shipped_sha256(checkpoint), shipped_sha256(twin)
    return None not in pins and (file_sha256(checkpoint), file_sha256(twin)) == pins


def exported_twin(checkpoint: Path) -> Path | None:
    """``checkpoint`` with suffix .onnx, if that file was exported from exactly these weights:
    its metadata names the checkpoint's content sha256 and its initialisers hold the
    checkpoint's tensors (a file that only claims the sha256 is not used). A file that is
    not readable ONNX is not a twin either."""
    twin = checkpoint.with_suffix(".onnx")
    if not twin.is_file():
        return None
    if _card_pins_both(checkpoint, twin):
        return twin  # a shipped pair: the card vouches for it, and reading the graph costs 0.7 s of imports
    import onnx  # noqa: PLC0415

    from .onnx_format import OnnxMetadata  # noqa: PLC0415

    try:
        model = onnx.load(str(twin), load_external_data=False)
        props = {p.key: p.value for p in model.metadata_props}
        exported_from = OnnxMetadata.from_props(props, twin).source_sha256
    except Exception:  # noqa: BLE001 (a corrupt file raises protobuf's DecodeError, among others)
        return None
    if exported_from != read_metadata(checkpoint).content_sha256:
        return None
    return twin if _twin_holds_weights(model, checkpoint) else None


def _runs_on_cpu(device: str) -> bool:
    """Whether ``device`` means the CPU, without importing torch where no NVIDIA GPU is
    present (the CUDA device node is the cheap sign): torch costs seconds and ~700 MiB,
    and on a CPU the ONNX twin does the work."""
    if device == "cpu":
        return True
    if device == "auto" and not Path("/dev/nvidiactl").exists():
        return True
    from ..devices import resolve_device

    return resolve_device(device).type == "cpu"


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
    verify_shipped(path)
    is_onnx = path.suffix.lower() == ".onnx"
    if not is_onnx:
        reason = untrained_reason(read_metadata(path).training)
        if reason:
            raise ArtifactError(f"{path} is not a trained generator: {reason}",
                                "train it for more epochs (`segue train ... --resume --epochs N`) or use another --model")
    if not is_onnx and backend != "torch":
        # ONNX Runtime is 1.7-3.6x faster than torch on CPU (docs/benchmarks.md): use the
        # checkpoint's own export when one sits beside it.
        twin = exported_twin(path)
        if backend == "onnx" and twin is None:
            raise ConfigError(f"no ONNX export of {path} found beside it",
                              f"run `segue export {path} --out {path.with_suffix('.onnx')}` first, or pass the .onnx file")
        if twin is not None and (backend == "onnx" or _runs_on_cpu(device)):
            verify_shipped(twin)
            path, is_onnx, backend = twin, True, "onnx"
    if backend == "auto":
        backend = "onnx" if is_onnx else "torch"
    if path.suffix.lower() != BACKENDS[backend].suffix:
        raise ConfigError(f"{path} is an ONNX file; the torch backend needs a .safetensors checkpoint",
                          "use --backend onnx, or pass the checkpoint")
    return BACKENDS[backend].open(path, device, threads)
