"""``segue serve``'s settings: one frozen dataclass, checked when made (imports nothing heavy)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..choices import SERVE_MAX_PIXELS, check_ranges
from ..errors import ConfigError

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class ServeConfig:
    host: str = "127.0.0.1"  # loopback only, unless asked
    port: int = 8000
    workers: int = 1  # processes, each with its own model
    threads: int = 0  # protections at once in each process; 0: one per core
    queue: int = 64  # requests that may wait for a thread before 503 (50 clients at once fit: benchmarks/serve_load.py)
    max_upload_mb: float = 50.0  # per request, all files together
    max_files: int = 32  # files in one request
    max_pixels: int = SERVE_MAX_PIXELS  # per photo, read from its header before decoding
    token: str | None = None  # every request needs it (Authorization: Bearer TOKEN)
    cors_origins: tuple[str, ...] = ()  # browsers on these origins may call the API; none: CORS off
    allowed_hosts: tuple[str, ...] = ()  # Host names answered besides loopback names, IPs and --host
    model: str | None = None
    backend: str = "auto"
    device: str = "auto"
    detector: str = "auto"
    head_timeout_s: float = 10.0  # a request's head must arrive within this
    body_timeout_s: float = 10.0  # the longest wait for the next piece of a body
    upload_timeout_s: float = 120.0  # the whole body must arrive within this
    time_budget_s: float = 120.0  # the protection of one request's photos, after its body is in
    connections_per_client: int = 64  # connections one client address may hold open at once

    def __post_init__(self) -> None:
        if self.token is not None and (len(self.token) < 16 or not self.token.isprintable() or " " in self.token
                                       or not self.token.isascii()):
            raise ConfigError("--token must be at least 16 printable ASCII characters without spaces",
                              "generate one: python -c 'import secrets; print(secrets.token_urlsafe(24))'")
        if any("://" not in origin for origin in self.cors_origins):
            raise ConfigError("--cors-origin takes an origin such as https://example.org", "give scheme and host")
        check_ranges(self, {"port": (1, 65535), "workers": (1, 64), "threads": (0, 256), "queue": (0, 100_000),
                            "max_upload_mb": (0.001, 10_000), "max_files": (1, 10_000), "max_pixels": (1, 10**10),
                            "head_timeout_s": (0.01, 3600), "body_timeout_s": (0.01, 3600),
                            "upload_timeout_s": (0.01, 86_400), "time_budget_s": (0.01, 86_400),
                            "connections_per_client": (1, 100_000)})

    @property
    def protections_at_once(self) -> int:
        return self.threads or (os.cpu_count() or 1)

    @property
    def waiting_at_most(self) -> int:
        return self.queue

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def receiving_bytes_at_most(self) -> int:
        """What bodies being received and served may hold together: as many full uploads as
        requests may be inside, so receiving is bounded on its own, apart from the slots."""
        return (self.protections_at_once + self.waiting_at_most) * self.max_upload_bytes

    @property
    def pixels_at_once(self) -> int:
        """The declared pixels of the requests inside together: one full-size photo per
        protection thread (a lone request larger than this is still let in, alone)."""
        return self.protections_at_once * self.max_pixels

    @property
    def exposed_without_token(self) -> bool:
        """Bound to an address other computers can reach, with no token: said as a warning."""
        return self.host not in LOCAL_HOSTS and self.token is None
