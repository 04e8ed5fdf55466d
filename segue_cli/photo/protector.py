"""Protect images in memory: ``Protector`` opens the model, backend and face detector once
and protects one image per call, the way ``segue protect`` protects each file.

    from segue_cli import CloakConfig, Protector
    protector = Protector()                       # the shipped default model
    safe = protector.protect(image, identity="Ada Lovelace")
    cloaking = Protector(cloak=CloakConfig())     # also against three face networks (segue[cloak])

``image`` may be a PIL image (not mode F: a float image's range is not stated, so it is
refused), a numpy array (H x W x 3 or H x W x 4 uint8, or H x W
gray), the bytes of an image file, or a path; what comes back is of the same kind (bytes
of the same format for bytes; a PIL image for a path, which is never written to). EXIF
orientation is applied, transparency kept, colour profiles converted to sRGB, black-and-
white images stay black and white, exactly as in the folder command (the same loader,
planner and compose step).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any, Union

import numpy as np
from PIL import Image

from .cloak import CloakConfig, shared_cloak
from ..backends import PerturbationBackend, at_strength, open_backend
from ..choices import DEFAULT_MAX_PIXELS, DEFAULT_STRENGTH, FACE_MODES, FaceMode, OUTPUT_FORMATS, STRENGTHS, check_choice, format_of_pillow, lossy_warning
from ..errors import InputError, SegueWarning
from ..imageio import LoadedImage, encode_image, load_image
from .compose import FileOptions, PhotoPlan, Planner, ShapeBatches, compose_protected, decode_photo, default_planner, encode_protected
from ..nn.codes import label_code

ImageLike = Union[Image.Image, np.ndarray, bytes, str, Path]


class Protector:
    """One model, backend and face detector, opened once and reused for every image."""

    def __init__(self, model: str | Path | None = None, backend: str = "auto", device: str = "auto",
                 faces: FaceMode = "auto", detector: str = "auto", max_pixels: int = DEFAULT_MAX_PIXELS,
                 threads: int | None = None, cloak: CloakConfig | None = None, strength: str = DEFAULT_STRENGTH) -> None:
        check_choice("faces mode", faces, FACE_MODES)
        check_choice("strength", strength, STRENGTHS)
        self.model_backend = open_backend(model, backend, device, threads=threads)
        self.backend = at_strength(self.model_backend, strength)
        self.info = self.backend.info
        self.planner, self.protection = default_planner(faces, detector, self.info.image_size)
        self._detector_name, self._planners = detector, {faces: self.planner}
        self._strengths: dict[str, PerturbationBackend] = {strength: self.backend}
        self.max_pixels = max_pixels
        self.cloak = cloak
        if cloak is not None:
            shared_cloak(cloak)  # the extra checked and the networks read now, not at the first photo
        if self.info.note:  # as the CLI's summary says it
            warnings.warn(self.info.note, SegueWarning, stacklevel=2)

    def code_for(self, identity: str | None = None, label: int | None = None, code: int | None = None) -> int:
        """The side-information code of exactly one of identity (a name), label (an int) or
        code (an int: a raw code, not reduced); anything else is an InputError with a hint."""
        given = [name for name, value in (("identity", identity), ("label", label), ("code", code)) if value is not None]
        if len(given) != 1:
            raise InputError("give exactly one of identity=, label= or code=" + (f" (got {', '.join(given)})" if given else ""),
                             'who is in the photo decides the perturbation: protect(image, identity="Ada Lovelace")')
        if identity is not None:
            if not isinstance(identity, str):
                raise InputError(f"identity= must be a name (str), got {type(identity).__name__} {identity!r}",
                                 f'pass identity="{identity}" for a name, or label={identity!r} for an integer label')
            return self.info.code_space.identity(identity)
        for name, value in (("label", label), ("code", code)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise InputError(f"{name}= must be an int, got {type(value).__name__} {value!r}",
                                 f"pass an integer 0..{2**self.info.code_bits - 1}, or identity=NAME for a name")
        if label is not None:
            return self.info.code_space.label(label)
        return label_code(code, self.info.code_bits)  # type: ignore[arg-type]  # a raw code: not reduced

    def protect(self, image: ImageLike, *, identity: str | None = None, label: int | None = None,
                code: int | None = None, image_format: str | None = None) -> Any:
        """The protected image, of the kind given (see the module docstring).

        ``image_format`` (png, jpeg or webp) chooses the file format of what comes back for
        bytes; None keeps the input's (PNG for formats segue does not write). JPEG and WebP
        are lossy and weaken the protection."""
        if image_format is not None:
            check_choice("format", image_format, OUTPUT_FORMATS)
        chosen = self.code_for(identity, label, code)
        loaded = _load(image, self.max_pixels)
        protected = self.protect_loaded(loaded, chosen)
        if isinstance(image, (bytes, bytearray)):
            warning = lossy_warning(image_format or format_of_pillow(loaded.source_format) or "png", None)
            if warning:  # as the CLI says it
                warnings.warn(warning, SegueWarning, stacklevel=2)
        return _as_kind(image, loaded, protected, image_format)

    def protect_loaded(self, loaded: LoadedImage, code: int) -> np.ndarray:
        """H x W x 3 uint8 protected pixels of a decoded photo (the folder command's step)."""
        plan = self.planner(loaded.rgb, self.info.image_size, self.info.epsilon)
        return compose_protected(loaded, plan, self.perturbations(plan, code), self.info.epsilon, self.cloak)

    def protect_file(self, data: bytes, code: int, image_format: str = "png", quality: int | None = None,
                     keep_metadata: bool = False, faces: FaceMode | None = None, cloak: CloakConfig | None | bool = True,
                     strength: str | None = None) -> tuple[bytes, list[str]]:
        """An image file's bytes in, the protected file's bytes and the notes out, exactly as
        ``segue protect`` writes that file with these options (the same decode, compose and
        encode steps): what ``segue protect -`` and the server return. ``faces`` overrides
        the face mode this Protector was opened with; ``cloak`` True keeps its cloak, a
        CloakConfig or None replaces it for this call; ``strength`` replaces its strength."""
        check_choice("format", image_format, OUTPUT_FORMATS)
        backend = self.backend if strength is None else self.at(strength)
        planner = self.planner if faces is None else self.planner_for(faces)
        image, plan = decode_photo(data, backend.info.image_size, backend.info.epsilon, self.max_pixels, planner)
        deltas = self.perturbations(plan, code, backend)
        chosen_cloak = self.cloak if cloak is True else cloak
        options = FileOptions(image_format, quality, keep_metadata, chosen_cloak or None)
        return encode_protected(image, plan, deltas, options, backend.info.epsilon)

    def at(self, strength: str) -> PerturbationBackend:
        """The backend at a ``--strength`` preset (made once)."""
        check_choice("strength", strength, STRENGTHS)
        if strength not in self._strengths:
            self._strengths[strength] = at_strength(self.model_backend, strength)
        return self._strengths[strength]

    def planner_for(self, faces: FaceMode) -> Planner:
        """The planner of a face mode (made once; the detector is opened once and shared)."""
        check_choice("faces mode", faces, FACE_MODES)
        if faces not in self._planners:
            self._planners[faces] = default_planner(faces, self._detector_name, self.info.image_size)[0]
        return self._planners[faces]

    def perturbations(self, plan: PhotoPlan, code: int, backend: PerturbationBackend | None = None) -> list[np.ndarray]:
        """The generator's delta for each of a plan's inputs, one call per working shape
        (``ShapeBatches``, as the engines batch); a failed call's exception is raised."""
        deltas: list[np.ndarray] = [np.empty(0)] * len(plan.inputs)
        batches = ShapeBatches()
        for index, pixels in enumerate(plan.inputs):
            batches.add(None, index, pixels, code)
        for entries, made, failure in batches.run_all(backend or self.backend):
            if made is None:
                raise failure  # type: ignore[misc]
            for position, (_, index) in enumerate(entries):
                deltas[index] = made[position]
        return deltas


_PNG_MODES = ("1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16")


def _load(image: ImageLike, max_pixels: int) -> LoadedImage:
    if isinstance(image, (bytes, bytearray)):
        return load_image(bytes(image), max_pixels)
    if isinstance(image, (str, Path)):
        return load_image(Path(image), max_pixels)
    if isinstance(image, Image.Image):
        if image.mode == "F":  # 0..1 and 0..255 both occur: guessing would clip one of them to white or black
            raise InputError("cannot protect a floating-point PIL image (mode 'F'): its range (0..1 or 0..255) is "
                             "not stated", "convert it to 8-bit first, e.g. Image.fromarray((np.asarray(image) * 255)"
                             ".round().clip(0, 255).astype(np.uint8)) for values in 0..1")
        buffer = io.BytesIO()
        try:  # lossless, mode kept: PNG holds the usual modes, TIFF the others (CMYK, float, 16-bit...)
            image.save(buffer, format="PNG" if image.mode in _PNG_MODES else "TIFF")
        except (OSError, ValueError, KeyError) as exc:
            raise InputError(f"cannot protect a PIL image of mode {image.mode!r} ({exc})",
                             "convert it first, e.g. image.convert('RGB')") from exc
        return load_image(buffer.getvalue(), max_pixels)
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
            raise InputError(f"an array image must be uint8 H x W, H x W x 3 or H x W x 4, got {image.dtype} "
                             f"{list(image.shape)}", "convert it, e.g. np.asarray(pil_image.convert('RGB'))")
        return _load(Image.fromarray(image), max_pixels)
    raise InputError(f"cannot protect a {type(image).__name__}",
                     "give a PIL image, a numpy uint8 array, the bytes of an image file, or a path")


def _as_kind(original: ImageLike, loaded: LoadedImage, protected: np.ndarray, image_format: str | None) -> Any:
    alpha = loaded.alpha
    if isinstance(original, np.ndarray):
        if original.ndim == 2:
            return protected[..., 0].copy()
        return np.dstack([protected, alpha]) if original.shape[2] == 4 and alpha is not None else protected
    if isinstance(original, (bytes, bytearray)):
        chosen = image_format or format_of_pillow(loaded.source_format) or "png"  # others come back as PNG
        return encode_image(protected, alpha=alpha, image_format=chosen, icc_profile=loaded.icc_profile)
    pil = Image.fromarray(np.dstack([protected, alpha]), "RGBA") if alpha is not None else Image.fromarray(protected, "RGB")
    if isinstance(original, Image.Image) and original.mode in ("L", "1") and loaded.grayscale:
        pil = pil.convert("L")
    return pil
