"""A request's photos, read into memory and never written to disk: the body is counted as
it streams in and refused past the limit (a 2 GB body costs the server no more than the
limit), with a deadline between chunks and for the whole body (a client that stalls gets
408 and holds nothing), then parsed as multipart form data (``file`` / ``files`` parts and
option fields) or taken whole as one image (``Content-Type: image/...`` or
``application/octet-stream``). Every way a body can be wrong is an :class:`UploadError`
that carries its HTTP status, never an exception of the parser's."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import AsyncIterator
from urllib.parse import parse_qsl


class UploadError(Exception):
    """The body cannot be used; ``status`` is the HTTP answer (400, 408, 413, 415)."""

    status = 400

    def __init__(self, message: str = "", hint: str | None = None) -> None:
        super().__init__(message)
        self.message, self.hint = message, hint


class TooLarge(UploadError):
    """The body is over the upload limit, or holds too many files."""

    status = 413


class BadUpload(UploadError):
    """The body is not what its Content-Type says it is."""

    status = 415


class Malformed(UploadError):
    """A multipart body that does not parse, or text that is not UTF-8."""

    status = 400


class TooSlow(UploadError):
    """The body did not arrive within its deadlines."""

    status = 408


class Busy(Exception):
    """The bytes being received by every request together are at their bound."""


class ByteBudget:
    """The bytes that request bodies hold in memory, all requests together, bounded on
    their own (apart from the protection slots): a body is counted as it arrives, so a
    client that stalls holds only what it sent."""

    def __init__(self, limit: int) -> None:
        self.limit, self.held = limit, 0

    def take(self, size: int) -> None:
        if self.held + size > self.limit:
            raise Busy
        self.held += size

    def give(self, size: int) -> None:
        self.held -= size


@dataclass
class Upload:
    files: list[tuple[str, bytes]] = field(default_factory=list)  # (name as sent, bytes)
    fields: dict[str, str] = field(default_factory=dict)


@dataclass
class Deadlines:
    idle_s: float  # longest wait for the next chunk
    total_s: float  # longest the whole body may take


async def read_body(stream: AsyncIterator[bytes], declared: str | None, limit: int, budget: ByteBudget,
                    held: list[int], deadlines: Deadlines) -> bytes:
    """The whole body, or TooLarge as soon as it (or its Content-Length) passes ``limit``,
    TooSlow when a chunk or the whole body is late, Busy when ``budget`` is spent. What
    this request holds of ``budget`` is added to ``held[0]``; the caller gives it back."""
    declared = (declared or "").strip()
    if declared.isascii() and declared.isdigit() and (len(declared) > 18 or int(declared) > limit):
        raise TooLarge
    chunks, size = [], 0
    end = time.monotonic() + deadlines.total_s
    iterator = stream.__aiter__()
    while True:
        wait = min(deadlines.idle_s, end - time.monotonic())
        try:
            chunk = await asyncio.wait_for(iterator.__anext__(), timeout=max(wait, 0.001))
        except StopAsyncIteration:
            break
        except asyncio.TimeoutError:
            raise TooSlow from None
        size += len(chunk)
        if size > limit:
            raise TooLarge
        budget.take(len(chunk))
        held[0] += len(chunk)
        chunks.append(chunk)
    return b"".join(chunks)


def parse(body: bytes, content_type: str, max_files: int) -> Upload:
    """The files and fields of a multipart body, or the body itself as one file."""
    media, _, parameters = content_type.partition(";")
    media = media.strip().lower()
    if media.startswith("image/") or media == "application/octet-stream":
        return Upload(files=[("upload", body)])
    if media == "application/x-www-form-urlencoded":  # a form with fields but no file part
        return Upload(fields=form_fields(body))
    if media != "multipart/form-data":
        shown = media[:60].encode("ascii", "backslashreplace").decode() or "none"
        raise BadUpload(f"send multipart/form-data with file parts, or the image itself as image/* (got {shown})")
    boundary = next((value.strip().strip('"') for key, _, value in (p.partition("=") for p in parameters.split(";"))
                     if key.strip().lower() == "boundary"), None)
    if not boundary:
        raise Malformed("the multipart body names no boundary")
    return _parse_multipart(body, boundary, max_files)


def form_fields(raw: bytes) -> dict[str, str]:
    """``a=1&b=2`` (a query string or a urlencoded body) as fields; text that is not UTF-8 is
    refused, not replaced: two names that differ only in invalid bytes must not become one."""
    try:
        return dict(parse_qsl(raw.decode("ascii"), keep_blank_values=True, encoding="utf-8", errors="strict"))
    except UnicodeError:
        raise Malformed("a field is not valid UTF-8 text", "send names and options as UTF-8") from None


def _text(value: bytes, what: str) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise Malformed(f"{what} is not valid UTF-8 text", "send names and options as UTF-8") from None


class _Part:
    """The part being read: its headers so far and its data."""

    def __init__(self) -> None:
        self.headers: dict[bytes, bytes] = {}
        self.data: list[bytes] = []
        self.name, self.value = b"", b""


def _parse_multipart(body: bytes, boundary: str, max_files: int) -> Upload:
    from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header

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
        name = _text(options.get(b"name", b""), "a part's name")
        filename = options.get(b"filename")
        value = b"".join(part.data)
        if filename is not None or name in ("file", "files"):
            if len(upload.files) >= max_files:
                raise TooLarge(f"more than {max_files} files in one request",
                               f"send at most {max_files} photos a request (the server's --max-files)")
            # Browsers send a non-ASCII file name as raw UTF-8; anything else is shown, not trusted.
            upload.files.append(((filename or b"upload").decode("utf-8", "replace"), value))
        elif name:
            upload.fields[name] = _text(value, f"the field {name[:40]!r}")

    callbacks = {"on_part_begin": on_part_begin, "on_header_field": on_header_field, "on_header_value": on_header_value,
                 "on_header_end": on_header_end, "on_part_data": on_part_data, "on_part_end": on_part_end}
    try:
        parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]  # raises for a bad boundary too
        parser.write(body)
        parser.finalize()
    except UploadError:
        raise
    except Exception as exc:  # noqa: BLE001 (the parser raises its own errors for malformed bodies)
        raise Malformed(f"malformed multipart body ({exc.__class__.__name__})",
                        "send multipart/form-data as a browser or curl -F makes it") from exc
    if parser.state != MultipartState.END:  # a part is cut off: refuse rather than drop it
        raise Malformed("the multipart body ends before its closing boundary",
                        "send the whole body (it ends with --BOUNDARY--)")
    return upload
