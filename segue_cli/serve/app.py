"""``segue serve``: the HTTP API and the page, a thin layer over :class:`~segue_cli.Protector`
(opened once per worker process), as ``rembg s`` is over rembg's sessions.

* ``POST /v1/protect``: one or more images (multipart ``file``/``files`` parts, or the image
  itself as the body) and ``identity`` (or ``label``, ``code``), ``faces``, ``cloak``,
  ``format``, ``quality`` as form fields or query parameters; the protected PNG (one file)
  or a zip (several), byte for byte what ``segue protect`` writes for the same input and
  options. Errors are JSON ``{"error", "hint", "status"}`` with the CLI's wording: 400 bad
  options, 401 no or wrong token, 413 too large, 415 not multipart or an image, 422 not a
  readable image (or a decompression bomb, or too small), 503 with Retry-After when the
  queue is full.
* ``GET /``: the page (plain HTML with its CSS and JS inlined, from the package: no build
  step, no CDN, one request);
  ``GET /healthz``; ``GET /v1/info`` (version, model and its sha256, limits);
  ``GET /docs``: the OpenAPI docs.

Photos stay in memory: the body is read with a limit and parsed in memory, the output is
built in memory, nothing is written to disk. The log names method, path, status, size and
time only: no query string (it may hold a name), no file name, no face.
"""

from __future__ import annotations

import asyncio
import hmac
import io
import logging
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import partial
from importlib import resources
from pathlib import PurePosixPath
from typing import Any, AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.requests import ClientDisconnect

from .. import __version__
from ..choices import DEFAULT_STRENGTH, FACE_MODES, STRENGTHS
from ..errors import ConfigError, InputError, SegueError
from ..formats import OUTPUT_FORMATS, lossy_warning
from .config import ServeConfig
from .uploads import BadUpload, TooLarge, parse, read_body

log = logging.getLogger("segue.serve")
MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
RETRY_AFTER_S = 1


def error(status: int, message: str, hint: str | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "hint": hint, "status": status}, status_code=status, headers=headers)


class Gate:
    """At most ``running + waiting`` requests inside at once (their photos in memory, at
    most ``running`` of them being protected, on the pool's threads); the next is turned
    away (503) at once instead of queueing without end."""

    def __init__(self, running: int, waiting: int) -> None:
        self.limit = running + waiting
        self.inside = 0

    def admit(self) -> bool:
        if self.inside >= self.limit:
            return False
        self.inside += 1
        return True

    def leave(self) -> None:
        self.inside -= 1


def create_app(config: ServeConfig, protector: Any = None) -> FastAPI:
    """The app; ``protector`` (tests) replaces the one opened from ``config`` at start-up."""
    pool = ThreadPoolExecutor(config.protections_at_once, thread_name_prefix="segue-serve")
    state: dict[str, Any] = {"protector": protector, "gate": Gate(config.protections_at_once, config.waiting_at_most)}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if state["protector"] is None:
            from ..protector import Protector

            # One thread per protection: the pool runs several at once, so more would oversubscribe.
            state["protector"] = Protector(config.model, config.backend, config.device, "auto", config.detector,
                                           config.max_pixels, threads=1)
        yield
        pool.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="segue", version=__version__, lifespan=lifespan,
                  description="Protect face photos from unauthorised face-recognition training.")
    page_html = _page()
    if config.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])

    @app.middleware("http")
    async def guard_and_log(request: Request, call_next: Any) -> Response:
        started = time.perf_counter()
        if config.token is not None and not _authorised(request, config.token):
            response: Response = error(401, "this server needs its token", "send Authorization: Bearer TOKEN "
                                       "(the page: open it as /?token=TOKEN)")
        else:
            response = await call_next(request)
        log.info("%s %s %d %s %.0f ms", request.method, request.url.path, response.status_code,
                 response.headers.get("content-length", "-"), 1000 * (time.perf_counter() - started))
        return response

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(page_html)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/info")
    async def info() -> dict[str, Any]:
        model = state["protector"].info
        return {"segue": __version__, "model": PurePosixPath(str(model.model_path)).name,
                "model_sha256": model.model_sha256, "model_file_sha256": model.file_sha256, "backend": model.name,
                "device": model.device, "epsilon": model.epsilon, "working_size": model.image_size,
                "faces": list(FACE_MODES), "formats": list(OUTPUT_FORMATS),
                "strengths": {name: {"epsilon": model.epsilon * scale, "cloak_steps": steps}
                              for name, (scale, steps) in STRENGTHS.items()},
                "limits": {"max_upload_mb": config.max_upload_mb, "max_files": config.max_files,
                           "max_pixels": config.max_pixels, "protections_at_once": config.protections_at_once,
                           "waiting_at_most": config.waiting_at_most}}

    @app.post("/v1/protect", responses={200: {"content": {"image/png": {}, "application/zip": {}}}})
    async def protect(request: Request) -> Response:
        gate: Gate = state["gate"]
        if not gate.admit():
            return error(503, "the server is busy: every protection slot and queue place is taken",
                         f"retry in {RETRY_AFTER_S} s", {"Retry-After": str(RETRY_AFTER_S)})
        try:
            try:
                body = await read_body(request.stream(), request.headers.get("content-length"), config.max_upload_bytes)
                upload = parse(body, request.headers.get("content-type", ""), config.max_files)
            except ClientDisconnect:  # gone mid-upload: nothing to answer, nothing kept
                return Response(status_code=400)
            except TooLarge:
                return error(413, f"the request is over the upload limit of {config.max_upload_mb:g} MB",
                             "send fewer or smaller photos at once (the server's --max-upload-mb)")
            except BadUpload as exc:
                return error(415, str(exc), "POST multipart/form-data with a 'file' part per photo, or one photo's "
                                            "bytes with Content-Type image/*")
            if not upload.files:
                return error(400, "no photo in the request", "add a 'file' part (or send the photo as the body)")
            options = {**dict(request.query_params), **upload.fields}
            try:
                call = _call_options(options, state["protector"])
            except SegueError as exc:
                return error(400, exc.message, exc.hint)
            results = []
            loop = asyncio.get_running_loop()
            for name, data in upload.files:
                try:
                    # One request's photo on one pool thread, as a folder run's worker would do it. Batching
                    # the generator across requests was measured slower on this 2-core CPU (docs/benchmarks.md).
                    results.append(await loop.run_in_executor(pool, partial(state["protector"].protect_file, data, **call)))
                except ConfigError as exc:
                    return error(400, exc.message, exc.hint)
                except InputError as exc:
                    message = exc.message.removeprefix("<bytes>: ")
                    return error(422, f"{name}: {message}", exc.hint)
            warning = lossy_warning(call["image_format"], call["quality"])
            headers = {"X-Segue-Warning": warning} if warning else {}
            if len(results) == 1:
                stem = PurePosixPath(upload.files[0][0]).stem or "upload"
                suffix = OUTPUT_FORMATS[call["image_format"]].suffixes[0]
                headers["Content-Disposition"] = f'attachment; filename="{_safe(stem)}-protected{suffix}"'
                return Response(results[0][0], media_type=MEDIA_TYPES[call["image_format"]], headers=headers)
            headers["Content-Disposition"] = 'attachment; filename="protected.zip"'
            return Response(_zip(upload.files, results, call["image_format"]), media_type="application/zip", headers=headers)
        finally:
            gate.leave()

    return app


def _page() -> str:
    """The page as one response: its CSS and JS inlined, so that with --token the one
    request that carries the token (/?token=...) brings all of it."""
    static = resources.files("segue_cli.serve") / "static"
    html = (static / "index.html").read_text(encoding="utf-8")
    for name in ("page.css", "page.js"):
        html = html.replace(f"/* {name} */", (static / name).read_text(encoding="utf-8"))
    return html


def _authorised(request: Request, token: str) -> bool:
    given = request.headers.get("authorization", "")
    if given.lower().startswith("bearer "):
        return hmac.compare_digest(given[7:].strip().encode(), token.encode())
    return request.url.path == "/" and hmac.compare_digest(request.query_params.get("token", "").encode(), token.encode())


def _call_options(options: dict[str, str], protector: Any) -> dict[str, Any]:
    """``protect_file``'s arguments from the request's fields, with the CLI's checks and words."""
    from ..photo.cloak import CloakConfig

    unknown = sorted(set(options) - {"identity", "label", "code", "faces", "cloak", "format", "quality", "strength", "token"})
    if unknown:
        raise ConfigError(f"unknown option(s) {', '.join(unknown)}",
                          "use identity, label, code, faces, cloak, format, quality, strength")

    def integer(name: str) -> int | None:
        if name not in options:
            return None
        value = options[name].strip()
        if not (value.isascii() and value.isdigit()):
            raise ConfigError(f"{name} must be a whole number 0..65535, got {options[name]!r}",
                              "or give identity=NAME for a name")
        return int(value)

    code = protector.code_for(identity=options.get("identity"), label=integer("label"), code=integer("code"))
    faces = options.get("faces", "auto")
    if faces not in FACE_MODES:
        raise ConfigError(f"unknown faces mode {faces!r}", f"use one of {', '.join(FACE_MODES)}")
    image_format = options.get("format", "png")
    if image_format not in OUTPUT_FORMATS:
        raise ConfigError(f"unknown format {image_format!r}", f"use one of {', '.join(OUTPUT_FORMATS)}")
    quality = integer("quality")
    if quality is not None and (not OUTPUT_FORMATS[image_format].lossy or not 1 <= quality <= 100):
        raise ConfigError("quality applies to jpeg and webp only, 1..100", "drop quality, or give format=jpeg")
    cloak_word = options.get("cloak", "false").strip().lower()
    if cloak_word not in ("true", "false", "1", "0", "on", "off", "yes", "no"):
        raise ConfigError(f"cloak must be true or false, got {options['cloak']!r}")
    strength = options.get("strength", DEFAULT_STRENGTH)
    if strength not in STRENGTHS:
        raise ConfigError(f"unknown --strength {strength!r}", f"use one of {', '.join(STRENGTHS)}")
    cloak = CloakConfig(steps=STRENGTHS[strength][1]) if cloak_word in ("true", "1", "on", "yes") else None
    if cloak is not None:
        from ..extras import require

        require("protect --cloak")
    return {"code": code, "image_format": image_format, "quality": quality, "faces": faces, "cloak": cloak,
            "strength": strength}


def _safe(stem: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)[:100] or "upload"


def _zip(files: list[tuple[str, bytes]], results: list[tuple[bytes, list[str]]], image_format: str) -> bytes:
    buffer = io.BytesIO()
    suffix = OUTPUT_FORMATS[image_format].suffixes[0]
    used: set[str] = set()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:  # PNGs are compressed already
        for index, ((name, _), (data, _)) in enumerate(zip(files, results)):
            entry = f"{_safe(PurePosixPath(name).stem)}{suffix}"
            if entry in used:
                entry = f"{_safe(PurePosixPath(name).stem)}-{index + 1}{suffix}"
            used.add(entry)
            archive.writestr(entry, data)
    return buffer.getvalue()


def app_from_environment() -> FastAPI:
    """The app of a uvicorn worker process (``--workers N``): its settings come from the
    environment variable the CLI sets, as JSON."""
    import json
    import os

    record = json.loads(os.environ["SEGUE_SERVE_CONFIG"])
    record["cors_origins"] = tuple(record.get("cors_origins", ()))
    return create_app(ServeConfig(**record))
