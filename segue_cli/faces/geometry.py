"""Face-aware protection of real photos.

People protect whole photos (selfies, group shots, 12-megapixel phone pictures); an
attacker who scrapes them detects every face, aligns it with its five landmarks to a
small canonical crop (112 x 112 is the usual size) and trains on that crop. A
perturbation spread over a 4000 px photo is averaged away by that crop-and-resize, so
:func:`face_aware_delta` makes the perturbation where the attacker will look:

1. detect faces (any :class:`FaceDetector`: YuNet or dlib, see ``face_detectors``);
2. align each face to the canonical crop with a similarity transform from its five
   landmarks (the standard ArcFace 112 x 112 template by default);
3. ask ``perturb_fn`` (the generator) for a perturbation of each aligned crop;
4. warp each perturbation back into the photo with the inverse transform. The crop's
   whole square gets the full perturbation; a cosine feather *outside* the square
   (``feather`` x crop size wide, filled by mirroring the perturbation) fades it to zero
   so there is no visible edge. Where faces overlap, their perturbations are averaged
   with the feather weights, so |delta| <= epsilon holds everywhere by construction
   (and is clipped once more against rounding).

An attacker who aligns the protected photo with the same landmarks samples the photo at
exactly the points the perturbation was warped from, so the crop they train on carries
the generator's perturbation unchanged, whatever the photo's resolution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol, Sequence

import cv2
import numpy as np

from ..errors import ConfigError

#: The standard five-point template of ArcFace / insightface for 112 x 112 crops, in
#: (x, y) pixel coordinates: image-left eye, image-right eye, nose tip, image-left mouth
#: corner, image-right mouth corner.
ARCFACE_TEMPLATE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]]
)

#: Where the same five points sit, on average, in WebFace10's 224 px crops scaled to 112 px
#: (YuNet on 400 train photos; ``python research/fit_face_templates.py``): the framing
#: the default generator was trained on. It is ArcFace's, about 1.13x larger.
WEBFACE10_TEMPLATE_112 = np.array(
    [[36.74, 50.53], [76.58, 51.04], [56.38, 75.62], [38.86, 91.51], [73.05, 91.87]]
)

TEMPLATES = {"arcface": ARCFACE_TEMPLATE_112, "webface10": WEBFACE10_TEMPLATE_112}
TEMPLATE_SIZE = 112


@dataclass(frozen=True)
class Face:
    """One detected face, in the photo's full-resolution pixel coordinates.

    ``landmarks`` is a (5, 2) float array of (x, y) in the order of
    :data:`ARCFACE_TEMPLATE_112` (pixel centres at integer coordinates). ``score`` is the
    detector's own confidence; its scale differs between detectors.
    """

    box: tuple[float, float, float, float]  # x0, y0, x1, y1
    landmarks: np.ndarray
    score: float

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "box": [round(float(v), 1) for v in self.box],
            "landmarks": [[round(float(x), 1), round(float(y), 1)] for x, y in self.landmarks],
            "score": round(float(self.score), 4),
        }


class FaceDetector(Protocol):
    """Anything that finds faces: ``detect(rgb uint8 H x W x 3) -> list[Face]``."""

    name: str

    def detect(self, rgb: np.ndarray) -> list[Face]: ...


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation; no reflection)
    mapping ``src`` points onto ``dst`` points (Umeyama 1991). Returns a 2 x 3 matrix."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    u, s, vt = np.linalg.svd(dst_c.T @ src_c / len(src))
    d = np.array([1.0, 1.0 if np.linalg.det(u) * np.linalg.det(vt) >= 0 else -1.0])
    rotation = u @ np.diag(d) @ vt
    variance = (src_c**2).sum() / len(src)
    if variance <= 1e-12:
        raise ConfigError("degenerate landmarks: all five points coincide", "the detector returned a bad face")
    scale = float((s * d).sum() / variance)
    translation = dst_mean - scale * rotation @ src_mean
    return np.hstack([scale * rotation, translation[:, None]])


def template_points(size: int, template: np.ndarray | str = ARCFACE_TEMPLATE_112) -> np.ndarray:
    points = TEMPLATES[template] if isinstance(template, str) else np.asarray(template, dtype=np.float64)
    # Scale about pixel centres: in a 112 crop pixel i covers [i - 0.5, i + 0.5].
    return (points + 0.5) * (size / TEMPLATE_SIZE) - 0.5


def alignment_matrix(landmarks: np.ndarray, size: int = 112, template: np.ndarray | str = ARCFACE_TEMPLATE_112) -> np.ndarray:
    """2 x 3 matrix from photo coordinates to the ``size`` x ``size`` canonical crop."""
    return similarity_transform(landmarks, template_points(size, template))


def _as3(matrix: np.ndarray) -> np.ndarray:
    return np.vstack([matrix, [0.0, 0.0, 1.0]])


def _footprint(matrix: np.ndarray, lo: float, hi: float, height: int, width: int) -> tuple[int, int, int, int] | None:
    """Photo pixel rectangle (x0, y0, x1, y1, exclusive) covered by crop coords [lo, hi]^2."""
    inverse = cv2.invertAffineTransform(matrix)
    corners = np.array([[lo, lo, 1.0], [hi, lo, 1.0], [lo, hi, 1.0], [hi, hi, 1.0]]) @ inverse.T
    x0 = max(0, math.floor(corners[:, 0].min()) - 1)
    y0 = max(0, math.floor(corners[:, 1].min()) - 1)
    x1 = min(width, math.ceil(corners[:, 0].max()) + 2)
    y1 = min(height, math.ceil(corners[:, 1].max()) + 2)
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def align_face(rgb: np.ndarray, matrix: np.ndarray, size: int = 112, antialias: bool = True) -> np.ndarray:
    """The ``size`` x ``size`` uint8 crop of ``rgb`` under ``matrix`` (photo -> crop).

    Parts of the crop outside the photo are black, as in insightface's ``norm_crop``.
    With ``antialias`` (default) a crop that shrinks the face more than 1.5x is taken from
    an area-averaged copy of the face region, not by point-sampling the full photo
    (plain ``cv2.warpAffine``, ``antialias=False``, aliases badly on large photos).
    """
    scale = math.sqrt(abs(np.linalg.det(matrix[:, :2])))
    height, width = rgb.shape[:2]
    flags: dict[str, Any] = dict(flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    region = _footprint(matrix, -0.5, size - 0.5, height, width) if antialias and scale < 1 / 1.5 else None
    if region is None:
        return cv2.warpAffine(rgb, matrix, (size, size), **flags)
    x0, y0, x1, y1 = region
    small_w, small_h = max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale))
    small = cv2.resize(rgb[y0:y1, x0:x1], (small_w, small_h), interpolation=cv2.INTER_AREA)
    fx, fy = small_w / (x1 - x0), small_h / (y1 - y0)
    # photo -> small, keeping pixel centres: xs = (x - x0 + 0.5) * fx - 0.5
    to_small = np.array([[fx, 0.0, (0.5 - x0) * fx - 0.5], [0.0, fy, (0.5 - y0) * fy - 0.5], [0.0, 0.0, 1.0]])
    return cv2.warpAffine(small, (_as3(matrix) @ np.linalg.inv(to_small))[:2], (size, size), **flags)


def _feather_mask(size: int, pad: int) -> np.ndarray:
    """1 on the crop square, cosine fall-off to 0 over ``pad`` pixels around it."""
    coords = np.arange(size + 2 * pad, dtype=np.float32) - pad
    outside = np.maximum(0.0, np.maximum(-coords, coords - (size - 1)))
    distance = np.hypot(outside[:, None], outside[None, :])
    if pad == 0:
        return (distance == 0).astype(np.float32)
    return (0.5 * (1.0 + np.cos(np.pi * np.minimum(distance / pad, 1.0)))).astype(np.float32)


def _padded_matrix(matrix: np.ndarray, pad: int) -> np.ndarray:
    """Photo -> crop-with-``pad``-pixel-border coordinates."""
    shifted = matrix.copy()
    shifted[:, 2] += pad
    return shifted


def _paste(total: np.ndarray, weight: np.ndarray, origin: tuple[int, int], delta_hwc: np.ndarray,
           matrix: np.ndarray, pad: int, region: tuple[int, int, int, int]) -> None:
    """Add one face's feathered perturbation (premultiplied by its mask) into ``total``,
    which holds the photo's pixels from ``origin`` (x, y) on; ``region`` is the face's
    footprint in photo coordinates."""
    size = delta_hwc.shape[0]
    padded = np.pad(delta_hwc, ((pad, pad), (pad, pad), (0, 0)), mode="reflect") if pad else delta_hwc
    mask = _feather_mask(size, pad)
    layers = np.dstack([padded * mask[:, :, None], mask]).astype(np.float32)
    x0, y0, x1, y1 = region
    roi_to_padded = (_as3(_padded_matrix(matrix, pad)) @ np.array([[1.0, 0, x0], [0, 1.0, y0], [0, 0, 1.0]]))[:2]
    warped = cv2.warpAffine(
        layers, roi_to_padded, (x1 - x0, y1 - y0),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT, borderValue=0,
    )
    rows, cols = slice(y0 - origin[1], y1 - origin[1]), slice(x0 - origin[0], x1 - origin[0])
    total[rows, cols] += warped[:, :, :3]
    weight[rows, cols] += warped[:, :, 3]


def aligned_crops(rgb: np.ndarray, faces: Sequence[Face], working_size: int = 112,
                  template: np.ndarray | str = ARCFACE_TEMPLATE_112) -> tuple[list[np.ndarray], np.ndarray]:
    """Each face's alignment matrix (photo -> crop) and its crop as float32 [N, 3, S, S] in [0, 1]."""
    matrices = [alignment_matrix(face.landmarks, working_size, template) for face in faces]
    crops = np.stack([align_face(rgb, m, working_size) for m in matrices]).astype(np.float32) / np.float32(255.0)
    return matrices, np.ascontiguousarray(crops.transpose(0, 3, 1, 2))


@dataclass
class FaceDelta:
    """The merged perturbation of all faces, only where it is nonzero: ``delta`` (float32
    h x w x 3, [0, 1] pixel units) covers photo pixels ``region`` = (x0, y0, x1, y1)."""

    delta: np.ndarray
    region: tuple[int, int, int, int]

    def full_size(self, height: int, width: int) -> np.ndarray:
        full = np.zeros((height, width, 3), dtype=np.float32)
        x0, y0, x1, y1 = self.region
        full[y0:y1, x0:x1] = self.delta
        return full


def merge_face_deltas(height: int, width: int, deltas: np.ndarray, matrices: Sequence[np.ndarray], *,
                      epsilon: float, feather: float = 0.25) -> FaceDelta:
    """Warp each face's perturbation (``deltas`` float32 [N, 3, S, S]) back into a
    ``height`` x ``width`` photo with a cosine feather, averaging where faces overlap.
    Memory follows the faces' area, not the photo's (a 12 MP photo with one face stays small)."""
    if not 0 <= feather <= 0.5:
        raise ConfigError(f"feather {feather} is not in [0, 0.5]", "feather is a fraction of the crop size")
    size = deltas.shape[-1]
    pad = round(feather * size)
    placed = []
    for delta, matrix in zip(deltas, matrices):
        region = _footprint(_padded_matrix(matrix, pad), -0.5, size + 2 * pad - 0.5, height, width)
        if region is not None:
            placed.append((delta, matrix, region))
    if not placed:
        return FaceDelta(np.zeros((0, 0, 3), np.float32), (0, 0, 0, 0))
    x0, y0 = min(r[0] for _, _, r in placed), min(r[1] for _, _, r in placed)
    x1, y1 = max(r[2] for _, _, r in placed), max(r[3] for _, _, r in placed)
    total = np.zeros((y1 - y0, x1 - x0, 3), dtype=np.float32)
    weight = np.zeros((y1 - y0, x1 - x0), dtype=np.float32)
    for delta, matrix, region in placed:
        _paste(total, weight, (x0, y0), delta.transpose(1, 2, 0).astype(np.float32), matrix, pad, region)
    # Overlapping faces: weighted average, so the bound holds without a second clip.
    np.divide(total, np.maximum(weight, 1.0)[:, :, None], out=total)
    np.clip(total, -epsilon, epsilon, out=total)
    return FaceDelta(total, (x0, y0, x1, y1))
