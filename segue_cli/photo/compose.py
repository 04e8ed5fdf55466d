"""One photo's steps around the generator, shared by every engine and ``Protector`` so
that all write the same bytes: decode and plan (:func:`decode_photo`), batch the
generator's inputs (:class:`ShapeBatches`), compose the generator's deltas into the
protected pixels (:func:`compose_protected`), encode the output file
(:func:`encode_protected`), and the wording of each kind of failure.

Plans, what the generator sees of a photo: a :data:`Planner` turns a decoded photo into a
:class:`PhotoPlan`: the inputs to run through the generator (float32 [3, h, w] arrays at its working scale) and a ``compose``
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
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Protocol

import cv2
import numpy as np

from ..choices import DEFAULT_QUALITY, FACE_MODES, OUTPUT_FORMATS, FaceMode, check_choice
from ..errors import InputError
from ..faces.detectors import open_detector
from ..faces.geometry import ARCFACE_TEMPLATE_112, FaceDetector, aligned_crops, merge_face_deltas
from ..imageio import LoadedImage, encode_image, load_image, resize_to, too_small
from .cloak import CloakConfig, shared_cloak

if TYPE_CHECKING:
    from ..backends import PerturbationBackend


# --- plans ---------------------------------------------------------------------------------------
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


# --- decode, batch, compose, encode ------------------------------------------------------------
Shape = tuple[int, ...]
Batch = tuple[list[tuple[Any, int]], "np.ndarray | None", "Exception | None"]


def decode_photo(source: Path | bytes, working_size: int, epsilon: float, max_pixels: int, planner: Planner
                 ) -> tuple[LoadedImage, PhotoPlan]:
    """A photo (a path or its file's bytes) decoded and planned: every engine's first step."""
    image = load_image(source, max_pixels=max_pixels)
    problem = too_small(*image.size)
    if problem:
        raise InputError(problem)
    return image, planner(image.rgb, working_size, epsilon)


class ShapeBatches:
    """Generator inputs waiting for their call, grouped by working shape: the one way the
    local engine, the Ray engine and ``Protector`` batch the generator (one call per shape,
    at most ``size`` inputs). Each input belongs to an owner (a photo in flight) at an index
    among its plan's inputs. The generator's result is per sample, so the grouping never
    changes a file's bytes."""

    def __init__(self, size: int | None = None) -> None:
        self.size = size
        self.waiting: dict[Shape, list[tuple[Any, int, np.ndarray, int]]] = {}

    def __bool__(self) -> bool:
        return bool(self.waiting)

    def add(self, owner: Any, index: int, pixels: np.ndarray, code: int) -> bool:
        """Queue one input; True when its shape now fills a batch."""
        entries = self.waiting.setdefault(pixels.shape, [])
        entries.append((owner, index, pixels, code))
        return self.size is not None and len(entries) >= self.size

    def fullest(self) -> Shape:
        return max(self.waiting, key=lambda shape: len(self.waiting[shape]))

    def run(self, backend: PerturbationBackend, shape: Shape) -> Batch:
        """One generator call over the inputs waiting at ``shape``: each one's (owner,
        index), then the deltas in that order, or None and the exception it raised."""
        entries = self.waiting.pop(shape)
        images = np.stack([pixels for _, _, pixels, _ in entries])
        codes = np.array([code for _, _, _, code in entries], dtype=np.int64)
        try:
            deltas, failure = backend.perturb(images, codes), None
        except Exception as exc:  # noqa: BLE001 (the caller reports it against each file, or raises it)
            deltas, failure = None, exc
        return [(owner, index) for owner, index, _, _ in entries], deltas, failure

    def run_all(self, backend: PerturbationBackend) -> Iterator[Batch]:
        """Every waiting input, one call per shape, in the order the shapes first came."""
        while self.waiting:
            yield self.run(backend, next(iter(self.waiting)))


def compose_protected(image: LoadedImage, plan: PhotoPlan, deltas: list[np.ndarray], epsilon: float,
                      cloak: CloakConfig | None = None, person: str | None = None) -> np.ndarray:
    """The protected pixels of one photo from the generator's deltas: composed at full
    resolution by its plan (a black-and-white photo gets their luminance only), cloaked
    against the ensemble of face networks when ``cloak`` is given (its figures go into the plan's
    details; ``person``: who the photo shows, whose own target ``--cloak-target others`` planned),
    then checked against the bound."""
    protected = plan.compose([luma_delta(d) for d in deltas] if image.grayscale else deltas)
    if cloak is not None:
        paired = cloak.toward(person)
        cloaked = shared_cloak(cloak).cloak(image.rgb, protected, epsilon, toward=paired[1] if paired else None)
        protected = cloaked.pixels
        plan.details.update(cloak_similarity=round(cloaked.similarity, 4), cloak_face_found=cloaked.face_found)
        if paired:
            plan.details["cloak_toward"] = paired[0]
        if not cloaked.face_found:
            plan.notes.append("identity cloak: no face found, so this photo is not cloaked (the generator's "
                              "protection is applied as usual)")
    if not within_limit(image.rgb, protected, epsilon):
        raise RuntimeError(f"the planned output moves pixels by more than epsilon = {epsilon:.4f}; not written")
    return protected


def encode_protected(image: LoadedImage, plan: PhotoPlan, deltas: list[np.ndarray], options: OutputOptions,
                     epsilon: float, person: str | None = None) -> tuple[bytes, list[str]]:
    """The output file's bytes and the notes for its report: every engine's and
    ``Protector.protect_file``'s last step before writing, so all write the same bytes.
    ``person``: who the photo shows (its cloak target under ``--cloak-target others``)."""
    protected = compose_protected(image, plan, deltas, epsilon, options.cloak, person)
    notes = list(image.notes) + list(plan.notes)
    if image.alpha is not None and options.image_format == "jpeg":
        notes.append("transparency dropped: JPEG has no alpha channel")
    data = encode_image(protected, alpha=image.alpha, image_format=options.image_format,
                        quality=options.output_quality or DEFAULT_QUALITY, icc_profile=image.icc_profile,
                        exif=image.exif if options.keep_metadata else None)
    return data, notes


class OutputOptions(Protocol):
    """What decides an output file's bytes beyond the generator (``ProtectConfig`` is one)."""

    @property
    def image_format(self) -> str: ...
    @property
    def output_quality(self) -> int | None: ...  # JPEG/WebP quality; None for PNG
    @property
    def keep_metadata(self) -> bool: ...
    @property
    def cloak(self) -> CloakConfig | None: ...


@dataclass(frozen=True)
class FileOptions:
    """:class:`OutputOptions` for one file (``Protector.protect_file``, the server)."""

    image_format: str = "png"
    quality: int | None = None  # JPEG/WebP only; None: 95
    keep_metadata: bool = False
    cloak: CloakConfig | None = None

    @property
    def output_quality(self) -> int | None:
        return (self.quality or DEFAULT_QUALITY) if OUTPUT_FORMATS[self.image_format].lossy else None


def failure_reason(exc: BaseException, path: Path | str) -> str:
    """The user-facing reason, without repeating the path the report already names."""
    if isinstance(exc, InputError):
        text = exc.message.removeprefix(f"{path}: ").removeprefix("<bytes>: ")
        return f"{text} ({exc.hint})" if exc.hint else text
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
    return f"internal error ({exc.__class__.__name__}: {exc})"


def write_failure(exc: BaseException, source: Path | str, output: Path | str) -> str:
    """Why composing, encoding or writing one output failed (every engine's wording)."""
    if isinstance(exc, OSError):
        return f"cannot write {output}: {exc.strerror or exc}"
    return failure_reason(exc, source)


def generator_failure(exc: BaseException) -> str:
    """Why a batch's generator call failed, for each of its files (every engine's wording)."""
    return f"the generator failed on this batch ({exc.__class__.__name__}: {exc})"
