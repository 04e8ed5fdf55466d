"""ONNX Runtime backend: runs a generator exported by ``segue export``.

One InferenceSession per backend, made once and reused for every batch. Execution
providers are the ones asked for that this onnxruntime build has, CPU always last; the
provider that actually took the graph is reported in ``info.device``. The file's segue
metadata (epsilon, code bits, working size, format version) is read from the file, never
guessed; an ONNX file without it is refused.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from ..storage import model_sha256
from ..devices import DEVICE_CHOICES
from ..errors import ArtifactError, ConfigError, InputError
from .onnx_format import INPUT_CODE_SIGNS, INPUT_IMAGES, INPUT_NAMES, OUTPUT_DELTA, OUTPUT_NAMES, OnnxMetadata
from .base import BackendInfo
from ..nn.codes import code_signs

# segue_cli/__init__ sets ORT_TELEMETRY_DISABLED before this import; the runtime's own switch
# too, for builds that read only that (issue 44: nothing leaves the machine).
ort.disable_telemetry_events()

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
    """PerturbationBackend over one ONNX Runtime session (see ``backends.base.PerturbationBackend``)."""

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
