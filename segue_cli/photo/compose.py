"""One photo's steps around the generator, shared by every engine and ``Protector`` so
that all write the same bytes: decode and plan (:func:`decode_photo`), compose the
generator's deltas into the protected pixels (:func:`compose_protected`), encode the
output file (:func:`encode_protected`), and the wording of each kind of failure."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from ..errors import InputError
from ..formats import DEFAULT_QUALITY, OUTPUT_FORMATS
from ..imageio import LoadedImage, encode_image, load_image, too_small
from .cloak import CloakConfig, IdentityCloak, shared_cloak
from .plans import PhotoPlan, Planner, luma_delta, within_limit


def decode_photo(source: Path | bytes, working_size: int, epsilon: float, max_pixels: int, planner: Planner
                 ) -> tuple[LoadedImage, PhotoPlan]:
    """A photo (a path or its file's bytes) decoded and planned: every engine's first step."""
    image = load_image(source, max_pixels=max_pixels)
    problem = too_small(*image.size)
    if problem:
        raise InputError(problem)
    return image, planner(image.rgb, working_size, epsilon)


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
