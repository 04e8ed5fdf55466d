"""Protect photos from a web page or an HTTP call: a page at / (drop photos, enter your name,
see each beside its protected version, download), an API at POST /v1/protect (the same bytes
as segue protect for the same photo and options), GET /healthz, GET /v1/info, and the API's
description at /docs (a plain page, nothing from the internet) and /openapi.json. The model
is opened once per worker; photos stay in memory.

Safe defaults: binds 127.0.0.1 (this computer only); binding another address without
--token prints a warning; with --token every request needs it (Authorization: Bearer
TOKEN; the page: open /?token=TOKEN); answers only its own host names (no DNS rebinding)
and refuses requests from other web sites unless --cors-origin allows them; request size,
pixels, time and concurrency are bounded, and slow clients time out (408). Needs pip
install 'segue[serve]'.
"""

from __future__ import annotations

import json
import math
import os
import socket
from dataclasses import asdict
from typing import Annotated, Any, Optional

import typer

from ..choices import SERVE_MAX_PIXELS
from ..errors import ConfigError
from .options import DeviceOption, JsonOption, ModelOption
from .render import print_json, stderr_console


def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on. 127.0.0.1 (default) is this computer only; 0.0.0.0 is every network it is on (then give --token).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port (1-65535).")] = 8000,
    workers: Annotated[int, typer.Option("--workers", help="Worker processes, each with its own copy of the model (1-64).")] = 1,
    threads: Annotated[int, typer.Option("--threads", help="Photos each worker protects at once; 0: one per CPU core.")] = 0,
    queue: Annotated[int, typer.Option("--queue", help="Requests that may wait for a free thread; more are answered 503 with Retry-After. Memory is bounded by (threads + queue) x --max-upload-mb.")] = 64,
    max_upload_mb: Annotated[float, typer.Option("--max-upload-mb", help="Largest request body in MB (all its photos together); larger ones get 413 before they are read.")] = 50.0,
    max_files: Annotated[int, typer.Option("--max-files", help="Most photos in one request.")] = 32,
    max_pixels: Annotated[int, typer.Option("--max-pixels", help="Refuse photos whose header declares more pixels than this (decompression bombs), before decoding: 422. Lower than segue protect's 100 MP: a server decodes what strangers send.")] = SERVE_MAX_PIXELS,
    time_budget: Annotated[float, typer.Option("--time-budget", help="Seconds of protection one request may take once its photos are in; past it, 413.")] = 120.0,
    client_timeout: Annotated[float, typer.Option("--client-timeout", help="Seconds a client may pause while it sends a request's head or body; past it, 408 and the connection closed.")] = 10.0,
    connections_per_client: Annotated[int, typer.Option("--connections-per-client", help="Connections one client address may hold open at once; more are answered 503 and closed.")] = 64,
    token: Annotated[Optional[str], typer.Option("--token", help="A secret every request must send (Authorization: Bearer TOKEN); at least 16 characters. Also read from SEGUE_SERVE_TOKEN.", envvar="SEGUE_SERVE_TOKEN")] = None,
    cors_origin: Annotated[Optional[list[str]], typer.Option("--cors-origin", help="A web origin (https://example.org) whose pages may call the API from a browser; repeatable. Default: none (CORS off: requests from other sites get 403).")] = None,
    allow_host: Annotated[Optional[list[str]], typer.Option("--allow-host", help="A host name the server answers to besides localhost, IP addresses and --host (others get 421: DNS rebinding); repeatable.")] = None,
    model: ModelOption = None,
    device: DeviceOption = "auto",
    json_output: JsonOption = False,
) -> None:
    # An error (a busy port, a bad model) propagates: cli/app.py writes its message, and with --json
    # the one error line on stdout, as for every command.
    limits = {"max_upload_mb": max_upload_mb, "max_files": max_files, "max_pixels": max_pixels,
              "time_budget_s": time_budget, "head_timeout_s": client_timeout, "body_timeout_s": client_timeout,
              "connections_per_client": connections_per_client}
    _serve(host, port, workers, threads, queue, limits, token, tuple(cors_origin or ()), tuple(allow_host or ()),
           model, device, json_output)


def _serve(host: str, port: int, workers: int, threads: int, queue: int, limits: dict[str, Any], token: str | None,
           cors_origins: tuple[str, ...], allowed_hosts: tuple[str, ...], model: str | None, device: str,
           json_output: bool) -> None:
    from ..extras import require

    require("serve")
    from ..serve.config import ServeConfig

    config = ServeConfig(host=host, port=port, workers=workers, threads=threads, queue=queue, token=token,
                         cors_origins=cors_origins, allowed_hosts=allowed_hosts, model=model, device=device, **limits)
    if config.exposed_without_token:
        stderr_console.print(f"[yellow]warning:[/] listening on {host} without --token: anyone who can reach this "
                             "address can use the server", highlight=False)
    listening = bind(host, port)  # before anything is printed: a busy port is a clear error, not uvicorn's
    try:
        protector = _open_model(config)  # here, not in the server's start-up: a bad --model is exit 2, not a traceback
    except BaseException:
        listening.close()
        raise
    import logging

    import uvicorn

    from ..serve.protocol import GuardedH11Protocol, configure

    configure(config)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/"
    if json_output:
        print_json({"event": "listening", "url": url, "api": url + "v1/protect", "docs": url + "docs"})
    else:
        stderr_console.print(f"segue serve: the page at {url} , the API at {url}v1/protect, docs at {url}docs",
                             highlight=False)
    # An idle keep-alive connection is closed after --client-timeout, past the 5 s for which
    # common clients (httpx, requests) reuse one: equal timeouts race, and the request sent as
    # the server closes is reset.
    options: dict[str, Any] = {"access_log": False, "log_level": "warning", "http": GuardedH11Protocol,
                               "timeout_keep_alive": math.ceil(config.head_timeout_s), "server_header": False}
    if workers == 1:
        from ..serve.app import create_app

        server = uvicorn.Server(uvicorn.Config(create_app(config, protector), **options))
        server.run(sockets=[listening])
        return
    listening.close()  # each worker process binds the port itself
    os.environ["SEGUE_SERVE_CONFIG"] = json.dumps(asdict(config))  # each worker process builds its app from it
    uvicorn.run("segue_cli.serve.app:app_from_environment", factory=True, host=host, port=port, workers=workers,
                **{**options, "http": "segue_cli.serve.protocol:GuardedH11Protocol"})


def _open_model(config: Any) -> Any:
    """The Protector of a one-process server; with --workers each worker opens its own, so
    here the model is only found (a missing one is the same clear error)."""
    if config.workers > 1:
        from ..artifacts import resolve_model_path

        resolve_model_path(config.model)
        return None
    from ..photo.protector import Protector

    # One thread per protection: the server's pool runs several at once, so more would oversubscribe.
    return Protector(config.model, config.backend, config.device, "auto", config.detector, config.max_pixels, threads=1)


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, or a ConfigError that names the port and the fix."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listening = socket.socket(family, socket.SOCK_STREAM)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listening.bind((host, port))
    except OSError as exc:
        listening.close()
        if exc.errno in (98, 48, 10048):  # EADDRINUSE on Linux, macOS, Windows
            raise ConfigError(f"port {port} on {host} is already in use (another segue serve, or another program)",
                              f"give another port: segue serve --port {port + 1}") from exc
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror or exc})",
                          "check --host (an address of this computer) and --port") from exc
    listening.set_inheritable(True)
    return listening
