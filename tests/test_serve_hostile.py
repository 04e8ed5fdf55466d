"""Hostile clients against `segue serve` (issue 44), like tests/test_hostile.py for the CLI.

In process (the app over a stub protector, fast): every request of the table is answered
with its 4xx (or 200) and the documented ``{"error", "hint", "status"}`` shape, never a 500,
and the answer carries the security headers. Then a real server process on loopback only,
with short client deadlines: stalled uploads hold no slot, slow heads and bodies get 408,
smuggling-shaped and refused requests close their connection, one address cannot hold
every connection. Every network step is bounded by a socket timeout."""

from __future__ import annotations

import asyncio
import io
import json
import socket
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from benchmarks.serve_load import wait_for_health

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from segue_cli.serve import options as serve_options  # noqa: E402
from segue_cli.serve.app import Gate, create_app  # noqa: E402
from segue_cli.serve.config import ServeConfig  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "segue_cli" / "data" / "example-astronaut.png"
LOCAL = "http://127.0.0.1:8000"
SHAPE = {"error", "hint", "status"}
SECURITY = ("content-security-policy", "x-content-type-options", "referrer-policy", "cache-control")


class StubProtector:
    """protect_file without a model: the server's own checks are what is under test."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds, self.calls = seconds, 0
        self.info = type("Info", (), {"code_bits": 16, "model_path": "stub.onnx", "model_sha256": "0" * 64,
                                      "file_sha256": "0" * 64, "name": "stub", "device": "cpu", "epsilon": 8 / 255,
                                      "image_size": 112})()

    def code_for(self, identity: str | None = None, label: int | None = None, code: int | None = None) -> int:
        return 1

    def protect_file(self, data: bytes, **options: Any) -> tuple[bytes, list[str]]:
        self.calls += 1
        time.sleep(self.seconds)
        return b"\x89PNG-protected-" + data[:8], []


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares width x height and holds almost nothing (a decompression bomb's head)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + \
        chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def avif_declaring(width: int, height: int) -> bytes:
    """A tiny AVIF (about 300 bytes) whose 'ispe' box declares width x height."""
    from PIL import features

    if not features.check("avif"):
        pytest.skip("this Pillow writes no AVIF")
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 64)).save(buffer, "AVIF")
    data = bytearray(buffer.getvalue())
    at = data.find(b"ispe") + 8
    data[at:at + 8] = struct.pack(">II", width, height)
    return bytes(data)


def multipart(parts: list[tuple[bytes, bytes]], boundary: bytes = b"XyZ", close: bool = True) -> tuple[bytes, str]:
    """A multipart body made by hand (raw Content-Disposition bytes), and its Content-Type."""
    body = b"".join(b"--" + boundary + b"\r\nContent-Disposition: form-data; " + disposition + b"\r\n\r\n" + value + b"\r\n"
                    for disposition, value in parts)
    return body + (b"--" + boundary + b"--\r\n" if close else b""), "multipart/form-data; boundary=" + boundary.decode()


def photo_part(name: bytes = b"me.png", data: bytes = b"\x89PNG fake") -> tuple[bytes, bytes]:
    return b'name="file"; filename="' + name + b'"', data


@dataclass(frozen=True)
class Case:
    name: str
    status: int
    says: str
    request: dict[str, Any] = field(compare=False)


def form(parts: list[tuple[bytes, bytes]], **kwargs: Any) -> dict[str, Any]:
    body, content_type = multipart(parts, **kwargs)
    return {"content": body, "headers": {"Content-Type": content_type}}


IDENTITY = (b'name="identity"', b"Ada")
CASES = [
    Case("a file named in Chinese (UTF-8 in Content-Disposition)", 200, "",
         form([photo_part("照片.jpg".encode()), IDENTITY])),
    Case("a file named in Greek, sent as Latin-1 bytes", 200, "", form([photo_part("φωτο.jpg".encode("utf-8")), IDENTITY])),
    Case("a file name of raw Latin-1 bytes", 200, "", form([photo_part("caf\xe9.jpg".encode("latin-1")), IDENTITY])),
    Case("label of 5000 digits", 400, "label must be a whole number 0..65535",
         form([photo_part(), (b'name="label"', b"9" * 5000)])),
    Case("code of 5000 digits", 400, "code must be a whole number", form([photo_part(), (b'name="code"', b"1" * 5000)])),
    Case("quality of 5000 digits", 400, "quality must be a whole number 1..100",
         form([photo_part(), IDENTITY, (b'name="format"', b"jpeg"), (b'name="quality"', b"5" * 5000)])),
    Case("code=4294967296 names code", 400, "code must be a whole number 0..65535",
         form([photo_part(), (b'name="code"', b"4294967296")])),
    Case("quality=-1 gives quality's range", 400, "quality must be a whole number 1..100",
         form([photo_part(), IDENTITY, (b'name="format"', b"jpeg"), (b'name="quality"', b"-1")])),
    Case("a boundary of 300 characters", 400, "malformed multipart body",
         form([photo_part(), IDENTITY], boundary=b"b" * 300)),
    Case("no closing boundary (the last part would be dropped)", 400, "ends before its closing boundary",
         form([photo_part(), IDENTITY], close=False)),
    Case("an identity that is not UTF-8 (form)", 400, "not valid UTF-8", form([photo_part(), (b'name="identity"', b"A\xff")])),
    Case("an identity that is not UTF-8 (query)", 400, "not valid UTF-8",
         {"url": "/v1/protect?identity=A%FF", "content": b"\x89PNG", "headers": {"Content-Type": "image/png"}}),
    Case("33 files", 413, "more than 32 files", form([photo_part()] * 33 + [IDENTITY])),
    Case("50 unknown options are not all echoed", 400, "and 47 more",
         form([photo_part(), IDENTITY] + [(f'name="opt{i}"'.encode(), b"1") for i in range(50)])),
    Case("no identity: plain words", 400, "give exactly one of identity, label or code", form([photo_part()])),
    Case("no boundary", 400, "names no boundary",
         {"content": b"x", "headers": {"Content-Type": "multipart/form-data"}}),
    Case("JSON body", 415, "multipart/form-data", {"content": b"{}", "headers": {"Content-Type": "application/json"}}),
    Case("a foreign Host (DNS rebinding)", 421, "host name", {**form([photo_part(), IDENTITY]),
                                                               "extra": {"Host": "rebind.example"}}),
    Case("a foreign Host with a port", 421, "host name", {"method": "GET", "url": "/v1/info",
                                                           "extra": {"Host": "rebind.example:8000"}}),
    Case("a foreign Origin, CORS off", 403, "other web sites", {**form([photo_part(), IDENTITY]),
                                                                 "extra": {"Origin": "https://evil.example"}}),
    Case("Sec-Fetch-Site: cross-site form post", 403, "other web sites",
         {**form([photo_part(), IDENTITY]), "extra": {"Sec-Fetch-Site": "cross-site"}}),
    Case("Origin null (sandboxed frame)", 403, "other web sites", {"method": "GET", "url": "/v1/info",
                                                                    "extra": {"Origin": "null"}}),
    Case("an unknown path", 404, "no such page", {"method": "GET", "url": "/etc/passwd"}),
    Case("a wrong method", 405, "not allowed", {"method": "DELETE", "url": "/v1/protect"}),
    Case("a PNG declaring 12000 x 10000 (over the server's 40 MP)", 422, "exceeds the limit of 40,000,000",
         form([photo_part(b"b.png", png_header(12_000, 10_000)), IDENTITY])),
]


@pytest.fixture(scope="module")
def stub_client():
    with TestClient(create_app(ServeConfig(threads=2), protector=StubProtector()), base_url=LOCAL) as client:
        yield client


def send(client: TestClient, request: dict[str, Any]) -> Any:
    headers = {**request.get("headers", {}), **request.get("extra", {})}
    return client.request(request.get("method", "POST"), request.get("url", "/v1/protect"),
                          content=request.get("content"), headers=headers)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_each_hostile_request_gets_its_status_and_the_error_shape(stub_client, case):
    response = send(stub_client, case.request)
    assert response.status_code == case.status, response.text
    for header in SECURITY:
        assert header in response.headers
    if case.status == 200:
        return
    body = response.json()
    assert set(body) == SHAPE and body["status"] == case.status and case.says in body["error"], body
    assert len(body["error"]) < 300 and "Traceback" not in response.text


def test_any_file_name_comes_back_in_rfc_6266_filename_star(stub_client):
    response = send(stub_client, form([photo_part("照片.jpg".encode()), IDENTITY]))
    disposition = response.headers["content-disposition"]
    assert "filename*=UTF-8''%E7%85%A7%E7%89%87-protected.png" in disposition
    assert 'filename="__-protected.png"' in disposition  # the ASCII fallback


def test_zip_entries_never_collide(stub_client):
    names = [b"a.jpg", b"a-3.jpg", b"a.jpg", b"a.jpg"]
    response = send(stub_client, form([photo_part(name) for name in names] + [IDENTITY]))
    entries = zipfile.ZipFile(io.BytesIO(response.content)).namelist()
    assert len(set(entries)) == 4, entries


def test_missing_identity_and_no_cloak_speak_plain_words(monkeypatch):
    monkeypatch.setattr(serve_options, "cloak_available", lambda: False)
    from segue_cli.serve import app as serve_app

    monkeypatch.setattr(serve_app, "cloak_available", lambda: False)
    with TestClient(create_app(ServeConfig(threads=1), protector=StubProtector()), base_url=LOCAL) as client:
        body = send(client, form([photo_part()])).json()
        assert "protect(" not in body["hint"] and "=" not in body["hint"]
        cloaked = send(client, form([photo_part(), IDENTITY, (b'name="cloak"', b"true")]))
        assert cloaked.status_code == 400 and "cannot cloak" in cloaked.json()["error"]
        assert "pip" not in cloaked.text
        assert client.get("/v1/info").json()["cloak"] is False  # the page hides its cloak box then


def test_a_cross_site_link_to_the_page_is_followed(stub_client):
    headers = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}
    assert stub_client.get("/", headers=headers).status_code == 200
    assert stub_client.get("/", headers={"Host": "localhost:8000"}).status_code == 200
    assert stub_client.get("/", headers={"Host": "[::1]:8000"}).status_code == 200
    assert stub_client.get("/", headers={"Host": "192.168.1.20:8000"}).status_code == 200  # an IP cannot be rebound


def test_headers_docs_offline_and_the_page_drops_its_token(stub_client):
    import re

    page = stub_client.get("/")
    policy = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy and "default-src 'none'" in policy and "unsafe-inline" not in policy
    assert page.headers["x-content-type-options"] == "nosniff" and page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["cache-control"] == "no-store"
    assert "history.replaceState" in page.text and 'id="cloak-row"' in page.text
    docs = stub_client.get("/docs")
    assert docs.status_code == 200 and "POST /v1/protect" in docs.text and "strength" in docs.text
    assert re.search(r"(https?:)?//[\w.-]+\.[a-z]{2,}", docs.text) is None  # nothing from elsewhere: works offline
    assert "<script" not in docs.text and stub_client.get("/redoc").status_code == 404
    favicon = stub_client.get("/favicon.ico")
    assert favicon.status_code == 200 and favicon.headers["content-type"] == "image/gif"


def test_openapi_describes_every_field_limit_and_error(stub_client):
    operation = stub_client.get("/openapi.json").json()["paths"]["/v1/protect"]["post"]
    multipart_fields = operation["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]
    assert set(multipart_fields) == {"file", "files", "identity", "label", "code", "faces", "cloak", "format",
                                     "strength", "quality"}
    assert "image/*" in operation["requestBody"]["content"]
    for status in ("400", "401", "413", "415", "421", "422", "503"):
        schema = operation["responses"][status]["content"]["application/json"]["schema"]
        assert schema["required"] == ["error", "hint", "status"]
    assert "50 MB" in operation["description"] and "40,000,000 pixels" in operation["description"]


def test_a_tiny_avif_declaring_9000_squared_is_refused_from_its_header():
    stub = StubProtector()
    with TestClient(create_app(ServeConfig(threads=1), protector=stub), base_url=LOCAL) as client:
        data = avif_declaring(9000, 9000)
        assert len(data) < 1000
        started = time.perf_counter()
        response = send(client, form([photo_part(b"x.avif", data), IDENTITY]))
        assert response.status_code == 422 and "9000x9000" in response.json()["error"]
        assert time.perf_counter() - started < 1 and stub.calls == 0  # no decode, no slot


def test_admission_is_weighted_by_declared_pixels():
    gate = Gate(running=2, waiting=32, pixels=80_000_000)
    assert gate.admit(39_000_000) and gate.admit(39_000_000) and not gate.admit(39_000_000)
    assert gate.admit(1_000_000)  # a small one still fits
    gate.leave(39_000_000)
    assert gate.admit(30_000_000)
    lone = Gate(running=1, waiting=0, pixels=10)
    assert lone.admit(1_000)  # alone, a request within the per-photo limit always gets in


def test_the_time_budget_answers_and_keeps_the_slot_until_the_work_ends():
    stub = StubProtector(seconds=1.0)
    app = create_app(ServeConfig(threads=1, queue=0, time_budget_s=0.2), protector=stub)

    async def run() -> None:
        import httpx

        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=LOCAL) as http:
            body, content_type = multipart([photo_part(), IDENTITY])
            started = time.perf_counter()
            first = await http.post("/v1/protect", content=body, headers={"Content-Type": content_type})
            assert first.status_code == 413 and "time budget of 0.2 s" in first.json()["error"]
            assert time.perf_counter() - started < 0.9
            busy = await http.post("/v1/protect", content=body, headers={"Content-Type": content_type})
            assert busy.status_code == 503  # the photo's thread still runs: its slot is still taken
            await asyncio.sleep(1.0)
            stub.seconds = 0.0
            again = await http.post("/v1/protect", content=body, headers={"Content-Type": content_type})
            assert again.status_code == 200

    asyncio.run(run())


def test_a_stalled_body_is_408_and_holds_no_slot_in_process():
    app = create_app(ServeConfig(threads=1, queue=0, body_timeout_s=0.3), protector=StubProtector())

    async def run() -> None:
        import httpx

        async def stalled():
            yield b"--XyZ\r\n"
            await asyncio.sleep(5)
            yield b""

        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=LOCAL, timeout=10) as http:
            slow = asyncio.create_task(http.post("/v1/protect", content=stalled(),
                                                 headers={"Content-Type": "multipart/form-data; boundary=XyZ"}))
            await asyncio.sleep(0.1)
            body, content_type = multipart([photo_part(), IDENTITY])
            normal = await http.post("/v1/protect", content=body, headers={"Content-Type": content_type})
            assert normal.status_code == 200  # one slot, no queue: the stalled upload does not hold it
            answer = await slow
            assert answer.status_code == 408 and set(answer.json()) == SHAPE
            assert answer.headers["connection"] == "close"

    asyncio.run(run())


def test_bytes_being_received_are_bounded_on_their_own():
    from segue_cli.serve.uploads import Busy, ByteBudget

    budget = ByteBudget(100)
    budget.take(60)
    with pytest.raises(Busy):
        budget.take(50)
    budget.give(60)
    budget.take(100)
    config = ServeConfig(threads=2, queue=3, max_upload_mb=1)
    assert config.receiving_bytes_at_most == 5 * 1024 * 1024
    # Through the app: a stalled upload holds what it sent; the next body that would pass the bound is 503, closed.
    app = create_app(ServeConfig(threads=1, queue=0, max_upload_mb=0.001, body_timeout_s=2), protector=StubProtector())

    async def run() -> None:
        import httpx

        async def stalled():
            yield b"\0" * 700
            await asyncio.sleep(3)

        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=LOCAL, timeout=10) as http:
            slow = asyncio.create_task(http.post("/v1/protect?identity=A", content=stalled(),
                                                 headers={"Content-Type": "image/png"}))
            await asyncio.sleep(0.1)
            other = await http.post("/v1/protect?identity=A", content=b"\0" * 700, headers={"Content-Type": "image/png"})
            assert other.status_code == 503 and other.headers["connection"] == "close"
            assert (await slow).status_code == 408

    asyncio.run(run())


# --- a real server on loopback ----------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def connect(port: int, timeout: float = 10.0) -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return connection


def read_all(connection: socket.socket) -> bytes:
    """Everything until the server closes the connection (or the socket's timeout)."""
    data = b""
    try:
        while chunk := connection.recv(65536):
            data += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    return data


@pytest.fixture(scope="module")
def server():

    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "segue_cli", "serve", "--port", str(port), "--threads", "2",
                                "--client-timeout", "1", "--connections-per-client", "40", "--json"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    if not wait_for_health(url, 300):
        process.kill()
        pytest.fail("segue serve did not start")
    yield url, port, process
    process.terminate()
    process.wait(10)


HEAD = b"POST /v1/protect?identity=A HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"


def test_the_json_banner_names_the_real_address(server):
    url, port, process = server
    assert process.stdout is not None
    line = json.loads(process.stdout.readline())
    assert line == {"event": "listening", "url": f"http://127.0.0.1:{port}/", "api": f"http://127.0.0.1:{port}/v1/protect",
                    "docs": f"http://127.0.0.1:{port}/docs"}


def test_34_stalled_uploads_leave_a_normal_request_served_within_2_s(server):
    import httpx

    url, port, _ = server
    photo = EXAMPLE.read_bytes()
    stalled = []
    try:
        for _ in range(34):  # every slot and queue place of the old server (2 threads + 32)
            connection = connect(port)
            connection.sendall(HEAD + b"Content-Length: 100000\r\n\r\n" + photo[:1000])
            stalled.append(connection)
        time.sleep(0.3)
        started = time.perf_counter()
        response = httpx.post(url + "/v1/protect", files={"file": ("me.png", photo, "image/png")},
                              data={"identity": "A"}, timeout=10)
        assert response.status_code == 200 and time.perf_counter() - started < 2
        answer = read_all(stalled[0])  # and the stalled ones are timed out, their connections closed
        assert b" 408 " in answer.split(b"\r\n")[0] and b"connection: close" in answer.lower()
    finally:
        for connection in stalled:
            connection.close()


@pytest.mark.parametrize(("sent", "status"), [
    (b"POST /v1/protect HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty", b" 408 "),  # half a head, then nothing
    (HEAD + b"Content-Length: 5000\r\n\r\n" + b"\x89PNG", b" 408 "),  # a Content-Length larger than the body
    (HEAD + b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", b" 400 "),  # smuggling-shaped
    (HEAD + b"Content-Length: 2147483648\r\n\r\n", b" 413 "),  # refused at once, and closed
    (HEAD.replace(b"127.0.0.1", b"rebind.example") + b"Content-Length: 5000\r\n\r\n\x89PNG", b" 421 "),  # body unread
])
def test_slow_or_smuggling_requests_are_answered_and_closed(server, sent, status):
    _, port, _ = server
    connection = connect(port, timeout=5)
    try:
        started = time.perf_counter()
        connection.sendall(sent)
        answer = read_all(connection)  # returns when the server closes the connection
        assert status in answer.split(b"\r\n")[0], answer[:200]
        assert time.perf_counter() - started < 4
        assert answer.endswith(b"}") and json.loads(answer.split(b"\r\n\r\n", 1)[1])["status"] == int(status)
    finally:
        connection.close()


def test_an_idle_connection_is_closed(server):
    _, port, _ = server
    connection = connect(port, timeout=5)
    try:
        started = time.perf_counter()
        assert read_all(connection) == b"" and time.perf_counter() - started < 4
    finally:
        connection.close()


def test_one_address_cannot_hold_every_connection(server):
    import httpx

    url, port, _ = server
    held = [connect(port) for _ in range(40)]
    try:
        time.sleep(0.2)
        extra = connect(port, timeout=5)
        answer = read_all(extra)
        extra.close()
        assert b" 503 " in answer.split(b"\r\n")[0] and b"too many connections" in answer
    finally:
        for connection in held:
            connection.close()
    time.sleep(0.3)
    assert httpx.get(url + "/healthz", timeout=5).status_code == 200  # given back when they close


def test_a_busy_port_is_a_clear_error_with_exit_2(server):
    _, port, _ = server
    done = subprocess.run([sys.executable, "-m", "segue_cli", "serve", "--port", str(port), "--json"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "Errno" not in done.stderr and "Traceback" not in done.stderr
    assert f"port {port}" in done.stderr and "--port" in done.stderr
    line = json.loads(done.stdout)
    assert line["type"] == "error" and f"port {port}" in line["error"] and line["exit_code"] == 2
    assert "segue serve: the page" not in done.stderr  # no address printed for a server that never listened


def test_logged_paths_are_escaped_and_carry_no_query(stub_client, caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="segue.serve"):
        stub_client.get("/x%0A2026-01-01%20segue.serve%20GET%20/%20200%1B[31m?identity=Ada")
    lines = [record.getMessage() for record in caplog.records if record.name == "segue.serve"]
    assert lines and all("\n" not in line and "\x1b" not in line and "Ada" not in line for line in lines)
    assert "/x%0A2026-01-01%20segue.serve" in lines[-1]


def test_a_start_up_error_is_json_and_exit_2_not_a_traceback():
    port = free_port()
    done = subprocess.run([sys.executable, "-m", "segue_cli", "serve", "--port", str(port), "--model", "no-such-model",
                           "--json"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    line = json.loads(done.stdout)
    assert line["type"] == "error" and "no-such-model" in line["error"] and line["hint"]
