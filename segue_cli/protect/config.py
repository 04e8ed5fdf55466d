"""``segue protect``'s settings: one frozen dataclass, checked when made.

INPUT and OUT are parsed here, once, into typed values: the source (:class:`Folder`,
:class:`ImageFile`, :class:`PathList`, :class:`Prefix` or :class:`PipedImage`) and the
destination (:class:`FolderTree`, :class:`OneFile` or :class:`Stdout`). Nothing after this
module looks at INPUT or OUT as strings: ``protect()`` chooses between one image and a
folder by the destination's type.

Imports nothing heavy (no numpy, Pillow or model runtime), so that a bad option is
reported before any of them load (docs/benchmarks.md "A small run")."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

from ..backends import BACKEND_CHOICES
from ..photo.cloak import CloakConfig
from ..faces import DETECTOR_CHOICES
from ..choices import DEFAULT_MAX_PIXELS, DEFAULT_QUALITY, DEFAULT_STRENGTH, FACE_MODES, FaceMode, OUTPUT_FORMATS, STRENGTHS, check_choice, check_options, check_ranges, lossy_warning, starts_like_image, suffix_format
from ..errors import ConfigError, InputError, OutputError, input_not_found
from ..engines import ENGINE_CHOICES
from ..storage import is_uri


# --- INPUT, parsed ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Folder:
    """A local folder, searched recursively."""

    path: Path  # absolute, symlinks kept
    shown: str  # as given, for messages


@dataclass(frozen=True)
class ImageFile:
    """One local image file (or what stands in its place: a FIFO is refused when listed)."""

    path: Path  # absolute, symlinks kept
    shown: str


@dataclass(frozen=True)
class PathList:
    """Image paths, as listed on stdin (``-``)."""

    paths: tuple[str, ...]


@dataclass(frozen=True)
class Prefix:
    """An object-store prefix (``s3://bucket/photos``), listed like a folder (``--engine ray``)."""

    uri: str


@dataclass(frozen=True)
class PipedImage:
    """One image's bytes, piped to ``-``."""

    data: bytes = field(repr=False)


Source = Union[Folder, ImageFile, PathList, Prefix, PipedImage]


# --- OUT, parsed -----------------------------------------------------------------------------
@dataclass(frozen=True)
class FolderTree:
    """A folder (or an object-store prefix) mirroring INPUT's tree, with OUT's record and lock;
    neither given: ``<root>-protected`` beside the input's root."""

    path: Path | None = None
    uri: str | None = None


@dataclass(frozen=True)
class OneFile:
    """One image file, for one image in: no folder, record or lock."""

    path: Path  # absolute
    shown: str
    image_format: str  # the suffix's, which --format may only repeat


@dataclass(frozen=True)
class Stdout:
    """The one image's bytes on standard output (``--out -``)."""

    image_format: str


Destination = Union[FolderTree, OneFile, Stdout]
STDIN = "-"  # INPUT and OUT: standard input and standard output


def split_path_list(data: str) -> tuple[str, ...]:
    """Paths from a list on stdin, names kept exactly: NUL-separated (``find -print0``) when
    the text holds a NUL, else one per line with only the line ending removed, so names
    that begin or end with spaces survive. Empty entries are dropped."""
    if "\0" in data:
        return tuple(entry for entry in data.split("\0") if entry)
    return tuple(line.removesuffix("\r") for line in data.split("\n") if line.removesuffix("\r"))


def parse_source(given: Path | str | bytes, paths: tuple[str, ...]) -> Source:
    """INPUT: the bytes read from stdin (an image, or a list of paths: the one rule for
    ``-``), ``-`` with ``paths`` listed, a URI, or a local path that must exist."""
    if isinstance(given, (bytes, bytearray)):
        if starts_like_image(bytes(given[:16])):
            return PipedImage(bytes(given))
        try:
            return PathList(split_path_list(bytes(given).decode("utf-8")))
        except UnicodeDecodeError:
            raise InputError("stdin holds neither an image (JPEG, PNG, WebP, GIF, BMP, TIFF, HEIC, AVIF) nor a list of "
                             "image paths", "pipe one image's bytes, or paths one per line (find DIR -print0 works too)") from None
    text = str(given)
    if text == STDIN:
        return PathList(tuple(str(p) for p in paths))
    if is_uri(text):
        return Prefix(text)
    path = Path(os.path.abspath(Path(text).expanduser()))
    if os.path.lexists(path) and not path.is_dir():
        return ImageFile(path, text)
    if not path.is_dir():
        raise input_not_found(given)
    return Folder(path, text)


def parse_destination(given: Path | str | None, source: Source, image_format: str) -> Destination:
    """OUT: one file (an image suffix, or anything for an image piped in), stdout (``-``,
    and the default for an image piped in), or a folder tree; refused where INPUT cannot
    fill it (a folder into one file, a list of paths to stdout)."""
    if given is None:
        return Stdout(image_format) if isinstance(source, PipedImage) else FolderTree()
    text = str(given)
    if text == STDIN:
        if isinstance(source, PathList):
            raise InputError("--out - writes one image to standard output; stdin listed image paths",
                             "pass --out FOLDER for a list of paths, or pipe one image's bytes to -")
        if not isinstance(source, (ImageFile, PipedImage)):
            raise InputError("--out - writes one image to standard output; INPUT names several photos",
                             "pass --out FOLDER, or give one image file (or pipe one image's bytes to -)")
        return Stdout(image_format)
    if is_uri(text):
        return FolderTree(uri=text)
    path = Path(text)
    named = suffix_format(path.suffix)
    if isinstance(source, PipedImage):
        if named is None:  # an image piped in, --out out.txt
            raise InputError(f"--out {given} names no image file (.png, .jpg or .webp) for the one image piped in",
                             "name the output file out.png, out.jpg or out.webp, or pass --out - for standard output")
    elif named is None or path.is_dir():
        if path.suffix and not os.path.lexists(path) and isinstance(source, ImageFile):
            # out.txt for one photo is a slip for an image name: a folder called out.txt would surprise.
            raise InputError(f"--out {given} is not an image name ({path.suffix} is no format segue writes) and no "
                             "folder of that name exists", "name the output file out.png, out.jpg or out.webp; to "
                             f"write into a new folder called {path.name}, make it first (mkdir)")
        return FolderTree(path=path)
    elif not isinstance(source, ImageFile):
        where = {Folder: "is a folder", PathList: "lists image paths on stdin", Prefix: "is an object-store prefix"}
        raise InputError(f"INPUT {_shown(source)} {where[type(source)]}, and --out {given} names one image file",
                         "pass --out FOLDER for a folder, or give one image file as INPUT")
    if image_format != "png" and named != image_format:
        raise InputError(f"--out {given} names a {named.upper()} file but --format is {image_format}",
                         "make the two agree, or drop --format (the suffix decides)")
    target = Path(os.path.abspath(text))
    if isinstance(source, ImageFile) and target.exists() and os.path.samefile(target, source.path):
        raise OutputError(f"--out {given} is the input itself", "name another file: inputs are never overwritten")
    return OneFile(target, text, named)


def _shown(source: Source) -> str:
    return source.shown if isinstance(source, (Folder, ImageFile)) else source.uri if isinstance(source, Prefix) else STDIN


def default_workers(cloak: bool = False) -> int:
    """Half the cores (at most 8) decode and encode; the generator gets the other half:
    per photo both sides cost about the same CPU time (docs/benchmarks.md). With --cloak
    every core (at most 8): each worker cloaks one photo on one thread, seconds a photo
    against the generator's milliseconds."""
    return max(1, min(8, (os.cpu_count() or 1) // (1 if cloak else 2)))


# Every numeric option's range (choices.check_ranges): finite, and these bounds, or exit 2.
RANGES = {"label": (0, 2**32 - 1), "quality": (1, 100), "workers": (1, 256), "batch_size": (1, 4096),
          "max_pixels": (1, 10**10), "actors": (1, 100_000)}


@dataclass(frozen=True)
class ProtectConfig:
    input: Path | str | bytes  # a folder, an image file, a URI, "-" (the paths are in ``paths``), or stdin's bytes
    paths: tuple[str, ...] = ()
    out: Path | str | None = None  # a folder (default: <input root>-protected beside it), a URI, an image file or "-"
    identity: str | None = None
    label: int | None = None
    labels: Path | None = None
    by_folder: bool = False
    model: str | None = None
    backend: str = "auto"
    device: str = "auto"
    image_format: str = "png"
    quality: int | None = None  # jpeg/webp only; default 95
    keep_metadata: bool = False
    overwrite: bool = False
    workers: int = field(default_factory=default_workers)
    batch_size: int = 16
    max_pixels: int = DEFAULT_MAX_PIXELS
    faces: FaceMode = "auto"  # auto: face-aware above 2 x working size (compose.uses_faces); on; off
    detector: str = "auto"  # face detector: auto (YuNet, else dlib), yunet, dlib
    wait: bool = False  # wait for another run that holds OUT instead of refusing
    engine: str = "local"  # local (this machine's threads) or ray (engines/ray_engine.py)
    ray_address: str | None = None  # None: start a local Ray; "auto" or HOST:PORT: join a cluster
    actors: int | None = None  # Ray actors (None: one per CPU of the cluster)
    engine_progress: bool = True  # the Ray engine's own progress bars (off for --quiet and --json)
    quiet: bool = False  # --quiet: nothing on stderr but the failed files (the Ray engine's own notices silenced)
    cloak: CloakConfig | None = None  # also cloak each face against the face networks of photo/cloak.py
    strength: str = DEFAULT_STRENGTH  # the share of the model's epsilon the perturbation uses (choices.STRENGTHS)
    # INPUT and OUT parsed, when the config is made (module docstring):
    source: Source = field(init=False, repr=False, compare=False)
    destination: Destination = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        chosen = [name for name, given in (("--identity", self.identity is not None), ("--label", self.label is not None),
                                           ("--labels", self.labels is not None), ("--by-folder", self.by_folder)) if given]
        if len(chosen) > 1:
            raise ConfigError(f"{' and '.join(chosen)} cannot be combined", "give at most one source of side information")
        check_choice("format", self.image_format, OUTPUT_FORMATS)
        if self.quality is not None and not OUTPUT_FORMATS[self.image_format].lossy:
            lossy = " and ".join(name for name, fmt in OUTPUT_FORMATS.items() if fmt.lossy)
            raise ConfigError(f"--quality applies to {lossy} only", f"{self.image_format.upper()} is lossless; drop --quality")
        check_choice("strength", self.strength, STRENGTHS)
        check_choice("faces mode", self.faces, FACE_MODES)
        check_choice("face detector", self.detector, DETECTOR_CHOICES)
        check_choice("backend", self.backend, BACKEND_CHOICES)
        check_choice("engine", self.engine, ENGINE_CHOICES)
        if self.engine != "ray" and (self.ray_address is not None or self.actors is not None):
            raise ConfigError("--ray-address and --actors apply to --engine ray only", "add --engine ray")
        check_options([(value is None or value >= 1, f"{name} must be at least 1 (got {value})")
                       for name, value in (("--actors", self.actors), ("--workers", self.workers),
                                           ("--batch-size", self.batch_size), ("--max-pixels", self.max_pixels))])
        check_ranges(self, RANGES)
        source = parse_source(self.input, self.paths)
        object.__setattr__(self, "source", source)
        object.__setattr__(self, "destination", parse_destination(self.out, source, self.image_format))

    @property
    def one_image(self) -> bool:
        """One image in and one file (or stdout) out, rather than a folder tree."""
        return not isinstance(self.destination, FolderTree)

    @property
    def generator_threads(self) -> int:
        """Threads the generator may use: the local engine leaves the I/O workers their
        cores (oversubscribed, the generator's intra-op threads spin against the encoders
        and both slow down, about 4x on a busy 2-core machine); a Ray actor has one CPU."""
        return max(1, (os.cpu_count() or 1) - self.workers) if self.engine == "local" else 1

    @property
    def output_quality(self) -> int | None:
        """The JPEG/WebP quality the outputs get; None for lossless PNG."""
        return (self.quality or DEFAULT_QUALITY) if OUTPUT_FORMATS[self.image_format].lossy else None

    @property
    def lossy_warning(self) -> str | None:
        return lossy_warning(self.image_format, self.output_quality)
