"""A request's photos, read into memory and never written to disk: the body is counted as
it streams in and refused past the limit (a 2 GB body costs the server no more than the
limit), then parsed as multipart form data (``file`` / ``files`` parts and option fields)
or taken whole as one image (``Content-Type: image/...`` or ``application/octet-stream``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import AsyncIterator


class TooLarge(Exception):
    """The body is over the upload limit."""


class BadUpload(Exception):
    """The body is not what its Content-Type says."""


@dataclass
class Upload:
    files: list[tuple[str, bytes]] = field(default_factory=list)  # (name as sent, bytes)
    fields: dict[str, str] = field(default_factory=dict)


async def read_body(stream: AsyncIterator[bytes], declared: str | None, limit: int) -> bytes:
    """The whole body, or TooLarge as soon as it (or its Content-Length) passes ``limit``."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge
    chunks, size = [], 0
    async for chunk in stream:
        size += len(chunk)
        if size > limit:
            raise TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def parse(body: bytes, content_type: str, max_files: int) -> Upload:
    """The files and fields of a multipart body, or the body itself as one file."""
    media, _, parameters = content_type.partition(";")
    media = media.strip().lower()
    if media.startswith("image/") or media == "application/octet-stream":
        return Upload(files=[("upload", body)])
    if media == "application/x-www-form-urlencoded":  # a form with fields but no file part
        from urllib.parse import parse_qsl

        return Upload(fields=dict(parse_qsl(body.decode("utf-8", "replace"))))
    if media != "multipart/form-data":
        raise BadUpload(f"send multipart/form-data with file parts, or the image itself as image/* (got {media or 'none'})")
    boundary = next((value.strip().strip('"') for key, _, value in (p.partition("=") for p in parameters.split(";"))
                     if key.strip().lower() == "boundary"), None)
    if not boundary:
        raise BadUpload("the multipart body names no boundary")
    return _parse_multipart(body, boundary, max_files)


class _Part:
    """The part being read: its headers so far and its data."""

    def __init__(self) -> None:
        self.headers: dict[bytes, bytes] = {}
        self.data: list[bytes] = []
        self.name, self.value = b"", b""


def _parse_multipart(body: bytes, boundary: str, max_files: int) -> Upload:
    from python_multipart.multipart import MultipartParser, parse_options_header

    upload = Upload()
    part = _Part()

    def on_part_begin() -> None:
        nonlocal part
        part = _Part()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        part.name += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        part.value += data[start:end]

    def on_header_end() -> None:
        part.headers[part.name.lower()] = part.value
        part.name, part.value = b"", b""

    def on_part_data(data: bytes, start: int, end: int) -> None:
        part.data.append(data[start:end])

    def on_part_end() -> None:
        _, options = parse_options_header(part.headers.get(b"content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename")
        value = b"".join(part.data)
        if filename is not None or name in ("file", "files"):
            if len(upload.files) >= max_files:
                raise BadUpload(f"more than {max_files} files in one request")
            upload.files.append(((filename or b"upload").decode("utf-8", "replace"), value))
        elif name:
            upload.fields[name] = value.decode("utf-8", "replace")

    callbacks = {"on_part_begin": on_part_begin, "on_header_field": on_header_field, "on_header_value": on_header_value,
                 "on_header_end": on_header_end, "on_part_data": on_part_data, "on_part_end": on_part_end}
    parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
    try:
        parser.write(body)
        parser.finalize()
    except BadUpload:
        raise
    except Exception as exc:  # noqa: BLE001 (the parser raises its own errors for malformed bodies)
        raise BadUpload(f"malformed multipart body ({exc.__class__.__name__})") from exc
    return upload
