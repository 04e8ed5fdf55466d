"""``segue serve``: the HTTP API and the page, a thin layer over :class:`~segue_cli.Protector`
(opened once per worker process), as ``rembg s`` is over rembg's sessions.

* ``POST /v1/protect``: one or more images (multipart ``file``/``files`` parts, or the image
  itself as the body) and ``identity`` (or ``label``, ``code``), ``faces``, ``cloak``,
  ``format``, ``strength``, ``quality`` as form fields or query parameters; the protected
  PNG (one file) or a zip (several), byte for byte what ``segue protect`` writes for the
  same input and options. Every error is JSON ``{"error", "hint", "status"}`` with the
  CLI's wording (the statuses: ``openapi.ERRORS``), never a 500.
* ``GET /``: the page (plain HTML with its CSS and JS inlined, from the package: no build
  step, no CDN, one request); ``GET /healthz``; ``GET /v1/info`` (version, model and its
  sha256, limits, whether it can cloak); ``GET /docs`` (a self-contained page) and
  ``GET /openapi.json``.

A request is admitted to a protection slot only once its whole body is in (a client that
stalls holds no slot, only the bytes it sent, bounded on their own), and weighed by the
pixels its photos declare in their headers. Photos stay in memory: nothing is written to
disk. ``guards.py`` checks host, origin and token, adds the security headers and logs.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import re
import zipfile
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import partial
from importlib import resources
from pathlib import PurePosixPath
from typing import Any, AsyncIterator
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from .. import __version__
from ..choices import FACE_MODES, OUTPUT_FORMATS, STRENGTHS, lossy_warning
from ..errors import ConfigError, InputError, SegueError
from .config import ServeConfig
from .guards import CSP, Guard
from .openapi import docs_page, protect_openapi
from .options import call_options, cloak_available
from .uploads import Busy, ByteBudget, Deadlines, UploadError, form_fields, parse, read_body

MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
RETRY_AFTER_S = 1
TRIM_AFTER_PIXELS = 4_000_000  # after a request this large, hand freed memory back to the system
TRIM_DELAY_S = 1.0
FAVICON = base64.b64decode("R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==")  # a 1-pixel GIF


def error(status: int, message: str, hint: str | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "hint": hint, "status": status}, status_code=status, headers=headers)


def busy(close: bool = False) -> JSONResponse:
    """503; ``close`` when the body was left unread (the rest of it must not be read as a request)."""
    headers = {"Retry-After": str(RETRY_AFTER_S), **({"Connection": "close"} if close else {})}
    return error(503, "the server is busy: every protection slot and queue place is taken",
                 f"retry in {RETRY_AFTER_S} s", headers)


class Gate:
    """At most ``running + waiting`` requests inside at once (their photos in memory, at most
    ``running`` of them being protected, on the pool's threads), and at most ``pixels`` of
    declared pixels among them (a lone request is let in whatever its size, within the
    per-photo limit); the next is turned away (503) at once instead of queueing without end."""

    def __init__(self, running: int, waiting: int, pixels: int) -> None:
        self.limit, self.pixel_limit = running + waiting, pixels
        self.inside, self.pixels = 0, 0

    def admit(self, pixels: int) -> bool:
        if self.inside >= self.limit or (self.inside and self.pixels + pixels > self.pixel_limit):
            return False
        self.inside += 1
        self.pixels += pixels
        return True

    def leave(self, pixels: int) -> None:
        self.inside -= 1
        self.pixels -= pixels


def create_app(config: ServeConfig, protector: Any = None) -> Any:
    """The app (FastAPI inside the guard); ``protector`` (tests) replaces the one opened from
    ``config`` at start-up."""
    pool = ThreadPoolExecutor(config.protections_at_once, thread_name_prefix="segue-serve")
    gate = Gate(config.protections_at_once, config.waiting_at_most, config.pixels_at_once)
    received = ByteBudget(config.receiving_bytes_at_most)
    deadlines = Deadlines(config.body_timeout_s, config.upload_timeout_s)
    state: dict[str, Any] = {"protector": protector}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if state["protector"] is None:
            from ..photo.protector import Protector

            # One thread per protection: the pool runs several at once, so more would oversubscribe.
            state["protector"] = Protector(config.model, config.backend, config.device, "auto", config.detector,
                                           config.max_pixels, threads=1)
        yield
        pool.shutdown(wait=False, cancel_futures=True)

    # FastAPI's /docs and /redoc load scripts and fonts from public CDNs: ours is made from the schema.
    app = FastAPI(title="segue", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Protect face photos from unauthorised face-recognition training.")
    page_html = _page()
    if config.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return error(404, "no such page", "the page is /, the API POST /v1/protect; see /docs")
        if exc.status_code == 405:
            return error(405, f"{request.method[:10]} is not allowed here", "see /docs for each path's method",
                         dict(exc.headers or {}))
        return error(exc.status_code, str(exc.detail)[:200])

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:  # a bug: still the documented shape
        return error(500, "the server failed on this request (a bug in segue)", "report it with the server's log")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error(400, "the request does not match the API", "see /docs")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(page_html)

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return Response(FAVICON, media_type="image/gif")

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(state["docs"])

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/info")
    async def info() -> dict[str, Any]:
        model = state["protector"].info
        return {"segue": __version__, "model": PurePosixPath(str(model.model_path)).name,
                "model_sha256": model.model_sha256, "model_file_sha256": model.file_sha256, "backend": model.name,
                "device": model.device, "epsilon": model.epsilon, "working_size": model.image_size,
                "faces": list(FACE_MODES), "formats": list(OUTPUT_FORMATS), "cloak": cloak_available(),
                "strengths": {name: {"epsilon": model.epsilon * scale, "cloak_steps": steps}
                              for name, (scale, steps) in STRENGTHS.items()},
                "limits": {"max_upload_mb": config.max_upload_mb, "max_files": config.max_files,
                           "max_pixels": config.max_pixels, "protections_at_once": config.protections_at_once,
                           "waiting_at_most": config.waiting_at_most, "time_budget_s": config.time_budget_s}}

    @app.post("/v1/protect", openapi_extra=protect_openapi(config))
    async def protect(request: Request) -> Response:
        held = [0]  # the bytes of the body this request holds, given back at its end
        try:
            return await _protect(request, held)
        finally:
            received.give(held[0])

    async def _protect(request: Request, held: list[int]) -> Response:
        try:
            body = await read_body(request.stream(), request.headers.get("content-length"), config.max_upload_bytes,
                                   received, held, deadlines)
            upload = parse(body, request.headers.get("content-type", ""), config.max_files)
            query = form_fields(request.scope.get("query_string", b""))
        except ClientDisconnect:  # gone mid-upload: nothing to answer, nothing kept
            return Response(status_code=400)
        except Busy:
            return busy(close=True)
        except UploadError as exc:
            return error(exc.status, *_upload_words(exc, config))
        if not upload.files:
            return error(400, "no photo in the request", "add a 'file' part (or send the photo as the body)")
        try:
            call = call_options({**query, **upload.fields}, state["protector"])
        except SegueError as exc:
            return error(400, exc.message, exc.hint)
        try:
            pixels = _declared_pixels(upload.files, config.max_pixels)
        except InputError as exc:
            return error(422, exc.message, exc.hint)
        if not gate.admit(pixels):
            return busy()
        running: list[Future[Any]] = []
        try:
            results, failure = await _run(upload.files, call, running)
        finally:
            _leave_when_done(gate, pixels, running)
        if failure is not None:
            return failure
        return _answer(upload.files, results, call)

    async def _run(files: list[tuple[str, bytes]], call: dict[str, Any], running: list[Future[Any]]
                   ) -> tuple[list[tuple[bytes, list[str]]], Response | None]:
        """Each photo on a pool thread, as a folder run's worker would do it (batching the
        generator across requests was measured slower on this 2-core CPU: docs/benchmarks.md),
        within the time budget."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + config.time_budget_s
        results = []
        for name, data in files:
            future = pool.submit(partial(state["protector"].protect_file, data, **call))
            running.append(future)
            try:
                results.append(await asyncio.wait_for(asyncio.wrap_future(future),
                                                      max(deadline - loop.time(), 0.001)))
            except asyncio.TimeoutError:
                return results, error(413, f"the photos need more than this server's time budget of "
                                           f"{config.time_budget_s:g} s a request", "send fewer or smaller photos at once")
            except ConfigError as exc:
                return results, error(400, exc.message, exc.hint)
            except InputError as exc:
                message = exc.message.removeprefix("<bytes>: ")
                return results, error(422, f"{_shown(name)}: {message}", exc.hint)
        return results, None

    def _leave_when_done(gate: Gate, pixels: int, running: list[Future[Any]]) -> None:
        """Give the slot back when the last photo's thread is done (a request over its time
        budget is answered at once, but its thread runs on and keeps its slot meanwhile)."""
        loop = asyncio.get_running_loop()
        pending = [f for f in running if not f.done()]

        def trim_if_idle() -> None:
            if gate.inside == 0:
                pool.submit(_trim_memory)

        def leave(_: Any = None) -> None:
            gate.leave(pixels)
            if pixels >= TRIM_AFTER_PIXELS and gate.inside == 0:
                # Once the answer is sent and its bytes freed (a moment later), if nothing else came in.
                loop.call_later(TRIM_DELAY_S, trim_if_idle)

        if not pending:
            leave()
            return
        pending[-1].add_done_callback(lambda _: loop.call_soon_threadsafe(leave))

    state["docs"] = docs_page(app.openapi())
    return Guard(app, config, _csp(page_html, state["docs"]))


def _upload_words(exc: UploadError, config: ServeConfig) -> tuple[str, str | None]:
    if exc.status == 413 and not exc.message:
        return (f"the request is over the upload limit of {config.max_upload_mb:g} MB",
                "send fewer or smaller photos at once (the server's --max-upload-mb)")
    if exc.status == 408:
        return ("the upload stalled: its body did not arrive in time",
                f"send the body without pauses over {config.body_timeout_s:g} s, within {config.upload_timeout_s:g} s")
    if exc.status == 415:
        return exc.message, ("POST multipart/form-data with a 'file' part per photo, or one photo's bytes "
                             "with Content-Type image/*")
    return exc.message, exc.hint


def _declared_pixels(files: list[tuple[str, bytes]], limit: int) -> int:
    """The pixels the photos' headers declare, together; a photo over ``limit`` is refused
    here, before it waits for a slot or costs a decode."""
    from ..imageio import declared_size

    total = 0
    for name, data in files:
        size = declared_size(data)
        if size is None:
            continue
        width, height = size
        if width * height > limit:
            raise InputError(f"{_shown(name)}: {width}x{height} = {width * height:,} pixels exceeds the limit of "
                             f"{limit:,}", "this may be a decompression bomb; if the photo is genuine, the "
                             "server's --max-pixels raises the limit")
        total += width * height
    return total


def _answer(files: list[tuple[str, bytes]], results: list[tuple[bytes, list[str]]], call: dict[str, Any]) -> Response:
    warning = lossy_warning(call["image_format"], call["quality"])
    headers = {"X-Segue-Warning": warning} if warning else {}
    suffix = OUTPUT_FORMATS[call["image_format"]].suffixes[0]
    if len(results) == 1:
        stem = PurePosixPath(files[0][0]).stem or "upload"
        headers["Content-Disposition"] = content_disposition(f"{stem}-protected{suffix}")
        return Response(results[0][0], media_type=MEDIA_TYPES[call["image_format"]], headers=headers)
    headers["Content-Disposition"] = content_disposition("protected.zip")
    return Response(_zip(files, results, suffix), media_type="application/zip", headers=headers)


def content_disposition(name: str) -> str:
    """RFC 6266: an ASCII ``filename`` for old clients and ``filename*`` (UTF-8) with the real name."""
    name = "".join(c for c in name if c.isprintable() and c not in "/\\")[:150] or "upload"
    fallback = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def _shown(name: str) -> str:
    """A client's file name as it may appear in an answer: printable, short."""
    return "".join(c if c.isprintable() else "?" for c in name)[:100]


def _safe(stem: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)[:100] or "upload"


def _zip(files: list[tuple[str, bytes]], results: list[tuple[bytes, list[str]]], suffix: str) -> bytes:
    buffer = io.BytesIO()
    used: set[str] = set()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:  # PNGs are compressed already
        for index, ((name, _), (data, _)) in enumerate(zip(files, results)):
            stem = _safe(PurePosixPath(name).stem)
            entry, number = f"{stem}{suffix}", index + 1
            while entry in used:  # a.jpg, a-3.jpg, a.jpg: each entry its own name, nothing lost on extraction
                entry, number = f"{stem}-{number}{suffix}", number + 1
            used.add(entry)
            archive.writestr(entry, data)
    return buffer.getvalue()


def _trim_memory() -> None:
    """Hand the heap's free pages back to the system (glibc keeps them after a large decode)."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        ctypes.CDLL(name).malloc_trim(0)
    except (OSError, AttributeError, TypeError):  # not glibc: nothing to do
        pass


def _page() -> str:
    """The page as one response: its CSS and JS inlined, so that with --token the one
    request that carries the token (/?token=...) brings all of it."""
    static = resources.files("segue_cli.serve") / "static"
    html = (static / "index.html").read_text(encoding="utf-8")
    for name in ("page.css", "page.js"):
        html = html.replace(f"/* {name} */", (static / name).read_text(encoding="utf-8"))
    return html


def _csp(*pages: str) -> str:
    """The policy with the pages' own inline scripts and styles allowed by hash, nothing else."""
    def hashes(tag: str) -> str:
        found = [m for page in pages for m in re.findall(rf"<{tag}>(.*?)</{tag}>", page, re.S)]
        return " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(m.encode()).digest()).decode()}'" for m in found)

    return f"{CSP}; script-src {hashes('script') or chr(39) + 'none' + chr(39)}; style-src {hashes('style')}"


def app_from_environment() -> Any:
    """The app of a uvicorn worker process (``--workers N``): its settings come from the
    environment variable the CLI sets, as JSON."""
    import json
    import os

    from .protocol import configure

    record = json.loads(os.environ["SEGUE_SERVE_CONFIG"])
    for name in ("cors_origins", "allowed_hosts"):
        record[name] = tuple(record.get(name, ()))
    config = ServeConfig(**record)
    configure(config)
    return create_app(config)
