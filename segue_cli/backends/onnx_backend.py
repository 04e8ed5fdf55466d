"""ONNX Runtime backend: runs a generator exported by ``segue export``, and the exported
file's contract, in one place: graph input and output names, dynamic axes and the metadata
every segue ONNX file carries (the exporter writes them, this backend reads them).

The graph computes ``delta = epsilon * G(images, code_signs)``:

* ``images``: float32 [batch, 3, height, width], RGB in [0, 1], any height and width;
* ``code_signs``: float32 [batch, code_bits], the side-information code as +/-1, MSB
  first (``nn.codes.code_signs``);
* ``delta``: float32 [batch, 3, height, width], |delta| < epsilon.

One InferenceSession per backend, made once and reused for every batch. Execution
providers are the ones asked for that this onnxruntime build has, CPU always last; the
provider that actually took the graph is reported in ``info.device``. The file's segue
metadata (epsilon, code bits, working size, format version) is read from the file, never
guessed; an ONNX file without it is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np
import onnxruntime as ort

from ..artifacts import model_limit_problem
from ..errors import ArtifactError, ConfigError, InputError
from ..nn.codes import code_signs
from ..storage import model_sha256
from . import DEVICE_CHOICES, BackendInfo

# segue_cli/__init__ sets ORT_TELEMETRY_DISABLED before this import; the runtime's own switch
# too, for builds that read only that (issue 44: nothing leaves the machine).
ort.disable_telemetry_events()

FORMAT_NAME = "segue-generator-onnx"
FORMAT_VERSION = 1

INPUT_IMAGES = "images"
INPUT_CODE_SIGNS = "code_signs"
OUTPUT_DELTA = "delta"
INPUT_NAMES = (INPUT_IMAGES, INPUT_CODE_SIGNS)
OUTPUT_NAMES = (OUTPUT_DELTA,)

AXIS_BATCH = "batch"
AXIS_HEIGHT = "height"
AXIS_WIDTH = "width"
# Dynamic axes of every input and output, keyed by the names above (position -> axis name).
DYNAMIC_AXES: dict[str, dict[int, str]] = {
    INPUT_IMAGES: {0: AXIS_BATCH, 2: AXIS_HEIGHT, 3: AXIS_WIDTH},
    INPUT_CODE_SIGNS: {0: AXIS_BATCH},
    OUTPUT_DELTA: {0: AXIS_BATCH, 2: AXIS_HEIGHT, 3: AXIS_WIDTH},
}

PRECISIONS = ("fp32", "fp16")

# metadata_props keys (ONNX stores strings only; values are parsed back by OnnxMetadata).
KEY_FORMAT = "segue.format"
KEY_FORMAT_VERSION = "segue.format_version"
KEY_EPSILON = "segue.epsilon"
KEY_CODE_BITS = "segue.code_bits"
KEY_IMAGE_SIZE = "segue.image_size"
KEY_PRECISION = "segue.precision"
KEY_SOURCE_SHA256 = "segue.source_content_sha256"
KEY_SEGUE_VERSION = "segue.segue_version"
KEY_DECOYS = "segue.decoys"  # absent in files written before decoy models: 0


@dataclass(frozen=True)
class OnnxMetadata:
    epsilon: float
    code_bits: int
    image_size: int  # the generator's working scale, as in the source checkpoint
    source_sha256: str  # content_sha256 of the checkpoint it was exported from
    segue_version: str
    precision: str = "fp32"  # arithmetic inside the graph; inputs and outputs stay float32
    decoys: int = 0  # > 0: the generator knows codes 0..decoys-1 only (nn.codes.CodeSpace)
    format: str = FORMAT_NAME
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:  # ValueError here; from_props names the file
        problem = model_limit_problem(self.epsilon, self.image_size, self.code_bits)
        if problem:
            raise ValueError(problem)
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; expected one of {PRECISIONS}")

    def to_props(self) -> dict[str, str]:
        return {
            KEY_FORMAT: self.format,
            KEY_FORMAT_VERSION: str(self.format_version),
            KEY_EPSILON: repr(float(self.epsilon)),
            KEY_CODE_BITS: str(self.code_bits),
            KEY_IMAGE_SIZE: str(self.image_size),
            KEY_PRECISION: self.precision,
            KEY_SOURCE_SHA256: self.source_sha256,
            KEY_SEGUE_VERSION: self.segue_version,
            KEY_DECOYS: str(self.decoys),
        }

    @classmethod
    def from_props(cls, props: Mapping[str, str], path: Path) -> OnnxMetadata:
        """Parse and check the metadata of the ONNX file at ``path``; refuse anything else."""
        if props.get(KEY_FORMAT) != FORMAT_NAME:
            found = props.get(KEY_FORMAT)
            raise ArtifactError(
                f"{path} has no segue metadata" if found is None else f"{path} is not a segue generator (format {found!r})",
                "export the model with `segue export CHECKPOINT --out FILE.onnx`; other ONNX files are not accepted",
            )
        if props.get(KEY_FORMAT_VERSION) != str(FORMAT_VERSION):
            raise ArtifactError(
                f"{path} has segue ONNX format version {props.get(KEY_FORMAT_VERSION)!r}; "
                f"this segue reads version {FORMAT_VERSION}",
                "upgrade segue, or re-export the model with this version of `segue export`",
            )
        try:
            return cls(
                epsilon=float(props[KEY_EPSILON]),
                code_bits=int(props[KEY_CODE_BITS]),
                image_size=int(props[KEY_IMAGE_SIZE]),
                source_sha256=props[KEY_SOURCE_SHA256],
                segue_version=props[KEY_SEGUE_VERSION],
                precision=props.get(KEY_PRECISION, "fp32"),
                decoys=int(props.get(KEY_DECOYS, "0")),
            )
        except (KeyError, ValueError) as exc:
            raise ArtifactError(f"{path} has incomplete or malformed segue metadata ({exc})",
                                "re-export it with `segue export`") from exc


# --- the backend -----------------------------------------------------------------------------
CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"


def choose_providers(device: str, available: list[str] | None = None) -> list[str | tuple[str, dict[str, str]]]:
    """Providers to ask ONNX Runtime for, best first, CPU last.

    ``auto`` takes CUDA when this onnxruntime build has it (``onnxruntime-gpu``); ``cuda``
    or ``cuda:N`` insists on it and fails clearly when it is missing; ``cpu`` is CPU only.
    """
    if device not in DEVICE_CHOICES and not device.startswith("cuda:"):
        raise ConfigError(f"unknown device {device!r}", f"use one of {', '.join(DEVICE_CHOICES)}")
    available = ort.get_available_providers() if available is None else available
    if device == "cpu":
        return [CPU_PROVIDER]
    has_cuda = CUDA_PROVIDER in available
    if device.startswith("cuda") and not has_cuda:
        raise ConfigError(
            f"--device {device} was asked for but this onnxruntime has no CUDA provider "
            f"(available: {', '.join(available)})",
            "install onnxruntime-gpu instead of onnxruntime (pip install 'segue[gpu]'), or use --device cpu",
        )
    if not has_cuda:
        return [CPU_PROVIDER]
    device_id = device.split(":", 1)[1] if ":" in device else "0"
    return [(CUDA_PROVIDER, {"device_id": device_id}), CPU_PROVIDER]


def _open_session(path: Path, providers: list[str | tuple[str, dict[str, str]]], threads: int | None) -> ort.InferenceSession:
    if not path.is_file():
        raise ArtifactError(f"model file not found: {path}", "pass --model PATH to an .onnx file made by `segue export`")
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
        raise ArtifactError(f"ONNX Runtime cannot load {path}: {exc}",
                            "is it an .onnx file made by `segue export`? re-export it") from exc


def _check_signature(session: ort.InferenceSession, path: Path, code_bits: int) -> None:
    inputs = {i.name: i for i in session.get_inputs()}
    outputs = [o.name for o in session.get_outputs()]
    if set(inputs) != set(INPUT_NAMES) or outputs != list(OUTPUT_NAMES):
        raise ArtifactError(
            f"{path} has inputs {sorted(inputs)} and outputs {outputs}; "
            f"a segue generator has inputs {list(INPUT_NAMES)} and output {list(OUTPUT_NAMES)}",
            "re-export it with `segue export`",
        )
    if inputs[INPUT_CODE_SIGNS].shape[-1] != code_bits:
        raise ArtifactError(f"{path}: input {INPUT_CODE_SIGNS} has shape {inputs[INPUT_CODE_SIGNS].shape}, "
                            f"but the metadata says {code_bits} code bits", "re-export it with `segue export`")


class OnnxBackend:
    """PerturbationBackend over one ONNX Runtime session (see ``backends.PerturbationBackend``)."""

    def __init__(self, path: Path, device: str = "auto", threads: int | None = None) -> None:
        """``threads``: CPU threads for one operator (None: ONNX Runtime's default, one per core)."""
        if threads is not None and threads < 1:
            raise ConfigError(f"threads must be at least 1, got {threads}")
        path = Path(path)
        self._session = _open_session(path, choose_providers(device), threads)
        props = self._session.get_modelmeta().custom_metadata_map
        self.metadata = OnnxMetadata.from_props(props, path)
        _check_signature(self._session, path, self.metadata.code_bits)
        self.providers: list[str] = self._session.get_providers()
        self.info = BackendInfo(
            name="onnx",
            device=self.providers[0],
            model_path=path,
            epsilon=self.metadata.epsilon,
            image_size=self.metadata.image_size,
            code_bits=self.metadata.code_bits,
            model_sha256=self.metadata.source_sha256,
            file_sha256=model_sha256(path),
            decoys=self.metadata.decoys,
        )

    def perturb(self, images: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """float32 [B, 3, H, W] in [0, 1], int64 [B] (or one code for all) -> float32 delta."""
        images = np.ascontiguousarray(images, dtype=np.float32)
        if images.ndim != 4 or images.shape[1] != 3:
            raise InputError(f"images must be [batch, 3, height, width], got shape {list(images.shape)}")
        signs = code_signs(np.asarray(codes, dtype=np.int64).reshape(-1), self.info.code_bits)
        if signs.shape[0] == 1 and images.shape[0] > 1:
            signs = np.repeat(signs, images.shape[0], axis=0)
        if signs.shape[0] != images.shape[0]:
            raise InputError(f"{images.shape[0]} images but {signs.shape[0]} codes", "give one code per image, or one for all")
        (delta,) = self._session.run([OUTPUT_DELTA], {INPUT_IMAGES: images, INPUT_CODE_SIGNS: signs})
        return delta
