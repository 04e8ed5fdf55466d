"""What the generator sees of a photo, and how its output becomes the protected photo.

A :data:`Planner` turns a decoded photo into a :class:`PhotoPlan`: the inputs to run
through the generator (float32 [3, h, w] arrays at its working scale) and a ``compose``
function that maps the generator's deltas back onto the full-resolution photo. The
pipeline in ``protect`` batches the inputs of many photos by shape, so planners stay
free of batching, threads and files.

:func:`whole_image_plan` (the default) has one input, the whole photo scaled so that its
shorter side is the working size: for a face crop this is exactly what an attacker who
resizes to the working size sees. :func:`face_planner` (``--faces``) gives one input per
detected face (its aligned crop) and warps the deltas back in ``compose``; photos where
it finds no face, and (by default) photos small enough to be face crops already, get
the whole-image plan.

Whatever the planner, the pipeline refuses to write a photo that moved any pixel more
than :func:`change_limit` levels: the L-infinity bound is checked on the 8-bit output.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import cv2
import numpy as np

from ..choices import FACE_MODES, FaceMode
from ..errors import check_choice
from ..faces.detectors import open_detector
from ..faces.geometry import ARCFACE_TEMPLATE_112, FaceDetector, aligned_crops, merge_face_deltas
from ..imageio import resize_to

_STRIP_PIXELS = 1 << 20  # big photos are mapped in strips of about this many pixels


@dataclass
class PhotoPlan:
    inputs: list[np.ndarray]  # float32 [3, h, w] in [0, 1], one per generator call
    compose: Callable[[list[np.ndarray]], np.ndarray]  # deltas (same shapes) -> protected uint8 H x W x 3
    notes: list[str] = field(default_factory=list)  # said to the user for this file
    details: dict[str, Any] = field(default_factory=dict)  # added to the file's JSON line


Planner = Callable[[np.ndarray, int, float], PhotoPlan]
"""(full-resolution H x W x 3 uint8 photo, working size, epsilon) -> plan."""


#: The generator's input is at most this many working sizes long on its longer side. A
#: 16 x 6,000,000 px strip would otherwise reach the generator at full size (its shorter
#: side is under the working size), and its feature maps would take tens of GB; squashed
#: along its length, its delta is stretched back by the full-resolution upsampling.
MAX_WORKING_ASPECT = 8


def working_shape(height: int, width: int, size: int) -> tuple[int, int]:
    """Scale so that the shorter side is ``size``; photos at or below it keep their size.
    The longer side is then capped at ``MAX_WORKING_ASPECT * size``."""
    shorter = min(height, width)
    if shorter > size:
        scale = size / shorter
        height, width = max(size, round(height * scale)), max(size, round(width * scale))
    cap = MAX_WORKING_ASPECT * size
    return min(height, cap), min(width, cap)


def to_chw_float(rgb: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32) / np.float32(255.0)


def whole_image_plan(rgb: np.ndarray, working_size: int, epsilon: float) -> PhotoPlan:
    small = resize_to(rgb, *working_shape(rgb.shape[0], rgb.shape[1], working_size))
    return PhotoPlan(inputs=[to_chw_float(small)], compose=lambda deltas: apply_delta(rgb, deltas[0], epsilon),
                     details={"protection": "whole-image", "faces_found": None})


#: ``auto`` protects face-aware only photos whose shorter side is over this many times the
#: working size. Smaller ones are taken for face crops (WebFace10's 224 px crops for the
#: 112 px model, protocol P112): an attacker resizes those whole, which is exactly what
#: the whole-image plan perturbs, and an aligned crop of a tight crop would be nearly the
#: same picture anyway.
AUTO_FACES_FACTOR = 2


def uses_faces(mode: FaceMode, height: int, width: int, working_size: int) -> bool:
    if mode == "auto":
        return min(height, width) > AUTO_FACES_FACTOR * working_size
    return mode == "on"


def face_planner(detector: FaceDetector, mode: FaceMode = "auto", *,
                 template: np.ndarray | str = ARCFACE_TEMPLATE_112, feather: float = 0.25) -> Planner:
    """A planner that perturbs each face on its aligned crop (``faces.merge_face_deltas``
    warps the perturbations back); every face of a photo gets the photo's side-information
    code, because the pipeline gives all inputs of a photo its code. Photos with no face
    found fall back to the whole image, with a note. ``detector`` is shared by the
    pipeline's decode threads: it must be safe to call from several (both built-in ones are)."""
    check_choice("faces mode", mode, FACE_MODES)

    def plan(rgb: np.ndarray, working_size: int, epsilon: float) -> PhotoPlan:
        height, width = rgb.shape[:2]
        if not uses_faces(mode, height, width, working_size):
            fallback = whole_image_plan(rgb, working_size, epsilon)
            if mode == "auto":
                fallback.details["reason"] = (f"shorter side {min(height, width)} px <= {AUTO_FACES_FACTOR * working_size} px: "
                                              "taken for a face crop")
            return fallback
        found = detector.detect(rgb)
        if not found:
            fallback = whole_image_plan(rgb, working_size, epsilon)
            fallback.notes.append(f"no face found ({detector.name}): protected as a whole image")
            fallback.details.update(detector=detector.name, faces_found=0, reason="no face found")
            return fallback
        matrices, crops = aligned_crops(rgb, found, working_size, template)

        def compose(deltas: list[np.ndarray]) -> np.ndarray:
            merged = merge_face_deltas(height, width, np.stack(deltas), matrices, epsilon=epsilon, feather=feather)
            out = rgb.copy()  # nothing outside the faces' feathered squares changes
            x0, y0, x1, y1 = merged.region
            if x1 > x0 and y1 > y0:
                out[y0:y1, x0:x1] = apply_delta(rgb[y0:y1, x0:x1], merged.delta.transpose(2, 0, 1), epsilon)
            return out

        return PhotoPlan(inputs=list(crops), compose=compose,
                         details={"protection": "faces", "detector": detector.name, "faces_found": len(found),
                                  "faces": [face.to_dict() for face in found]})

    return plan


def _axis_weights(out_len: int, in_len: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights of bilinear interpolation with half-pixel centres
    (``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)``, cv2 INTER_LINEAR)."""
    src = np.maximum((np.arange(out_len, dtype=np.float64) + 0.5) * (in_len / out_len) - 0.5, 0.0)
    first = np.minimum(src.astype(np.int64), in_len - 1)
    second = np.minimum(first + 1, in_len - 1)
    return first, second, (src - first).astype(np.float32)


def upsample_strips(delta_hwc: np.ndarray, height: int, width: int) -> Iterator[tuple[int, np.ndarray]]:
    """``delta_hwc`` (h x w x 3 float32) bilinearly resized to height x width, yielded as
    (first row, rows x width x 3) strips so a large photo never needs a full-size float copy."""
    strip = max(1, _STRIP_PIXELS // width)
    if delta_hwc.shape[:2] == (height, width):  # already full size (e.g. a face-aware delta)
        for start in range(0, height, strip):
            yield start, delta_hwc[start : start + strip].copy()
        return
    if height * width <= _STRIP_PIXELS:
        yield 0, cv2.resize(delta_hwc, (width, height), interpolation=cv2.INTER_LINEAR)
        return
    if delta_hwc.shape[0] * width > _STRIP_PIXELS:
        # A very wide photo: even one full-width copy of the small delta's rows is too big
        # (16 x 6,000,000 px: 1.2 GB), so interpolate rows, then columns, strip by strip.
        y0, y1, wy = _axis_weights(height, delta_hwc.shape[0])
        x0, x1, wx = _axis_weights(width, delta_hwc.shape[1])
        for start in range(0, height, strip):
            rows = slice(start, min(height, start + strip))
            small = delta_hwc[y0[rows]] * (1 - wy[rows])[:, None, None] + delta_hwc[y1[rows]] * wy[rows][:, None, None]
            yield start, small[:, x0] * (1 - wx)[None, :, None] + small[:, x1] * wx[None, :, None]
        return
    wide = cv2.resize(delta_hwc, (width, delta_hwc.shape[0]), interpolation=cv2.INTER_LINEAR)  # columns first
    y0, y1, wy = _axis_weights(height, delta_hwc.shape[0])
    for start in range(0, height, strip):
        rows = slice(start, min(height, start + strip))
        yield start, wide[y0[rows]] * (1 - wy[rows])[:, None, None] + wide[y1[rows]] * wy[rows][:, None, None]


def luma_delta(delta: np.ndarray) -> np.ndarray:
    """A [3, h, w] perturbation reduced to its luminance (ITU-R 601-2 weights), the same on
    R, G and B: a black-and-white photo stays black and white, and since the weights are a
    convex combination the bound |delta| <= epsilon still holds."""
    luma = 0.299 * delta[0] + 0.587 * delta[1] + 0.114 * delta[2]
    return np.broadcast_to(luma, delta.shape).astype(delta.dtype)


def change_limit(epsilon: float) -> int:
    """Largest per-pixel change in 8-bit levels that stays within epsilon (8 for 8/255)."""
    return math.floor(epsilon * 255.0 + 1e-6)


def apply_delta(rgb: np.ndarray, delta: np.ndarray, epsilon: float) -> np.ndarray:
    """The protected photo: ``delta`` (float32 [3, h, w], any h x w) bilinearly upsampled to
    the photo, clipped to +/-``change_limit`` levels, added, rounded to 8 bits, kept in
    [0, 255]. Adding a delta within +/-limit (an integer) to integer pixels and rounding
    moves no pixel more than limit levels: the bound is exact in 8-bit units."""
    limit = change_limit(epsilon)
    out = np.empty_like(rgb)
    delta_hwc = np.ascontiguousarray(delta.transpose(1, 2, 0), dtype=np.float32) * np.float32(255.0)
    for start, levels in upsample_strips(delta_hwc, rgb.shape[0], rgb.shape[1]):
        rows = slice(start, start + levels.shape[0])
        np.clip(levels, -limit, limit, out=levels)
        levels += rgb[rows]
        np.rint(levels, out=levels)
        np.clip(levels, 0, 255, out=levels)
        out[rows] = levels.astype(np.uint8)
    return out


def within_limit(original: np.ndarray, protected: np.ndarray, epsilon: float) -> bool:
    """True when no pixel of ``protected`` is more than ``change_limit`` levels from ``original``."""
    if original.shape != protected.shape:
        return False
    limit = change_limit(epsilon)
    step = max(1, _STRIP_PIXELS // max(1, original.shape[1]))
    return all(
        int(np.abs(protected[i : i + step].astype(np.int16) - original[i : i + step]).max(initial=0)) <= limit
        for i in range(0, original.shape[0], step)
    )


def default_planner(faces: FaceMode, detector_name: str, working_size: int) -> tuple[Planner, str]:
    """The planner ``faces`` asks for, with its detector opened once for the run, and a
    description for the summary."""
    if faces == "off":
        return whole_image_plan, "whole-image (--no-faces)"
    detector = open_detector(detector_name)
    if faces == "on":
        return face_planner(detector, "on"), (f"face-aware on every photo (--faces, detector {detector.name}); "
                                              "photos without a face: whole-image")
    threshold = AUTO_FACES_FACTOR * working_size
    return face_planner(detector, "auto"), (
        f"face-aware (detector {detector.name}) for photos whose shorter side is over {threshold} px "
        f"({AUTO_FACES_FACTOR} x the model's {working_size} px working size), whole-image for smaller ones "
        "(face crops) and photos without a face; --faces / --no-faces to force")
