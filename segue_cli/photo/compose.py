"""One photo's steps around the generator, shared by every engine and ``Protector`` so
that all write the same bytes: decode and plan (:func:`decode_photo`), batch the
generator's inputs (:class:`ShapeBatches`), compose the generator's deltas into the
protected pixels (:func:`compose_protected`), encode the output file
(:func:`encode_protected`), and the wording of each kind of failure."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Protocol

import numpy as np

from ..errors import InputError
from ..formats import DEFAULT_QUALITY, OUTPUT_FORMATS
from ..imageio import LoadedImage, encode_image, load_image, too_small
from .cloak import CloakConfig, IdentityCloak, shared_cloak
from .plans import PhotoPlan, Planner, luma_delta, within_limit

if TYPE_CHECKING:
    from ..backends.base import PerturbationBackend

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
                      cloak: IdentityCloak | None = None) -> np.ndarray:
    """The protected pixels of one photo from the generator's deltas: composed at full
    resolution by its plan (a black-and-white photo gets their luminance only), cloaked
    against the ensemble of face networks when ``cloak`` is given (its figures go into the plan's
    details), then checked against the bound."""
    protected = plan.compose([luma_delta(d) for d in deltas] if image.grayscale else deltas)
    if cloak is not None:
        cloaked = cloak.cloak(image.rgb, protected, epsilon)
        protected = cloaked.pixels
        plan.details.update(cloak_similarity=round(cloaked.similarity, 4), cloak_face_found=cloaked.face_found)
        if not cloaked.face_found:
            plan.notes.append("identity cloak: no face found, so this photo is not cloaked (the generator's "
                              "protection is applied as usual)")
    if not within_limit(image.rgb, protected, epsilon):
        raise RuntimeError(f"the planned output moves pixels by more than epsilon = {epsilon:.4f}; not written")
    return protected


def encode_protected(image: LoadedImage, plan: PhotoPlan, deltas: list[np.ndarray], options: OutputOptions,
                     epsilon: float) -> tuple[bytes, list[str]]:
    """The output file's bytes and the notes for its report: every engine's and
    ``Protector.protect_file``'s last step before writing, so all write the same bytes."""
    protected = compose_protected(image, plan, deltas, epsilon, shared_cloak(options.cloak) if options.cloak else None)
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
