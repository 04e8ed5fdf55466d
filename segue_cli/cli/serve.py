"""Protect photos from a web page or an HTTP call: a page at / (drop photos, enter your name,
see each beside its protected version, download), an API at POST /v1/protect (the same bytes
as segue protect for the same photo and options), GET /healthz, GET /v1/info, and the
OpenAPI docs at /docs. The model is opened once per worker; photos stay in memory.

Safe defaults: binds 127.0.0.1 (this computer only); binding another address without
--token prints a warning; with --token every request needs it (Authorization: Bearer
TOKEN; the page: open /?token=TOKEN); request size, pixels and concurrency are bounded;
CORS is off unless --cors-origin is given. Needs pip install 'segue[serve]'.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from typing import Annotated, Optional

import typer

from ..choices import DEFAULT_MAX_PIXELS
from .options import DeviceOption, ModelOption
from .render import stderr_console


def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on. 127.0.0.1 (default) is this computer only; 0.0.0.0 is every network it is on (then give --token).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port (1-65535).")] = 8000,
    workers: Annotated[int, typer.Option("--workers", help="Worker processes, each with its own copy of the model (1-64).")] = 1,
    threads: Annotated[int, typer.Option("--threads", help="Photos each worker protects at once; 0: one per CPU core.")] = 0,
    queue: Annotated[int, typer.Option("--queue", help="Requests that may wait for a free thread; more are answered 503 with Retry-After. Memory is bounded by (threads + queue) x --max-upload-mb.")] = 32,
    max_upload_mb: Annotated[float, typer.Option("--max-upload-mb", help="Largest request body in MB (all its photos together); larger ones get 413 before they are read.")] = 50.0,
    max_files: Annotated[int, typer.Option("--max-files", help="Most photos in one request.")] = 32,
    max_pixels: Annotated[int, typer.Option("--max-pixels", help="Refuse photos with more pixels than this (decompression bombs): 422.")] = DEFAULT_MAX_PIXELS,
    token: Annotated[Optional[str], typer.Option("--token", help="A secret every request must send (Authorization: Bearer TOKEN); at least 16 characters. Also read from SEGUE_SERVE_TOKEN.", envvar="SEGUE_SERVE_TOKEN")] = None,
    cors_origin: Annotated[Optional[list[str]], typer.Option("--cors-origin", help="A web origin (https://example.org) whose pages may call the API from a browser; repeatable. Default: none (CORS off).")] = None,
    model: ModelOption = None,
    device: DeviceOption = "auto",
) -> None:
    from ..extras import require

    require("serve")
    from ..serve.config import ServeConfig

    config = ServeConfig(host=host, port=port, workers=workers, threads=threads, queue=queue, max_upload_mb=max_upload_mb,
                         max_files=max_files, max_pixels=max_pixels, token=token, cors_origins=tuple(cors_origin or ()),
                         model=model, device=device)
    if config.exposed_without_token:
        stderr_console.print(f"[yellow]warning:[/] listening on {host} without --token: anyone who can reach this "
                             "address can use the server", highlight=False)
    import logging

    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    shown = "localhost" if host in ("127.0.0.1", "::1") else host
    stderr_console.print(f"segue serve: the page at http://{shown}:{port}/ , the API at /v1/protect, docs at /docs",
                         highlight=False)
    if workers == 1:
        from ..serve.app import create_app

        uvicorn.run(create_app(config), host=host, port=port, access_log=False, log_level="warning")
        return
    os.environ["SEGUE_SERVE_CONFIG"] = json.dumps(asdict(config))  # each worker process builds its app from it
    uvicorn.run("segue_cli.serve.app:app_from_environment", factory=True, host=host, port=port, workers=workers,
                access_log=False, log_level="warning")
