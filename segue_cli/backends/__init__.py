"""Inference backends: the registry, what every backend is, and how a model is opened.

* here: :data:`BACKENDS` (adding a backend is one entry), the device names
  (:func:`check_device`, :func:`resolve_device`), :class:`BackendInfo` and the
  :class:`PerturbationBackend` interface, and :func:`open_backend` (model names, shipped
  files checked against their card, the ONNX twin of a checkpoint, the choice of backend);
* ``onnx_backend``: ONNX Runtime (the core install), and the exported file's contract
  (names, axes, metadata) that ``export`` writes;
* ``torch_backend``: PyTorch (the train extra).

A backend turns a batch of images in [0, 1] and their side-information codes into the
perturbation delta (|delta| <= epsilon). Callers never touch torch modules or ONNX
sessions directly, so ``protect`` works the same on either. This module imports nothing
heavy (no numpy, torch or ONNX Runtime), so ``--help`` and option checks can read the choices.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ..artifacts import MODELS_DIR, read_metadata, resolve_model_path, untrained_reason
from ..choices import FP16_TOLERANCE, FP32_TOLERANCE, STRENGTHS, Spec, registry
from ..errors import ArtifactError, ConfigError
from ..storage import model_sha256

if TYPE_CHECKING:
    import numpy as np
    import torch

    from ..nn.codes import CodeSpace


@dataclass(frozen=True, kw_only=True)
class BackendSpec(Spec):
    """A backend: its factory is the class, called as ``(model path, device=, threads=)``."""

    suffix: str  # the model file it runs: ".safetensors" or ".onnx"


#: The one registry of backends: ``--backend NAME`` -> what it runs and its class.
BACKENDS: dict[str, BackendSpec] = registry(
    BackendSpec(name="torch", help="PyTorch on a .safetensors checkpoint (pip install 'segue[train]')",
                factory="segue_cli.backends.torch_backend:TorchBackend", suffix=".safetensors"),
    BackendSpec(name="onnx", help="ONNX Runtime on a file made by `segue export` (the core install)",
                factory="segue_cli.backends.onnx_backend:OnnxBackend", suffix=".onnx"),
)
BACKEND_CHOICES = ("auto", *BACKENDS)


# --- devices: shared by every command; ``auto`` takes CUDA when present ------------------------
DEVICE_CHOICES = ("auto", "cpu", "cuda")


def check_device(name: str) -> None:
    """Refuse a device name no backend knows, before anything imports torch: the core
    install has none, and ``--device gpu`` deserves the list, not a ModuleNotFoundError."""
    if name not in DEVICE_CHOICES and not (name.startswith("cuda:") and name[5:].isdigit()):
        hint = "cuda means the GPU: " if name.lower() in ("gpu", "nvidia") else ""
        raise ConfigError(f"unknown device {name!r}", f"{hint}use one of {', '.join(DEVICE_CHOICES)} (or cuda:N)")


def resolve_device(name: str = "auto") -> torch.device:
    check_device(name)
    import torch  # here, not at import: protect on ONNX Runtime never needs it

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but no CUDA device is available", "use --device cpu or auto")
    return torch.device(name)


# --- what every backend is -------------------------------------------------------------------
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
    decoys: int = 0  # > 0: a model trained on decoy codes 0..decoys-1 (nn.codes.CodeSpace)
    note: str | None = None  # said to the user: why the file that runs is not the one a name pointed to

    @property
    def code_space(self) -> CodeSpace:
        from ..nn.codes import CodeSpace  # numpy: not at import

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
        import numpy as np

        return self.backend.perturb(images, codes) * np.float32(self.scale)


def at_strength(backend: PerturbationBackend, strength: str) -> PerturbationBackend:
    """``backend`` at a ``--strength`` preset (high: itself)."""
    scale = STRENGTHS[strength][0]
    return backend if scale == 1.0 else ScaledBackend(backend, scale)


# --- opening a model -------------------------------------------------------------------------
def shipped_sha256(path: Path) -> str | None:
    """The sha256 that the model card in models/ pins for a shipped file, or None for a
    file that is not one of the shipped models."""
    if path.resolve().parent != MODELS_DIR.resolve():
        return None
    card = MODELS_DIR / f"{path.stem}.json"
    if not card.is_file():
        return None
    record = json.loads(card.read_text(encoding="utf-8"))
    if path.suffix.lower() == ".onnx":
        return (record.get("onnx") or {}).get("file_sha256")
    return record.get("file_sha256") if path.name == record.get("file") else None


def verify_shipped(path: Path) -> None:
    """Refuse a shipped model file whose bytes are not the ones its model card names."""
    pinned = shipped_sha256(path)
    if pinned is not None and model_sha256(path) != pinned:
        raise ArtifactError(f"{path} does not match the sha256 its model card pins ({pinned[:12]}...)",
                            "the shipped model was changed or corrupted: reinstall segue")


def _card_pins_both(checkpoint: Path, twin: Path) -> bool:
    """Whether ``checkpoint`` and ``twin`` are one shipped model's two files, each with the
    bytes its model card pins."""
    pins = shipped_sha256(checkpoint), shipped_sha256(twin)
    return None not in pins and (model_sha256(checkpoint), model_sha256(twin)) == pins


def exported_twin(checkpoint: Path) -> tuple[Path | None, str | None]:
    """(``checkpoint`` with suffix .onnx if that file may run in its place, else None; why
    not, when a file is there). A twin is trusted when the model card pins both files, or
    when it reproduces the checkpoint's perturbation on fixed probe photos within the
    export's tolerance: its weights and metadata alone prove nothing (a graph with the
    same initialisers and one more node that multiplies delta by 0 has both)."""
    twin = checkpoint.with_suffix(".onnx")
    if not twin.is_file():
        return None, None
    if _card_pins_both(checkpoint, twin):
        return twin, None  # a shipped pair: the card vouches for it, and the probe costs torch's import
    import importlib.util  # noqa: PLC0415

    if importlib.util.find_spec("torch") is None:
        return None, (f"{twin} lies beside the checkpoint but cannot be checked against it without torch; "
                      "pass the .onnx file itself to run it, or install segue[train]")
    problem = _probe_disagreement(checkpoint, twin, model_sha256(checkpoint), model_sha256(twin))
    if problem:
        return None, f"{twin} does not reproduce {checkpoint.name} ({problem}): ran the checkpoint instead"
    return twin, None


PROBE_SIZES = ((2, 37, 45), (1, 64, 64))  # (batch, height, width): odd and even sizes, as photos come


@lru_cache(maxsize=8)
def _probe_disagreement(checkpoint: Path, twin: Path, checkpoint_sha256: str, twin_sha256: str) -> str | None:
    """Why the twin's output on fixed probe photos and codes differs from the checkpoint's, or
    None (remembered for these two files' contents, named by their sha256)."""
    import numpy as np

    try:
        reference = BACKENDS["torch"].load()(checkpoint, device="cpu")
        candidate = BACKENDS["onnx"].load()(twin, device="cpu", threads=1)
    except Exception as exc:  # noqa: BLE001 (a corrupt or foreign file: not a twin)
        return f"it cannot be opened: {exc.__class__.__name__}"
    tolerance = FP16_TOLERANCE if candidate.metadata.precision == "fp16" else FP32_TOLERANCE
    rng = np.random.default_rng(0x5E6E)
    worst = 0.0
    for batch, height, width in PROBE_SIZES:
        images = rng.random((batch, 3, height, width), dtype=np.float32)
        codes = rng.integers(0, 2 ** min(reference.info.code_bits, 16), batch).astype(np.int64)
        try:
            got = candidate.perturb(images, codes)
        except Exception as exc:  # noqa: BLE001
            return f"it fails on a probe photo: {exc.__class__.__name__}"
        expected = reference.perturb(images, codes)
        if got.shape != expected.shape:
            return f"its output has shape {got.shape}, the checkpoint's {expected.shape}"
        worst = max(worst, float(np.abs(got - expected).max()))
    return None if worst <= tolerance else f"largest difference {worst:.2g} on probe photos, tolerance {tolerance:.0e}"


def _runs_on_cpu(device: str) -> bool:
    """Whether ``device`` means the CPU, without importing torch where no NVIDIA GPU is
    present (the CUDA device node is the cheap sign): torch costs seconds and ~700 MiB,
    and on a CPU the ONNX twin does the work. Without torch (the core install) the twin is
    the only way to run the model: ONNX Runtime then says whether it has the CUDA asked for."""
    import importlib.util  # noqa: PLC0415

    if device == "cpu" or importlib.util.find_spec("torch") is None:
        return True
    if device == "auto" and not Path("/dev/nvidiactl").exists():
        return True
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
    check_device(device)
    path = resolve_model_path(model)
    verify_shipped(path)
    is_onnx = path.suffix.lower() == ".onnx"
    if not is_onnx:
        reason = untrained_reason(read_metadata(path).training)
        if reason:
            raise ArtifactError(f"{path} is not a trained generator: {reason}",
                                "train it for more epochs (`segue train ... --resume --epochs N`) or use another --model")
    why_not = None
    if not is_onnx and backend != "torch":
        # ONNX Runtime is 1.7-3.6x faster than torch on CPU (docs/benchmarks.md): use the
        # checkpoint's own export when one sits beside it.
        twin, why_not = exported_twin(path) if backend == "onnx" or _runs_on_cpu(device) else (None, None)
        if backend == "onnx" and twin is None:
            raise ConfigError(why_not or f"no ONNX export of {path} found beside it",
                              f"run `segue export {path} --out {path.with_suffix('.onnx')}` first, or pass the .onnx file")
        if twin is not None:
            verify_shipped(twin)
            path, is_onnx, backend = twin, True, "onnx"
    if backend == "auto":
        backend = "onnx" if is_onnx else "torch"
    if path.suffix.lower() != BACKENDS[backend].suffix:
        raise ConfigError(f"{path} is an ONNX file; the torch backend needs a .safetensors checkpoint",
                          "use --backend onnx, or pass the checkpoint")
    opened = BACKENDS[backend].load()(path, device=device, threads=threads)
    if why_not:
        opened.info = replace(opened.info, note=why_not)
    return opened
