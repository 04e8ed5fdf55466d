"""What a user may choose, in a module that imports nothing heavy: the names and limits
``--help`` shows, the one shape of every registry (:class:`Spec`), the output formats, and
the one check of a named option (:func:`check_choice`) and of a numeric one
(:func:`check_ranges`).

`segue --help` and every `segue COMMAND --help` need these but none of torch, torchvision,
OpenCV or ONNX Runtime (several seconds and ~850 MiB to import), so the modules that use
them import them from here and the CLI loads those modules only when a command runs.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Iterable, Literal, Mapping, TypeVar

from .errors import ConfigError, quoted

FaceMode = Literal["auto", "on", "off"]
FACE_MODES: tuple[FaceMode, ...] = ("auto", "on", "off")
ATTACKER_PIPELINES = ("none", "detect-align")
# Pretrained face-recognition attackers (segue_cli.evaluation.embedding_attack): they train
# nothing, they embed enrolled (train) and probe (test) faces with a network trained
# elsewhere and match. Named with --arch beside the from-scratch architectures.
# embedding-sface is the judge no cloak is made against; the others are the cloak's surrogates
# (segue_cli.faces.networks), so a row of theirs measures a white-box network.
EMBEDDING_ATTACKER_NAMES = ("embedding-dlib", "embedding-sface", "embedding-faceplugin", "embedding-mobilefacenet")
EMBEDDING_METHODS = ("ncm", "1nn", "linear")  # nearest class mean, nearest neighbour, logistic regression

DEFAULT_MAX_PIXELS = 100_000_000  # a 10000 x 10000 photo; raise with --max-pixels
# segue serve's: lower, as a server decodes what strangers send (a 100 MP PNG of a few hundred
# kB costs about 10 s and 1.5 GB); 40 MP takes any phone's photo and most cameras'.
SERVE_MAX_PIXELS = 40_000_000

# --strength: the share of the model's epsilon the generator's perturbation may use, and the
# cloak's steps (--cloak). high is the model's full bound (8/255 for the shipped model);
# medium and low keep photos closer to the original and protect less (figures: the card).
STRENGTHS: dict[str, tuple[float, int]] = {"low": (0.5, 5), "medium": (0.75, 10), "high": (1.0, 10)}
DEFAULT_STRENGTH = "high"

MIN_OPSET = 18  # the torch.export-based exporter emits opset 18 and later only
DEFAULT_OPSET = 18  # the exporter's lowest; ONNX Runtime >= 1.14 runs it
MAX_OPSET = 23  # highest opset checked here (onnxruntime 1.32); 18 runs on onnxruntime >= 1.14
# Max |delta_onnx - delta_torch| allowed by the parity check. fp16: the graph computes in
# half precision; half of one 8-bit step (0.5/255 ~ 0.002) keeps protected pixels within
# 1/255 of the fp32 result.
FP32_TOLERANCE = 1e-4
FP16_TOLERANCE = 2e-3

# What a model file may declare. A checkpoint or ONNX file outside these is refused at load
# (a re-signed file with epsilon 1.0 would move pixels by up to 255 levels, far past the
# small budget segue promises); training refuses to make one.
MAX_EPSILON = 16 / 255
IMAGE_SIZE_RANGE = (16, 1024)
CODE_BITS_RANGE = (1, 32)


# --- registries ------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Spec:
    """One entry of a registry (formats, backends, engines, detectors, face networks,
    attackers, objectives, counter-measures): the name an option or a record calls it by,
    one line of help, and what builds or runs it as ``"package.module:attribute"``, imported
    on first use (:meth:`load`). So a registry's module imports nothing heavy, and ``--help``
    and option checks read every registry for free. Each registry subclasses this with the
    fields of its kind and holds its entries in a plain dict, name -> spec (:func:`registry`)."""

    name: str
    help: str  # one line
    factory: str = ""  # "package.module:attribute"; "" where an entry builds nothing of its own

    def load(self) -> Any:
        """What ``factory`` names, its module imported now (once: Python keeps it)."""
        return load(self.factory)


def load(target: str) -> Any:
    """The attribute a ``"package.module:attribute"`` string names."""
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


S = TypeVar("S", bound=Spec)


def registry(*specs: S) -> dict[str, S]:
    """name -> spec, in the order given (the order ``--help`` lists them)."""
    return {spec.name: spec for spec in specs}


# --- output formats --------------------------------------------------------------------------
DEFAULT_QUALITY = 95  # JPEG/WebP, when --quality is not given


@dataclass(frozen=True, kw_only=True)
class OutputFormat(Spec):
    """A format protect writes: its Pillow name, the suffixes that name it (the first is
    given to outputs), and whether it is lossy (which weakens protection). No factory:
    :func:`segue_cli.imageio.encode_image` writes every one by its Pillow name."""

    pillow: str
    suffixes: tuple[str, ...]
    lossy: bool


#: The one registry of output formats: ``--format``, ``Protector(image_format=)`` and the
#: names outputs get. Adding a format is one entry here.
OUTPUT_FORMATS: dict[str, OutputFormat] = registry(
    OutputFormat(name="png", help="lossless; keeps all of the perturbation (the default)", pillow="PNG",
                 suffixes=(".png",), lossy=False),
    OutputFormat(name="jpeg", help="lossy: compression removes part of the perturbation", pillow="JPEG",
                 suffixes=(".jpg", ".jpeg"), lossy=True),
    OutputFormat(name="webp", help="lossy: compression removes part of the perturbation", pillow="WEBP",
                 suffixes=(".webp",), lossy=True),
)


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


# --- the checks -----------------------------------------------------------------------------
def check_options(checks: list[tuple[bool, str]]) -> None:
    """Raise a ConfigError with the message of the first check that failed: every
    command's option checks, in one form."""
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


def check_choice(option: str, value: object, choices: Iterable[str]) -> None:
    """A named option (a format, a face mode, a strength, an engine, ...) is one of its
    registry's names: the one check, error and message of every entry point (the CLI,
    ProtectConfig, Protector, the server)."""
    names = tuple(choices)
    if not isinstance(value, str) or value not in names:
        raise ConfigError(f"unknown {option} {quoted(value) if isinstance(value, str) else repr(value)}",
                          f"use one of {', '.join(names)}")


Range = tuple[float, float]


def check_ranges(config: object, ranges: Mapping[str, Range], flag: str = "--{}") -> None:
    """Every numeric field of ``config`` (a dataclass) is a finite number in its stated
    range, or None where the field allows it; a ConfigError names the option, the range
    and the value. A numeric field missing from ``ranges`` is a programming error, so
    that no option can be added without a stated range."""
    import math
    from dataclasses import fields

    for item in fields(config):  # type: ignore[arg-type]
        if not item.init:
            continue  # derived from the options (ProtectConfig's parsed INPUT and OUT)
        value = getattr(config, item.name)
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        if item.name not in ranges:
            if numeric:
                raise AssertionError(f"{type(config).__name__}.{item.name} has no stated range")
            continue
        if value is None:
            continue
        low, high = ranges[item.name]
        option = flag.format(item.name.replace("_", "-"))
        integer = isinstance(item.default, int) and not isinstance(item.default, bool) or item.type in ("int", "int | None")
        if not numeric or (integer and not isinstance(value, int)):
            raise ConfigError(f"{option} must be {'an integer' if integer else 'a number'} (got {value!r})")
        if not math.isfinite(value) or not low <= value <= high:
            raise ConfigError(f"{option} must be between {low:g} and {high:g} (got {value!r})")
