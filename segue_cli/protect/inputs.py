"""Which photos a ``segue protect`` job reads: :func:`find_inputs` over a local folder, an
image file, a list of paths (stdin), or an object-store prefix, into one :class:`InputSet`.

Every input has a *root* whose tree the output mirrors: the folder given as INPUT, the
folder holding a single INPUT file, the deepest folder common to all listed paths, or the
prefix. Set aside and reported, never read: hidden files that are not images (macOS
``._*`` AppleDouble), photos in formats segue cannot read (camera raw, JPEG XL, ...),
anything that is not a regular file (a FIFO or a link to a device would block or never
end), and folders an earlier run wrote (their ``.segue-output`` marker inside), so that
protecting ``~/Pictures`` after ``~/Pictures/trip`` does not protect ``trip-protected``
again.
"""

from __future__ import annotations

import os
import posixpath
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Literal

from ..errors import InputError, input_not_found
from ..imageio import UNSUPPORTED_PHOTO_EXTENSIONS, discover_images, is_image_path, looks_like_image
from ..storage import Location, file_sha256, list_files, local, locate
from .config import Folder, ImageFile, PathList, Prefix, Source
from .job import PlannedFile

OUTPUT_MARKER = ".segue-output"
InputKind = Literal["folder", "file", "list", "prefix"]


@dataclass(frozen=True)
class InputFile:
    location: Location
    relative: PurePosixPath  # under the root
    fingerprint: dict[str, int] | None = None  # an object's size and mtime from its listing (local files: stat later)


@dataclass(frozen=True)
class InputSet:
    kind: InputKind
    root: Location  # the folder or prefix whose tree is mirrored (local: absolute, symlinks kept)
    files: tuple[InputFile, ...]
    left_out: tuple[str, ...] = ()  # marked output folders found inside a folder INPUT
    not_images: tuple[str, ...] = ()  # hidden files that are not images (macOS ._* AppleDouble, ...)
    unsupported: tuple[str, ...] = ()  # photos in formats segue cannot read (camera raw, JPEG XL, ...)
    not_regular: tuple[str, ...] = ()  # FIFOs, devices, sockets (and links to them) with an image's name


def find_inputs(source: Source) -> InputSet:
    """The photos to protect from INPUT as parsed (``config.Source``)."""
    if isinstance(source, Prefix):
        return _prefix_inputs(locate(source.uri))
    if isinstance(source, PathList):
        absolute = (Path(os.path.abspath(Path(p).expanduser())) for p in source.paths if p)
        files = tuple(dict.fromkeys(absolute))  # a path listed twice is protected once
        if not files:
            raise InputError("no paths were given on stdin", "pipe one image path per line, e.g. find DIR -name '*.jpg' | segue protect -")
        return _local_set("list", Path(os.path.commonpath([str(f.parent) for f in files])), files)
    if isinstance(source, ImageFile):
        single = _local_set("file", source.path.parent, (source.path,))
        if single.not_regular:
            raise InputError(f"{source.shown} is not a regular file (a FIFO, a device, a socket or a link to one)",
                             "give a photo as a regular file (a pipe of image bytes goes to -: cat a.jpg | segue protect -)")
        return single
    if not isinstance(source, Folder) or not source.path.is_dir():  # a piped image has no folder; a folder gone since
        raise input_not_found(getattr(source, "shown", "-"))
    unsupported: list[Path] = []
    found, left_out = _without_output_folders(discover_images(source.path, unsupported), source.path)
    return _local_set("folder", source.path, found, left_out, tuple(str(f) for f in unsupported))


def _local_set(kind: InputKind, root: Path, files: Iterable[Path], left_out: tuple[str, ...] = (),
               unsupported: tuple[str, ...] = ()) -> InputSet:
    kept: list[InputFile] = []
    hidden: list[str] = []
    special: list[str] = []
    for f in files:
        try:
            regular = stat.S_ISREG(os.stat(f).st_mode)
        except OSError:
            regular = True  # missing or unreadable: it fails on decoding, and says why
        if not regular and not f.is_dir():
            special.append(str(f))
        elif f.is_file() and _hidden_non_image(f):
            hidden.append(str(f))
        else:
            kept.append(InputFile(local(f), PurePosixPath(f.relative_to(root).as_posix())))
    return InputSet(kind, local(root), tuple(kept), left_out, tuple(hidden), unsupported, tuple(special))


def _hidden_non_image(path: Path) -> bool:
    """A hidden file with an image suffix that holds no image: macOS writes ``._NAME``
    AppleDouble metadata beside every file it copies to a non-Mac disk, suffix and all."""
    return path.name.startswith("._") or (path.name.startswith(".") and not looks_like_image(path))


def _without_output_folders(files: list[Path], root: Path) -> tuple[tuple[Path, ...], tuple[str, ...]]:
    marked: dict[Path, Path | None] = {}  # folder -> the marked folder it is in, if any

    def marked_folder(folder: Path) -> Path | None:
        if folder not in marked:
            inside = None if folder == root or folder.parent == folder else marked_folder(folder.parent)
            marked[folder] = inside or (folder if (folder / OUTPUT_MARKER).is_file() else None)
        return marked[folder]

    kept = tuple(f for f in files if marked_folder(f.parent) is None)
    left_out = tuple(sorted({str(m) for f in files if (m := marked_folder(f.parent)) is not None}))
    return kept, left_out


def _prefix_inputs(source: Location) -> InputSet:
    """Objects under the prefix with an image suffix, by the same rules as a local folder."""
    listed = list_files(source)
    marked = sorted(rel[: -len(OUTPUT_MARKER)] for rel, _, _ in listed if rel.endswith("/" + OUTPUT_MARKER))
    files: list[InputFile] = []
    hidden: list[str] = []
    for rel, size, mtime in listed:
        if not is_image_path(Path(rel)) or any(rel.startswith(prefix) for prefix in marked):
            continue
        if posixpath.basename(rel).startswith("._"):
            hidden.append(source.join(rel).uri)
            continue
        files.append(InputFile(source.join(rel), PurePosixPath(rel), {"size": size, "mtime_ns": mtime or 0}))
    unsupported = tuple(source.join(rel).uri for rel, _, _ in listed
                        if PurePosixPath(rel).suffix.lower() in UNSUPPORTED_PHOTO_EXTENSIONS)
    left_out = tuple(source.join(prefix.rstrip("/")).uri for prefix in marked)
    return InputSet("prefix", source, tuple(files), left_out, tuple(hidden), unsupported)


def input_fingerprints(files: list[PlannedFile], inputs: InputSet, with_hash: bool) -> dict[str, dict[str, Any]]:
    """What each input to check or write is now: size, mtime and ctime (local; and its
    sha256 for the inputs about to be written, ``with_hash``), or its listing's size and
    upload time (object store)."""
    listed = {f.location.path: f.fingerprint for f in inputs.files if f.fingerprint is not None}
    fingerprints: dict[str, dict[str, Any]] = {}
    for item in files:
        if item.status == "failed":
            continue
        if not item.source.local:
            if item.source.path in listed:
                fingerprints[item.source.path] = dict(listed[item.source.path])
            continue
        try:
            stat = os.stat(item.source.path)
            fingerprint: dict[str, Any] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "ctime_ns": stat.st_ctime_ns}
            if with_hash and item.status == "todo":
                fingerprint["sha256"] = file_sha256(item.source.path)
        except OSError:
            continue  # it will fail on decoding, and say why
        fingerprints[item.source.path] = fingerprint
    return fingerprints
