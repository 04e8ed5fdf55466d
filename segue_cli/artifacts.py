"""The one checkpoint format: a safetensors file with the generator's weights and a JSON
metadata record (format version, epsilon, working image size, code bits, architecture,
training summary, content sha256).

safetensors holds raw tensors only, so loading a checkpoint from the internet cannot run
code. ``content_sha256`` covers every tensor and every metadata field but itself: a file
whose weights or metadata were changed after saving is refused.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors import SafetensorError

from . import __version__
from .choices import CODE_BITS_RANGE, IMAGE_SIZE_RANGE, MAX_EPSILON
from .errors import ArtifactError
from .storage import atomic_write

if TYPE_CHECKING:  # torch is imported by the functions that build or save a model, not here
    import torch

    from .nn.generator import SegueGenerator

FORMAT_NAME = "segue-generator"
FORMAT_VERSION = 1
CHECKPOINT_SUFFIX = ".safetensors"
_METADATA_KEY = "segue"
DEFAULT_MODEL_NAME = "segue-webface10-112"


def model_limit_problem(epsilon: float, image_size: int, code_bits: int) -> str | None:
    """What is wrong with a model's declared epsilon, working size and code bits, or None."""
    if not (isinstance(epsilon, (int, float)) and 0 < epsilon <= MAX_EPSILON):  # NaN fails both comparisons
        return f"epsilon {epsilon!r} is outside (0, 16/255 = {MAX_EPSILON:.4f}]"
    if isinstance(image_size, bool) or not isinstance(image_size, int) or not (
            IMAGE_SIZE_RANGE[0] <= image_size <= IMAGE_SIZE_RANGE[1]):
        return f"working image size {image_size!r} is outside {IMAGE_SIZE_RANGE[0]}-{IMAGE_SIZE_RANGE[1]} px"
    if isinstance(code_bits, bool) or not isinstance(code_bits, int) or not (
            CODE_BITS_RANGE[0] <= code_bits <= CODE_BITS_RANGE[1]):
        return f"code bits {code_bits!r} are outside {CODE_BITS_RANGE[0]}-{CODE_BITS_RANGE[1]}"
    return None


def _models_dir() -> Path:
    """Where the shipped models are: inside the installed package (a wheel or a
    non-editable install puts models/ there as segue_cli/models), else the checkout's
    models/ beside segue_cli/ (an editable install, the tests)."""
    packaged = Path(__file__).resolve().parent / "models"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / "models"


MODELS_DIR = _models_dir()


@dataclass(frozen=True)
class GeneratorMetadata:
    epsilon: float
    image_size: int
    code_bits: int
    architecture: dict[str, int | float | bool]
    training: dict[str, Any] = field(default_factory=dict)
    format: str = FORMAT_NAME
    format_version: int = FORMAT_VERSION
    segue_version: str = __version__
    content_sha256: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "format_version": self.format_version,
            "segue_version": self.segue_version,
            "epsilon": self.epsilon,
            "image_size": self.image_size,
            "code_bits": self.code_bits,
            "architecture": self.architecture,
            "training": self.training,
            "content_sha256": self.content_sha256,
        }


@dataclass
class LoadedGenerator:
    model: SegueGenerator
    metadata: GeneratorMetadata
    path: Path


def _content_sha256(tensors: dict[str, torch.Tensor], metadata: dict[str, Any]) -> str:
    import torch

    digest = hashlib.sha256()
    unsigned = {k: v for k, v in metadata.items() if k != "content_sha256"}
    digest.update(json.dumps(unsigned, sort_keys=True, separators=(",", ":")).encode())
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def save_generator(
    path: Path,
    model: SegueGenerator,
    *,
    epsilon: float,
    image_size: int,
    training: dict[str, Any] | None = None,
) -> GeneratorMetadata:
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    record = GeneratorMetadata(
        epsilon=float(epsilon),
        image_size=int(image_size),
        code_bits=model.config.code_bits,
        architecture=model.config.to_dict(),
        training=dict(training or {}),
    ).to_dict()
    record["content_sha256"] = _content_sha256(tensors, record)
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata={_METADATA_KEY: json.dumps(record)}))
    return _metadata_from_dict(record, path)


def _metadata_from_dict(record: dict[str, Any], path: Path) -> GeneratorMetadata:
    if record.get("format") != FORMAT_NAME:
        raise ArtifactError(f"{path} is not a segue generator (format {record.get('format')!r})")
    if record.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(
            f"{path} has checkpoint format version {record.get('format_version')!r}; "
            f"this segue reads version {FORMAT_VERSION}",
            "upgrade segue, or re-export the model with this version",
        )
    try:
        metadata = GeneratorMetadata(**{k: record[k] for k in GeneratorMetadata.__dataclass_fields__ if k in record})
    except TypeError as exc:
        raise ArtifactError(f"{path} has incomplete segue metadata: {exc}") from exc
    problem = model_limit_problem(metadata.epsilon, metadata.image_size, metadata.code_bits)
    if problem:
        raise ArtifactError(f"{path} declares a model segue refuses to run: {problem}",
                            "use a model made by `segue train` (the shipped default needs no --model)")
    return metadata


def untrained_reason(training: dict[str, Any]) -> str | None:
    """Why a checkpoint's training summary says its generator was never trained, or None.
    Epoch 1 of `segue train` trains the surrogate only, so a run of one epoch (or one
    stopped before its first generator epoch) leaves the generator at its random start."""
    if "generator_epochs" in training:
        return None if training["generator_epochs"] > 0 else "no generator epoch ran (only the surrogate was trained)"
    last = training.get("last_epoch") or {}
    if training.get("epochs_run") == 1 and last.get("stage") == "surrogate":
        return "its only epoch trained the surrogate, not the generator"
    return None


def read_metadata(path: Path) -> GeneratorMetadata:
    """Metadata of a checkpoint without building the model (cheap)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as handle:
            raw = (handle.metadata() or {}).get(_METADATA_KEY)
    except (SafetensorError, OSError) as exc:
        raise ArtifactError(f"cannot read checkpoint {path}: {exc}", "is it a segue .safetensors file?") from exc
    if raw is None:
        raise ArtifactError(f"{path} has no segue metadata", "train it with `segue train` or pass another --model")
    return _metadata_from_dict(json.loads(raw), path)


def load_generator(path: Path, device: torch.device | str = "cpu") -> LoadedGenerator:
    from safetensors.torch import load_file

    from .nn.generator import GeneratorConfig, SegueGenerator

    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"model file not found: {path}", "pass --model PATH to a .safetensors checkpoint")
    metadata = read_metadata(path)
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise ArtifactError(f"cannot read weights from {path}: {exc}") from exc
    expected = _content_sha256(tensors, metadata.to_dict())
    if expected != metadata.content_sha256:
        raise ArtifactError(
            f"{path} failed its integrity check (content sha256 {expected[:12]}... "
            f"!= recorded {metadata.content_sha256[:12]}...)",
            "the file was modified or corrupted after it was saved; get a fresh copy",
        )
    try:
        model = SegueGenerator(GeneratorConfig.from_dict(metadata.architecture))
        model.load_state_dict(tensors, strict=True)
    except (TypeError, RuntimeError) as exc:
        raise ArtifactError(f"{path}: weights do not match the recorded architecture: {exc}") from exc
    return LoadedGenerator(model=model.to(device).eval(), metadata=metadata, path=path)


def resolve_model_path(model: str | Path | None) -> Path:
    """A path, a name of a model in ``models/`` (with or without its suffix), or None for
    the shipped default."""
    if model is None or str(model) == "":
        model = DEFAULT_MODEL_NAME
    candidate = Path(model).expanduser()
    if candidate.exists():
        return candidate
    suffixes = (CHECKPOINT_SUFFIX, ".onnx")
    # The hint lists file names (segue-webface10-112.onnx), so those names must work too.
    names = [str(model)] if Path(str(model)).suffix.lower() in suffixes else [f"{model}{suffix}" for suffix in suffixes]
    for name in names:
        named = MODELS_DIR / name
        if named.is_file() and named.parent == MODELS_DIR:
            return named
    known = sorted(p.name for p in MODELS_DIR.glob("*") if p.is_file() and p.suffix.lower() in suffixes) \
        if MODELS_DIR.is_dir() else []
    raise ArtifactError(
        f"model {str(model)!r} not found (looked for a file and in {MODELS_DIR})",
        f"pass --model PATH; models shipped here: {', '.join(known) or 'none'}",
    )
