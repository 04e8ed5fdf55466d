"""The one registry of output formats: ``--format``, ``Protector(image_format=)`` and the
names outputs get. Adding a format is one entry here (its Pillow name, suffixes and
whether it is lossy); :func:`segue_cli.imageio.encode_image` writes every one. This
module imports nothing heavy, so option checks can use it before any work starts."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_QUALITY = 95  # JPEG/WebP, when --quality is not given


@dataclass(frozen=True)
class OutputFormat:
    """A format protect writes: its Pillow name, the suffixes that name it (the first is
    given to outputs), and whether it is lossy (which weakens protection)."""

    pillow: str
    suffixes: tuple[str, ...]
    lossy: bool


OUTPUT_FORMATS: dict[str, OutputFormat] = {
    "png": OutputFormat("PNG", (".png",), lossy=False),
    "jpeg": OutputFormat("JPEG", (".jpg", ".jpeg"), lossy=True),
    "webp": OutputFormat("WEBP", (".webp",), lossy=True),
}


def lossy_warning(image_format: str, quality: int | None) -> str | None:
    """The one sentence every entry point (the CLI, ``Protector``, the server) says when the
    output is lossy; None for a lossless format."""
    if not OUTPUT_FORMATS[image_format].lossy:
        return None
    return (f"{image_format.upper()} at quality {quality or DEFAULT_QUALITY} is lossy: compression removes part of "
            "the perturbation and weakens protection; PNG (the default) keeps all of it")


def suffix_format(suffix: str) -> str | None:
    """The output format a file name's suffix names (``.JPG`` -> ``"jpeg"``), if segue writes it."""
    return next((name for name, fmt in OUTPUT_FORMATS.items() if suffix.lower() in fmt.suffixes), None)


def format_of_pillow(pillow_name: str | None) -> str | None:
    """The output format Pillow calls ``pillow_name`` (``"JPEG"`` -> ``"jpeg"``), if segue writes it."""
    return next((name for name, fmt in OUTPUT_FORMATS.items() if fmt.pillow == pillow_name), None)


# The first bytes of the formats segue reads (JPEG, PNG, GIF, TIFF; WebP, ISO-BMFF and BMP below).
_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"II*\x00", b"MM\x00*")


def starts_like_image(head: bytes) -> bool:
    """Whether these first bytes (16 are enough) are those of an image segue reads. A list
    of paths never starts so: it is text, and no path begins with these bytes."""
    return (head.startswith(_SIGNATURES) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")
            or head[4:8] == b"ftyp" or (head[:2] == b"BM" and head[6:10] == b"\0\0\0\0"))  # BMP: reserved bytes zero
