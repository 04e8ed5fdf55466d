"""The attacker's data pipeline: what happens to each photo before the attacker's resize.

``none``: the photo itself is resized to the attacker's size (P112: the photos are
already face crops). ``detect-align``: the attacker is a scraper of whole photos; it
detects the faces in every photo (after any full-resolution counter-measure: the scraper
sees what it downloaded), keeps the largest (the person the photo is labelled with) and
aligns it with its five landmarks to the ArcFace 112 x 112 crop
(:func:`segue_cli.evaluation.attacker_pipeline.align_largest`, the same code as the defender's).

Photos where no face is found are NOT dropped: they get a centred square crop (the
shorter side) resized to the aligned size, so every identity keeps all its photos and
protected and baseline runs train on the same number of images. They are counted per set
and listed (first few) in results.json and report.md.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .attacker_pipeline import align_largest
from ..datasets import decode_images
from ..faces.geometry import FaceDetector
from ..imageio import resize_to

ALIGN_SIZE = 112  # the canonical ArcFace crop a scraper aligns to
ALIGN_TEMPLATE = "arcface"
NO_FACE_FALLBACK = "centred square crop of the shorter side, resized to the aligned size (photo kept)"
MAX_LISTED_NO_FACE = 20

__all__ = ["ALIGN_SIZE", "AlignmentCounts", "centre_square", "detect_align_images"]


@dataclass
class AlignmentCounts:
    """What the scraper found in one set."""

    images: int = 0
    face_found: int = 0
    multi_face: int = 0  # photos with more than one face (largest kept)
    no_face: list[Path] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "images": self.images, "face_found": self.face_found, "no_face": len(self.no_face),
            "multi_face": self.multi_face,
            "no_face_examples": [str(p) for p in sorted(self.no_face)[:MAX_LISTED_NO_FACE]],
        }


def centre_square(rgb: np.ndarray, size: int) -> np.ndarray:
    """The no-face fallback: the centred square of the shorter side, resized to ``size``."""
    height, width = rgb.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return resize_to(np.ascontiguousarray(rgb[top : top + side, left : left + side]), size, size)


def detect_align_images(
    paths: list[Path],
    size: int,
    detector: FaceDetector,
    *,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
    workers: int = 2,
    on_done: Callable[[], None] | None = None,
) -> tuple[torch.Tensor, AlignmentCounts]:
    """Decode each photo once, apply ``transform`` at full resolution, detect-align the
    largest face to ``ALIGN_SIZE`` (fallback: :func:`centre_square`), resize to ``size``.
    Returns (uint8 [N, 3, size, size] in the order of ``paths``, counts). Any unreadable
    photo raises one error listing them all, as the plain decode does."""
    counts = AlignmentCounts(images=len(paths))
    lock = threading.Lock()

    def align(path: Path, rgb: np.ndarray) -> np.ndarray:
        crop, found = align_largest(rgb, detector, ALIGN_SIZE, template=ALIGN_TEMPLATE)
        with lock:
            if crop is None:
                counts.no_face.append(path)
            else:
                counts.face_found += 1
                counts.multi_face += found > 1
        return crop if crop is not None else centre_square(rgb, ALIGN_SIZE)

    images, _, _ = decode_images(paths, size, transform=transform, prepare=align, workers=workers, on_done=on_done)
    return images, counts
