"""Files wherever they are: a local path or any URI pyarrow has a filesystem for
(``s3://bucket/prefix``, ``gs://...``). The Ray engine reads every photo and writes every
output through these few functions, so a local folder and a bucket take one code path.

Writes are whole or absent: a local output goes through ``atomic_write`` (a temp file
renamed over the output, as the local engine writes), an object is uploaded in one
request or a multipart upload that the store only shows once it is completed, so a worker
killed mid-write never leaves a partial file.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InputError


def is_uri(target: str | Path) -> bool:
    """Whether ``target`` names an object store (``scheme://...``). Light on purpose: the
    CLI asks before importing anything heavy."""
    return "://" in str(target)


@dataclass(frozen=True)
class Location:
    """A folder or file: a pyarrow filesystem and the path inside it."""

    filesystem: Any  # pyarrow.fs.FileSystem (picklable, so it travels to Ray workers)
    path: str  # no trailing slash
    uri: str  # as the user wrote it (for messages)

    @property
    def local(self) -> bool:
        return type(self.filesystem).__name__ == "LocalFileSystem"

    def join(self, relative: str) -> "Location":
        return Location(self.filesystem, posixpath.join(self.path, relative), posixpath.join(self.uri.rstrip("/"), relative))


def locate(target: str | Path) -> Location:
    """The Location of a local path or a URI (credentials and endpoint from the environment,
    as pyarrow reads them: ``AWS_*`` for ``s3://``)."""
    from pyarrow import fs

    text = str(target)
    if not is_uri(text):
        return Location(fs.LocalFileSystem(), os.path.abspath(os.path.expanduser(text)), text)
    try:
        filesystem, path = fs.FileSystem.from_uri(text)
    except Exception as exc:  # noqa: BLE001 (pyarrow raises ArrowInvalid and OSError for bad URIs)
        raise InputError(f"cannot open {text}: {exc}", "use a local path or a URI pyarrow supports (s3://, gs://)") from exc
    return Location(filesystem, path.rstrip("/"), text)


def read_bytes(location: Location) -> bytes:
    with location.filesystem.open_input_stream(location.path) as stream:
        return stream.readall()


def write_bytes(location: Location, data: bytes) -> None:
    if location.local:
        from .artifacts import atomic_write

        atomic_write(Path(location.path), lambda tmp: tmp.write_bytes(data))
        return
    with location.filesystem.open_output_stream(location.path) as stream:
        stream.write(data)


def list_files(location: Location) -> list[tuple[str, int, int | None]]:
    """(path relative to ``location``, size, mtime in ns) of every file below it, sorted."""
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
    from pyarrow import fs

    return location.filesystem.get_file_info(location.path).type != fs.FileType.NotFound


def read_if_file(location: Location) -> bytes | None:
    """The file's bytes, or None when there is no file there (any other error is raised)."""
    from pyarrow import fs

    if location.filesystem.get_file_info(location.path).type != fs.FileType.File:
        return None
    return read_bytes(location)
