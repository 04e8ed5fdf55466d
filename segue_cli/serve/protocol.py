"""uvicorn's h11 protocol with what it lacks against slow or greedy clients: a deadline for
a request's head (a connection that sends nothing, or half a head, is answered 408 and
closed after ``head_timeout_s``; uvicorn only times out idle keep-alive connections), and
a cap on the connections one client address holds at once (the next is answered 503 and
closed). Body deadlines are the app's (``uploads.read_body``), which can answer them in
JSON. The settings are class attributes, set once per worker process by :func:`configure`
(uvicorn builds the protocol by name in each worker)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from .guards import SECURITY_HEADERS, error_body

log = logging.getLogger("segue.serve")


def _raw_answer(status: int, reason: str, message: str, hint: str) -> bytes:
    body = error_body(status, message, hint)
    head = [f"HTTP/1.1 {status} {reason}", "content-type: application/json", f"content-length: {len(body)}",
            "connection: close", *(f"{k}: {v}" for k, v in SECURITY_HEADERS.items())]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class GuardedH11Protocol(H11Protocol):
    head_timeout_s: float = 10.0
    connections_per_client: int = 64
    open_by_client: dict[str, int] = {}  # this worker process's connections, by client address

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.counted = self.client[0] if self.client else ""
        self.open_by_client[self.counted] = self.open_by_client.get(self.counted, 0) + 1
        if self.open_by_client[self.counted] > self.connections_per_client:
            log.warning("connection refused: one address over %d connections", self.connections_per_client)
            transport.write(_raw_answer(503, "Service Unavailable", "too many connections from one address",
                                        f"keep at most {self.connections_per_client} connections open at once"))
            transport.close()
            return
        self.head_timer: asyncio.TimerHandle | None = None
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        self.head_started = True
        super().data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        left = self.open_by_client.get(self.counted, 1) - 1
        if left > 0:
            self.open_by_client[self.counted] = left
        else:
            self.open_by_client.pop(self.counted, None)
        self._disarm_head_timer()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_head_timer()  # the next request's head has the same deadline

    def handle_events(self) -> None:
        super().handle_events()
        if self.conn.their_state is not h11.IDLE:  # a whole head arrived: the app's deadlines take over
            self._disarm_head_timer()

    def _arm_head_timer(self) -> None:
        self._disarm_head_timer()
        self.head_started = False
        self.head_timer = self.loop.call_later(self.head_timeout_s, self._head_too_slow)

    def _disarm_head_timer(self) -> None:
        timer = getattr(self, "head_timer", None)
        if timer is not None:
            timer.cancel()
            self.head_timer = None

    def _head_too_slow(self) -> None:
        self.head_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        log.info("connection closed: no request head within %g s", self.head_timeout_s)
        if self.head_started:  # half a head: say why; a connection that sent nothing is just closed
            self.transport.write(_raw_answer(408, "Request Timeout", "the request's head did not arrive in time",
                                             f"send the whole request head within {self.head_timeout_s:g} s"))
        self.transport.close()


def configure(config: Any) -> None:
    """The deadlines and the cap of this process's connections, from a ServeConfig."""
    GuardedH11Protocol.head_timeout_s = config.head_timeout_s
    GuardedH11Protocol.connections_per_client = config.connections_per_client
