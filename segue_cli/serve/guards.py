"""What every request to ``segue serve`` passes before the app sees it, as one ASGI
middleware (no per-request task, unlike Starlette's ``@app.middleware``):

* the Host allow-list: loopback names, IP literals, the ``--host`` value and ``--allow-host``
  names; any other name is 421, so a page served as ``rebind.example`` that resolves to
  127.0.0.1 (DNS rebinding) reads nothing;
* cross-site requests: with CORS off, a foreign ``Origin`` or ``Sec-Fetch-Site: cross-site``
  (other than a link the user follows to the page) is 403, before any work is done;
* a request with both Content-Length and Transfer-Encoding (request smuggling) is 400;
* the token (401), checked in constant time;
* security headers on every answer (CSP, nosniff, frame-ancestors, no referrer, no-store),
  and ``Connection: close`` on answers that may leave a body unread (every refusal here,
  408, 413);
* one log line a request: method, escaped path, status, size and time; no query string
  (it may hold a name or the token), no file name.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import time
from urllib.parse import parse_qsl, quote, urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .config import ServeConfig

log = logging.getLogger("segue.serve")

LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost")
CLOSING_STATUSES = (408, 413)  # answered before the body was read: the rest of it must not be taken as a request
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
    "cross-origin-resource-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
}
# The page's own script and style are allowed by their hashes (app.py adds them); nothing else runs or loads.
CSP = ("default-src 'none'; img-src 'self' blob: data:; connect-src 'self' blob:; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")


def error_body(status: int, message: str, hint: str | None) -> bytes:
    return json.dumps({"error": message, "hint": hint, "status": status}).encode()


def host_name(host: str) -> str:
    """The name of a Host header without its port (``[::1]:8000`` -> ``::1``)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class Guard:
    """The middleware; ``csp`` is the Content-Security-Policy of every answer."""

    def __init__(self, app: ASGIApp, config: ServeConfig, csp: str = CSP) -> None:
        self.app, self.config = app, config
        self.hosts = {*LOOPBACK_NAMES, config.host.lower().strip("[]"), *(h.lower() for h in config.allowed_hosts)}
        self.headers = [(name.encode(), value.encode()) for name, value in {**SECURITY_HEADERS,
                                                                               "content-security-policy": csp}.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status, size = 0, "-"

        async def send_guarded(message: Message) -> None:
            nonlocal status, size
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", []), *self.headers]
                if status in CLOSING_STATUSES or refused:
                    headers.append((b"connection", b"close"))
                size = next((v.decode() for k, v in headers if k.lower() == b"content-length"), "-")
                message = {**message, "headers": headers}
            await send(message)

        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        problem = self.refusal(scope, headers)
        refused = problem is not None  # answered without reading a body it may have: close after
        try:
            if problem is None:
                await self.app(scope, receive, send_guarded)
            else:
                await answer(send_guarded, *problem)
        finally:
            path = quote(scope.get("path", ""), safe="/-._~")[:200]  # escape bytes and text that looks like a record
            log.info("%s %s %d %s %.0f ms", scope.get("method", "-")[:10], path, status, size,
                     1000 * (time.perf_counter() - started))

    def refusal(self, scope: Scope, headers: dict[str, str]) -> tuple[int, str, str | None] | None:
        """(status, error, hint) of a request refused before the app, or None."""
        host = headers.get("host")
        if host is not None and not self.host_allowed(host_name(host)):
            return (421, "this server does not answer to that host name",
                    "open it as http://127.0.0.1:PORT/ (or give the name to segue serve --allow-host)")
        if "content-length" in headers and "transfer-encoding" in headers:
            return 400, "a request with both Content-Length and Transfer-Encoding", "send one of the two"
        if not self.same_origin(headers, scope.get("method", "GET")):
            return (403, "requests from other web sites are refused",
                    "call the API from the page itself, or start the server with --cors-origin ORIGIN")
        if self.config.token is not None and not authorised(scope, headers, self.config.token):
            return (401, "this server needs its token",
                    "send Authorization: Bearer TOKEN (the page: open it as /?token=TOKEN)")
        return None

    def host_allowed(self, name: str) -> bool:
        # An IP literal cannot be rebound; a name can, so only the names this server was given are taken.
        return name in self.hosts or is_ip(name) or name.endswith(".localhost")

    def same_origin(self, headers: dict[str, str], method: str) -> bool:
        origin = headers.get("origin")
        if origin is not None and origin != "null" and origin not in self.config.cors_origins:
            if urlsplit(origin).netloc.lower() != headers.get("host", "").lower():
                return False
        if origin == "null":  # a sandboxed frame or a file: page
            return False
        if headers.get("sec-fetch-site") == "cross-site" and not self.config.cors_origins:
            # A link the user follows to the page is allowed; a cross-site form post or fetch is not.
            return method in ("GET", "HEAD") and headers.get("sec-fetch-mode") == "navigate"
        return True


def authorised(scope: Scope, headers: dict[str, str], token: str) -> bool:
    given = headers.get("authorization", "")
    if given.lower().startswith("bearer "):
        return hmac.compare_digest(given[7:].strip().encode("latin-1"), token.encode())
    if scope.get("path") != "/":
        return False
    query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
    return hmac.compare_digest(query.get("token", "").encode("latin-1", "replace"), token.encode())


async def answer(send: Send, status: int, message: str, hint: str | None) -> None:
    body = error_body(status, message, hint)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
