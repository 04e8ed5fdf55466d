"""``segue export``: a generator checkpoint -> an ONNX file that ONNX Runtime runs.

The graph (names, axes and metadata in ``backends.onnx_backend``) computes
``delta = epsilon * G(images, code_signs)`` for any batch, height and width. It is made
with the torch.export-based exporter (``dynamo=True``; the TorchScript one is deprecated
in torch 2.9+) at a pinned opset, checked with ``onnx.checker``, then checked again by
running it: ONNX Runtime and PyTorch must agree on the perturbation at several odd and
non-square sizes within a stated tolerance, or nothing is written. The file is written
atomically, so --out is either the checked export or untouched.
"""

from __future__ import annotations

import copy
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import torch
from torch import nn

from .. import __version__
from ..artifacts import load_generator, resolve_model_path, untrained_reason
from ..storage import atomic_write, file_sha256
from ..choices import DEFAULT_OPSET, FP16_TOLERANCE, FP32_TOLERANCE, MAX_OPSET, MIN_OPSET, check_ranges
from ..errors import ArtifactError, ConfigError, OutputError
from ..nn.generator import SegueGenerator
from ..backends.onnx_backend import DYNAMIC_AXES, INPUT_NAMES, OUTPUT_NAMES, OnnxBackend, OnnxMetadata

# Parity sizes (height, width) besides the model's working size: odd, non-square, and
# sizes that are not multiples of 4 (the generator pads to a multiple of 4 and crops back).
PARITY_SIZES = ((33, 47), (47, 33), (61, 90))
PARITY_BATCH = 3


@dataclass(frozen=True)
class ExportConfig:
    out: Path
    model: str | Path | None = None  # checkpoint path, name in models/, or None: the default model
    fp16: bool = False
    opset: int = DEFAULT_OPSET
    overwrite: bool = False

    def __post_init__(self) -> None:
        if Path(self.out).suffix.lower() != ".onnx":
            raise ConfigError(f"--out {self.out} must end in .onnx", "e.g. --out models/generator.onnx")
        if not MIN_OPSET <= self.opset <= MAX_OPSET:
            raise ConfigError(f"--opset {self.opset} is not supported", f"use an opset from {MIN_OPSET} to {MAX_OPSET}")
        check_ranges(self, {"opset": (MIN_OPSET, MAX_OPSET)})
    @property
    def tolerance(self) -> float:
        return FP16_TOLERANCE if self.fp16 else FP32_TOLERANCE


@dataclass(frozen=True)
class ParityCheck:
    height: int
    width: int
    batch: int
    max_abs_diff: float


@dataclass(frozen=True)
class ExportResult:
    out: Path
    source: Path
    metadata: OnnxMetadata
    opset: int
    tolerance: float
    parity: list[ParityCheck] = field(default_factory=list)
    seconds: float = 0.0
    file_bytes: int = 0
    file_sha256: str = ""

    def to_dict(self) -> dict[str, object]:
        return {
            "out": str(self.out), "source": str(self.source), "opset": self.opset,
            "metadata": self.metadata.to_props(), "tolerance": self.tolerance,
            "parity": [vars(check) for check in self.parity],
            "max_abs_diff": max((c.max_abs_diff for c in self.parity), default=None),
            "seconds": round(self.seconds, 2), "file_bytes": self.file_bytes, "file_sha256": self.file_sha256,
        }


class ParityError(ArtifactError):
    """The exported graph disagrees with PyTorch: the export ran but failed (exit 1)."""

    exit_code = 1


class _ExportGraph(nn.Module):
    """epsilon * G(images, code_signs) in the export's precision. G pads to a multiple of
    4 without a Python branch on the size, so one graph holds for every size."""

    def __init__(self, generator: SegueGenerator, epsilon: float, dtype: torch.dtype) -> None:
        super().__init__()
        self.generator = generator
        self.epsilon = float(epsilon)
        self.dtype = dtype

    def forward(self, images: torch.Tensor, code_signs: torch.Tensor) -> torch.Tensor:
        return self.epsilon * self.generator(images.to(self.dtype), code_signs.to(self.dtype)).float()


def build_onnx(generator: SegueGenerator, metadata: OnnxMetadata, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """Export ``generator`` (left unchanged) and attach ``metadata``; checked with onnx.checker."""
    dtype = torch.float16 if metadata.precision == "fp16" else torch.float32
    graph = _ExportGraph(copy.deepcopy(generator).to("cpu", dtype).eval(), metadata.epsilon, dtype).eval()
    dims = {axis: torch.export.Dim(axis) for axes in DYNAMIC_AXES.values() for axis in axes.values()}
    dynamic_shapes = {name: {pos: dims[axis] for pos, axis in DYNAMIC_AXES[name].items()} for name in INPUT_NAMES}
    # Distinct example sizes above 1: equal or unit sizes would be specialised by export.
    example = (torch.rand(2, 3, 40, 56), torch.ones(2, metadata.code_bits))
    with warnings.catch_warnings():
        # Both inputs share the batch axis; the exporter warns that it keeps one name for it.
        warnings.filterwarnings("ignore", message=r".*axis name.*will not be used.*")
        try:
            program = torch.onnx.export(
                graph, example, dynamo=True, opset_version=opset, input_names=list(INPUT_NAMES),
                output_names=list(OUTPUT_NAMES), dynamic_shapes=dynamic_shapes, verbose=False,
            )
        except Exception as exc:  # torch.onnx raises many types; say what failed and stop
            raise ArtifactError(f"ONNX export failed: {exc}", "report this with the checkpoint's metadata") from exc
    if program is None:
        raise ArtifactError("ONNX export returned nothing", "report this with the checkpoint's metadata")
    proto = program.model_proto
    # The exporter names the output's sizes by the crop expression (Min(height, ...));
    # they equal the input's, which the parity check confirms, so give them plain names.
    for value in proto.graph.output:
        dims = value.type.tensor_type.shape.dim
        for position, axis in DYNAMIC_AXES.get(value.name, {}).items():
            dims[position].ClearField("dim_value")
            dims[position].dim_param = axis
    onnx.helper.set_model_props(proto, metadata.to_props())
    proto.doc_string = f"segue generator: delta = epsilon * G(images, code_signs); exported by segue {__version__}"
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ArtifactError(f"the exported graph fails onnx.checker: {exc}") from exc
    return proto


def check_parity(onnx_path: Path, generator: SegueGenerator, tolerance: float, seed: int = 0) -> list[ParityCheck]:
    """Run the ONNX file (CPU) and PyTorch on the same inputs; raise ParityError past ``tolerance``."""
    backend = OnnxBackend(onnx_path, device="cpu")
    info = backend.info
    rng = np.random.default_rng(seed)
    model = copy.deepcopy(generator).to("cpu", torch.float32).eval()
    checks: list[ParityCheck] = []
    for height, width in (*PARITY_SIZES, (info.image_size, info.image_size)):
        images = rng.random((PARITY_BATCH, 3, height, width), dtype=np.float32)
        codes = rng.integers(0, 2**info.code_bits, PARITY_BATCH, dtype=np.int64)
        with torch.inference_mode():
            expected = model.perturbation(torch.from_numpy(images), torch.from_numpy(codes), info.epsilon).numpy()
        diff = float(np.abs(backend.perturb(images, codes) - expected).max())
        checks.append(ParityCheck(height, width, PARITY_BATCH, diff))
    worst = max(checks, key=lambda c: c.max_abs_diff)
    if not worst.max_abs_diff <= tolerance:  # also catches NaN
        raise ParityError(
            f"the exported graph disagrees with PyTorch: max |delta difference| {worst.max_abs_diff:.2e} at "
            f"{worst.height}x{worst.width} exceeds the tolerance {tolerance:.0e}; nothing was written",
            "try the default opset without --fp16; if it persists, report it with the checkpoint",
        )
    return checks


def export_model(config: ExportConfig, on_stage: Callable[[str], None] | None = None) -> ExportResult:
    """Export the checkpoint ``config.model`` to ``config.out`` (see module docstring)."""
    stage = on_stage or (lambda _name: None)
    started = time.perf_counter()
    out = Path(config.out)
    if out.is_dir():
        raise OutputError(f"--out {out} is a folder", "give a file name ending in .onnx")
    if out.exists() and not config.overwrite:
        raise OutputError(f"{out} already exists", "choose another --out, or pass --overwrite to replace it")
    source = resolve_model_path(config.model)
    if source.suffix.lower() == ".onnx":
        raise ConfigError(f"{source} is already an ONNX file", "export a .safetensors checkpoint")
    stage("loading checkpoint")
    loaded = load_generator(source, "cpu")
    meta = loaded.metadata
    reason = untrained_reason(meta.training)
    if reason:
        raise ArtifactError(f"{source} is not a trained generator: {reason}", "train it for more epochs first")
    metadata = OnnxMetadata(
        epsilon=meta.epsilon, code_bits=meta.code_bits, image_size=meta.image_size,
        source_sha256=meta.content_sha256, segue_version=__version__, precision="fp16" if config.fp16 else "fp32",
        decoys=int(meta.architecture.get("decoys", 0)),
    )
    stage("exporting to ONNX")
    proto = build_onnx(loaded.model, metadata, config.opset)
    parity: list[ParityCheck] = []

    def write_checked(tmp: Path) -> None:
        onnx.save_model(proto, str(tmp))
        stage(f"checking parity with PyTorch on {len(PARITY_SIZES) + 1} sizes (the longest step)")
        parity.extend(check_parity(tmp, loaded.model, config.tolerance))

    atomic_write(out, write_checked)
    return ExportResult(
        out=out, source=source, metadata=metadata, opset=config.opset, tolerance=config.tolerance, parity=parity,
        seconds=time.perf_counter() - started, file_bytes=out.stat().st_size, file_sha256=file_sha256(out),
    )
