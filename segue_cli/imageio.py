"""The one image loader and writer.

Every command reads photos through :func:`load_image`: EXIF orientation applied, any
mode (grayscale, palette, 16-bit, CMYK, RGBA) converted to 8-bit RGB with the alpha
channel kept aside, decompression bombs refused above a pixel limit, animated files
reduced to their first frame (and said so). Writes go through :func:`save_image`, which
is atomic: a temp file in the target folder, then ``os.replace``.
"""

from __future__ import annotations

import io
import struct
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from .storage import regular_file_opener, atomic_write
from .choices import DEFAULT_MAX_PIXELS, DEFAULT_QUALITY, OUTPUT_FORMATS, starts_like_image

from .errors import InputError

if TYPE_CHECKING:
    import torch


IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif",
                              ".heic", ".heif", ".avif"})
HEIF_EXTENSIONS = frozenset({".heic", ".heif"})  # iPhone photos; read through the pillow-heif plugin


def _heif_support() -> bool:
    """Register pillow-heif's opener once (HEIC/HEIF); False when it is not installed.
    AVIF needs no plugin: Pillow 11.3+ reads it itself."""
    global _HEIF_READY
    if _HEIF_READY is None:
        try:
            import pillow_heif
        except ImportError:
            _HEIF_READY = False
        else:
            pillow_heif.register_heif_opener()
            _HEIF_READY = True
    return _HEIF_READY


_HEIF_READY: bool | None = None


MIN_IMAGE_SIDE = 16


def too_small(height: int, width: int) -> str | None:
    """Why a photo of this size is refused (by every command alike), or None."""
    if min(height, width) < MIN_IMAGE_SIDE:
        return f"{width}x{height} is too small (need at least {MIN_IMAGE_SIDE} px a side)"
    return None


@dataclass
class LoadedImage:
    """An 8-bit RGB photo as an H x W x 3 uint8 array, plus what a writer needs to keep."""

    rgb: np.ndarray
    alpha: np.ndarray | None = None
    icc_profile: bytes | None = None
    exif: bytes | None = None
    notes: list[str] = field(default_factory=list)
    grayscale: bool = False  # black and white (mode L/LA/1/16-bit gray, or R = G = B everywhere)
    source_format: str | None = None  # Pillow's name of the format it was read from ("JPEG", "PNG", ...)

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)."""
        return self.rgb.shape[0], self.rgb.shape[1]


def is_image_path(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def looks_like_image(path: Path) -> bool:
    """Whether the file starts like an image of a format segue reads (by its first bytes,
    not its name): JPEG, PNG, GIF, BMP, TIFF, WebP, or an ISO-BMFF image (HEIC, AVIF)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError:
        return False
    return starts_like_image(head)


# Photo formats segue cannot read: never taken silently for "not an image", but reported.
UNSUPPORTED_PHOTO_EXTENSIONS = frozenset({".jxl", ".dng", ".cr2", ".cr3", ".nef", ".arw", ".orf", ".rw2", ".raf",
                                          ".raw", ".psd", ".jp2", ".svg"})


def discover_images(root: Path, unsupported: list[Path] | None = None) -> list[Path]:
    """Image files under ``root`` (recursive, sorted), following symlinked folders once.
    Photos in formats segue cannot read (camera raw, JPEG XL, ...) are appended to
    ``unsupported`` when a list is given.

    Symlink loops are cut: a folder whose real path was already visited is not entered.
    """
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise InputError(f"not found: {root}", "give an existing folder or image file")
    found: list[Path] = []
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames.sort()
        found.extend(Path(dirpath) / name for name in sorted(filenames) if is_image_path(Path(name)))
        if unsupported is not None:
            unsupported.extend(Path(dirpath) / name for name in sorted(filenames)
                               if Path(name).suffix.lower() in UNSUPPORTED_PHOTO_EXTENSIONS)
    return found


_BW_MODES = ("1", "L", "LA", "La")  # 8-bit black and white (with alpha): noted as such when read
_GRAY_MODES = (*_BW_MODES, "I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def _is_grayscale(rgb: np.ndarray) -> bool:
    return bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())


def _to_8bit_rgb(image: Image.Image, notes: list[str]) -> tuple[Image.Image, np.ndarray | None]:
    alpha = None
    mode = image.mode
    if mode in _BW_MODES:
        notes.append(f"black-and-white photo (mode {mode}): kept black and white, the perturbation is the same on "
                     "R, G and B; written as RGB")
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if mode.startswith("I;16") or array.max() > 255 else 255.0
        image = Image.fromarray(np.clip(array / peak * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
        notes.append(f"converted {mode} (16-bit) to 8-bit")
    elif mode == "F":
        array = np.asarray(image, dtype=np.float64)
        image = Image.fromarray(np.clip(array * (255.0 if array.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8), "L")
        notes.append("converted a floating-point image to 8-bit: values up to 1 read as 0..1 (black..white), "
                     "larger ones as 0..255; values outside clipped")
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        notes.append("converted a palette image to RGB (the output is a full-colour PNG)")
    if image.mode == "CMYK":
        notes.append("converted CMYK to RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        alpha = np.asarray(rgba)[:, :, 3].copy()
        image = rgba.convert("RGB")
    elif image.mode != "RGB":
        image = image.convert("RGB")
    return image, alpha


def _to_srgb(image: Image.Image, icc: bytes | None, notes: list[str]) -> tuple[Image.Image, bytes | None]:
    """Convert an embedded non-sRGB profile to sRGB so pixel values mean what G expects.

    Returns the image and the profile to write back (None once converted to sRGB).
    """
    if not icc:
        return image, None
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        description = ImageCms.getProfileDescription(source) or ""
        if "srgb" in description.lower():
            return image, icc
        converted = ImageCms.profileToProfile(image, source, ImageCms.createProfile("sRGB"), outputMode="RGB")
        notes.append(f"converted colour profile {description.strip()!r} to sRGB")
        return (converted if converted is not None else image), None
    except (OSError, ImageCms.PyCMSError):
        notes.append("dropped an unreadable colour profile")
        return image, None


def load_image(path: Path | bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Decode ``path`` (a file, or the bytes of one) into 8-bit RGB (+ alpha), EXIF
    orientation applied.

    Raises :class:`InputError` naming the file for anything that is not a readable image.
    """
    if isinstance(path, (bytes, bytearray)):
        _heif_support()  # bytes have no suffix to tell HEIC by: have the plugin ready
        data: bytes | None = bytes(path)
        size = len(path)
        path = Path("<bytes>")
    else:
        data, path = None, Path(path)
        try:
            size = path.stat().st_size
        except PermissionError as exc:
            raise InputError(f"{path}: permission denied", "make the file readable (chmod +r) or skip it") from exc
        except OSError as exc:  # broken symlink, symlink loop, vanished file
            raise InputError(f"{path}: cannot open ({exc.strerror or exc})", "check the file and any symlink to it") from exc
    if path.suffix.lower() in HEIF_EXTENSIONS and not _heif_support():
        raise InputError(f"{path}: HEIC/HEIF photos need the pillow-heif plugin, which is not installed",
                         "pip install pillow-heif (or convert the photo to JPEG or PNG)")
    try:
        if size == 0:
            raise InputError(f"{path}: empty file (0 bytes)", "remove it or replace it with the real photo")
        with _open_unchecked(io.BytesIO(data) if data is not None else path) as opened:
            width, height = opened.size
            if width * height > max_pixels:
                raise InputError(
                    f"{path}: {width}x{height} = {width * height:,} pixels exceeds the limit of {max_pixels:,}",
                    "this may be a decompression bomb; if the photo is genuine raise --max-pixels",
                )
            notes: list[str] = []
            frames = getattr(opened, "n_frames", 1)
            if getattr(opened, "is_animated", False) and frames > 1:
                notes.append(f"animated ({frames} frames): used the first frame only")
            opened.seek(0)
            icc = opened.info.get("icc_profile")
            if _rawmode(opened).endswith(";16B") and opened.mode in ("RGB", "RGBA"):
                notes.append("converted 16-bit RGB to 8-bit (segue works on 8 bits per channel)")
            opened.load()
            oriented = ImageOps.exif_transpose(opened) or opened
            # Read EXIF after the transpose: Pillow drops the Orientation tag from the
            # rotated copy, so a writer that keeps metadata does not rotate it twice.
            exif = oriented.info.get("exif")
            source_mode, source_format = oriented.mode, opened.format

            rgb_image, alpha = _to_8bit_rgb(oriented, notes)
            rgb_image, icc = _to_srgb(rgb_image, icc, notes)
    except InputError:
        raise
    except PermissionError as exc:
        raise InputError(f"{path}: permission denied", "make the file readable (chmod +r) or skip it") from exc
    except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise InputError(f"{path}: not a readable image ({exc.__class__.__name__})", "remove or replace the file") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InputError(f"{path}: corrupt or truncated image ({exc})", "re-export or re-download the photo") from exc
    rgb = np.asarray(rgb_image, dtype=np.uint8).copy()
    grayscale = source_mode in _GRAY_MODES or _is_grayscale(rgb)
    if grayscale and source_mode not in _BW_MODES:
        notes.append("black-and-white photo (R = G = B): kept black and white, the perturbation is the same on "
                     "R, G and B")
    return LoadedImage(rgb=rgb, alpha=alpha, icc_profile=icc, exif=exif, notes=notes, grayscale=grayscale,
                       source_format=source_format)


def declared_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) an image file's header declares, read without decoding its pixels
    (what a server weighs a request by before admitting it), or None when the header is
    not a readable image's (decoding will then say why)."""
    try:
        _heif_support()
        with _open_unchecked(io.BytesIO(data)) as opened:
            width, height = opened.size
            return int(width), int(height)
    except Exception:  # noqa: BLE001 (any parse error means "unknown"; load_image words it)
        return None


def _open_unchecked(source: io.BytesIO | Path) -> Image.Image:
    """``Image.open`` without Pillow's decompression-bomb check, which reads the process-wide
    ``Image.MAX_IMAGE_PIXELS``: changing that global for one call would switch the check
    off for every thread (Ray actors, a server's requests) meanwhile. The caller checks the
    pixel count against its own limit before decoding anything but the header. Plugins
    are tried as Pillow tries them: the common ones, then all."""
    exclusive = isinstance(source, Path)
    fp: Any = open(source, "rb", opener=regular_file_opener) if isinstance(source, Path) else source
    try:
        prefix = fp.read(16)
        for load_plugins in (Image.preinit, Image.init):
            load_plugins()
            for name in list(Image.ID):
                factory, accept = Image.OPEN[name]
                verdict = accept(prefix) if accept is not None else True
                if not verdict or isinstance(verdict, str):  # a string is Pillow's "close, but not this format"
                    continue
                fp.seek(0)
                try:
                    image = factory(fp, str(source) if exclusive else "")
                except (SyntaxError, IndexError, TypeError, struct.error):
                    continue
                image._exclusive_fp = exclusive  # the file closes with the image
                return image
    except BaseException:
        if exclusive:
            fp.close()
        raise
    if exclusive:
        fp.close()
    raise UnidentifiedImageError(f"cannot identify image file {str(source)!r}")


def _rawmode(opened: Image.Image) -> str:
    """The decoder's raw mode of the first tile (``RGB;16B`` for a 16-bit PNG that Pillow
    hands over as 8-bit RGB), or '' when the plugin does not say."""
    try:
        tile = getattr(opened, "tile", None)
        args = tile[0].args if tile else None
    except (AttributeError, IndexError):
        return ""
    raw = args[0] if isinstance(args, tuple) and args else args
    return raw if isinstance(raw, str) else ""


def rgb_to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """H x W x 3 uint8 -> 3 x H x W float in [0, 1]."""
    import torch

    return torch.from_numpy(np.array(rgb, dtype=np.uint8, order="C")).permute(2, 0, 1).float().div_(255.0)


def resize_rgb(rgb: np.ndarray, size: int) -> torch.Tensor:
    """H x W x 3 uint8 -> 3 x size x size uint8, resized like the protocol's attacker
    (bilinear with antialias, torchvision ``Resize([size, size])`` on the PIL image)."""
    from torchvision.transforms.functional import pil_to_tensor, resize

    image = Image.fromarray(rgb)
    if image.size != (size, size):
        image = resize(image, [size, size], antialias=True)
    return pil_to_tensor(image)


def resize_to(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """H x W x 3 uint8 -> height x width x 3 uint8, with the same filter as
    :func:`resize_rgb` (PIL bilinear, antialiased when shrinking), aspect ratio free."""
    if rgb.shape[:2] == (height, width):
        return rgb
    return np.asarray(Image.fromarray(rgb).resize((width, height), Image.Resampling.BILINEAR))


def encode_image(
    rgb: np.ndarray,
    *,
    alpha: np.ndarray | None = None,
    image_format: str = "png",
    quality: int = DEFAULT_QUALITY,
    icc_profile: bytes | None = None,
    exif: bytes | None = None,
) -> bytes:
    """The bytes of a protected photo's file; every engine writes these exact bytes.
    Alpha is kept where the format has it (PNG, WebP)."""
    pil_format = OUTPUT_FORMATS[image_format].pillow
    if pil_format == "PNG" and alpha is None and not icc_profile and not exif:
        # OpenCV's libpng with zlib's run-length strategy: the same pixels and file size as
        # Pillow with it, in about half the time (benchmarks/png_encoders.py,
        # docs/benchmarks.md "PNG encoders"). Pillow, below, writes the files that carry an
        # alpha channel, an ICC profile or EXIF, which cv2.imencode does not write.
        import cv2

        ok, data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                                [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE])
        if ok:
            return data.tobytes()
    image = Image.fromarray(rgb, "RGB")
    if alpha is not None and pil_format in ("PNG", "WEBP"):
        image = Image.fromarray(np.dstack([rgb, alpha]), "RGBA")
    options: dict[str, object] = {}
    if pil_format in ("JPEG", "WEBP"):
        options["quality"] = int(quality)
    if pil_format == "PNG":
        # zlib's run-length strategy, made for filtered PNG rows: on photos (protected ones
        # are noisy) it is 3-5x faster than Pillow's default and its files are smaller.
        options["compress_type"] = zlib.Z_RLE
    if icc_profile:
        options["icc_profile"] = icc_profile
    if exif:
        options["exif"] = exif
    buffer = io.BytesIO()
    image.save(buffer, format=pil_format, **options)
    return buffer.getvalue()


def save_image(path: Path, rgb: np.ndarray, **options: Any) -> None:
    """:func:`encode_image`, written atomically to ``path``."""
    data = encode_image(rgb, **options)
    atomic_write(Path(path), lambda tmp: tmp.write_bytes(data))
