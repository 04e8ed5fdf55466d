"""The exported ONNX generator's contract, in one place: graph input and output names,
dynamic axes, opset, and the metadata every segue ONNX file carries.

The graph computes ``delta = epsilon * G(images, code_signs)``:

* ``images``: float32 [batch, 3, height, width], RGB in [0, 1], any height and width;
* ``code_signs``: float32 [batch, code_bits], the side-information code as +/-1, MSB
  first (``side_info.code_to_signs``);
* ``delta``: float32 [batch, 3, height, width], |delta| < epsilon.

The file's ``metadata_props`` say what epsilon, code width and working size the graph was
exported with, so the loader reads them instead of guessing. This module only needs the
standard library: the exporter (``export.py``) writes these keys, the ONNX Runtime
backend (``onnx_backend.py``) reads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from ..artifacts import model_limit_problem
from ..errors import ArtifactError

FORMAT_NAME = "segue-generator-onnx"
FORMAT_VERSION = 1
DEFAULT_OPSET = 18  # the torch.export-based exporter's lowest; ONNX Runtime >= 1.14 runs it

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
    decoys: int = 0  # > 0: the generator knows codes 0..decoys-1 only (side_info.CodeSpace)
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
