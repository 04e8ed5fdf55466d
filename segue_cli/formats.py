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
