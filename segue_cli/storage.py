"""Files wherever they are: a local path or any URI pyarrow has a filesystem for
(``s3://bucket/prefix``, ``gs://...``), behind one :class:`Location`. The planner lists
and checks trees, and every engine reads each photo and writes each output, through these
few functions, so a local folder and a bucket take one code path. Local paths need no
pyarrow (the core install has none).

Writes are whole or absent: a local file goes through :func:`atomic_write` (a temp file
renamed over the target), an object is uploaded in one request or a multipart upload that
the store only shows once it is completed, so a worker killed mid-write never leaves a
partial file.
"""

from __future__ import annotations

import functools
import hashlib
import os
import posixpath
import stat
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .errors import ArtifactError, InputError


def is_uri(target: str | Path) -> bool:
    """Whether ``target`` names an object store (``scheme://...``). Light on purpose: the
    CLI asks before importing anything heavy."""
    return "://" in str(target)


@dataclass(frozen=True)
class Location:
    """A folder or file: a local path (``filesystem`` None) or a path in a pyarrow filesystem."""

    filesystem: Any  # None for a local path; else a pyarrow.fs.FileSystem (picklable: it travels to Ray workers)
    path: str  # absolute for a local path; no trailing slash
    uri: str  # as the user wrote it, or joined from it (for messages)

    @property
    def local(self) -> bool:
        return self.filesystem is None

    @property
    def reported(self) -> Path | str:
        """How results name it: a Path for a local file, the URI for an object."""
        return Path(self.path) if self.local else self.uri

    def join(self, relative: str) -> "Location":
        if self.local:
            return Location(None, os.path.join(self.path, relative), os.path.join(self.uri, relative))
        return Location(self.filesystem, posixpath.join(self.path, relative), posixpath.join(self.uri.rstrip("/"), relative))


def local(path: str | Path) -> Location:
    """The Location of a local path (made absolute, symlinks kept)."""
    return Location(None, os.path.abspath(os.path.expanduser(str(path))), str(path))


def locate(target: str | Path) -> Location:
    """The Location of a local path or a URI (credentials and endpoint from the environment,
    as pyarrow reads them: ``AWS_*`` for ``s3://``)."""
    text = str(target)
    if not is_uri(text):
        return local(text)
    from pyarrow import fs

    try:
        filesystem, path = fs.FileSystem.from_uri(text)
    except Exception as exc:  # noqa: BLE001 (pyarrow raises ArrowInvalid and OSError for bad URIs)
        raise InputError(f"cannot open {text}: {exc}", "use a local path or a URI pyarrow supports (s3://, gs://)") from exc
    return Location(filesystem, path.rstrip("/"), text)


def read_bytes(location: Location) -> bytes:
    """The whole file. A local path must be a regular file: a FIFO or a device (a symlink to
    /dev/zero) would block or never end, so it is refused with a message instead."""
    if location.local:
        with open(location.path, "rb", opener=regular_file_opener) as handle:
            return handle.read()
    with location.filesystem.open_input_stream(location.path) as stream:
        return stream.readall()


def regular_file_opener(path: str, flags: int) -> int:
    # O_NONBLOCK: opening a FIFO with no writer would otherwise block before fstat could refuse it.
    fd = os.open(path, flags | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise InputError(f"{path} is not a regular file (a FIFO, a device or a socket)",
                             "give photos as regular files; segue does not read pipes or devices by path")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_bytes(location: Location, data: bytes) -> tuple[int, str]:
    """Write ``data`` whole; returns its (size, sha256), which a settings record keeps to
    tell a finished output from junk or a truncated copy at the same path."""
    if location.local:
        atomic_write(Path(location.path), lambda tmp: tmp.write_bytes(data))
    else:
        with location.filesystem.open_output_stream(location.path) as stream:
            stream.write(data)
    return len(data), hashlib.sha256(data).hexdigest()


def list_files(location: Location) -> list[tuple[str, int, int | None]]:
    """(path relative to ``location``, size, mtime in ns) of every file below an object-store prefix, sorted."""
    from pyarrow import fs

    try:
        infos = location.filesystem.get_file_info(fs.FileSelector(location.path, recursive=True, allow_not_found=False))
    except (FileNotFoundError, OSError) as exc:
        raise InputError(f"not found or not readable: {location.uri} ({exc})",
                         "check the URI and the credentials (AWS_* variables for s3://)") from exc
    files = []
    for info in infos:
        if info.type == fs.FileType.File:
            relative = posixpath.relpath(info.path, location.path)
            files.append((relative, info.size, info.mtime_ns))
    return sorted(files)


def exists(location: Location) -> bool:
    """Whether anything (a file, a folder or a prefix with objects) is at ``location``."""
    if location.local:
        return os.path.lexists(location.path)
    from pyarrow import fs

    return location.filesystem.get_file_info(location.path).type != fs.FileType.NotFound


def read_if_file(location: Location) -> bytes | None:
    """The file's bytes, or None when there is no file there (any other error is raised)."""
    if location.local:
        return read_bytes(location) if os.path.isfile(location.path) else None
    from pyarrow import fs

    if location.filesystem.get_file_info(location.path).type != fs.FileType.File:
        return None
    return read_bytes(location)


def file_sha256(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb", opener=regular_file_opener) as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pinned_file(path: Path, sha256: str, what: str, fix: str) -> Path:
    """``path`` once it exists and its sha256 is ``sha256``: the one check of every weight
    file segue takes from a package (dlib's, SFace's, the shipped face networks), so a swapped
    or corrupted file is refused before it is loaded, with ``fix`` as the hint."""
    if not path.is_file():
        raise ArtifactError(f"{what} {path} is missing", fix)
    actual = file_sha256(path)
    if actual != sha256:
        raise ArtifactError(f"{path} is not the file segue pins (sha256 {sha256[:12]}..., found {actual[:12]}...)",
                            f"the file was changed or corrupted: {fix}")
    return path


def model_sha256(path: Path | str) -> str:
    """:func:`file_sha256` of a model file, which opening a model reads up to five times
    (its card's pin, its twin's, the backend's record): hashed once a process for the file's
    current size and times."""
    info = os.stat(path)
    return _hashed_once(os.path.realpath(path), info.st_size, info.st_mtime_ns, info.st_ctime_ns)


@functools.lru_cache(maxsize=16)
def _hashed_once(path: str, size: int, mtime_ns: int, ctime_ns: int) -> str:
    return file_sha256(path)


def _umask() -> int:
    """The process's umask, read without changing it where Linux shows it (/proc): the
    only other way sets it, and a second thread creating a file in between would get the
    wrong permissions."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _UMASK_LOCK:
        current = os.umask(0o022)
        os.umask(current)
        return current


_UMASK_LOCK = threading.Lock()


def atomic_write(path: Path, write: Callable[[Path], Any]) -> None:
    """Call ``write(tmp_path)`` then move the temp file over ``path`` in one step."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp_name))
        # mkstemp makes the file private (0600); give it the permissions a plain open() would.
        os.chmod(tmp_name, 0o666 & ~_umask())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def prepare_run_dir(out: Path) -> Path:
    """A new run folder, never overwriting one: ``out`` if free, else out-2, out-3, ..."""
    candidate, n = out, 1
    while candidate.exists():
        n += 1
        candidate = out.with_name(f"{out.name}-{n}")
    candidate.mkdir(parents=True)
    return candidate
