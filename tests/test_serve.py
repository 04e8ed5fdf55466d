"""`segue serve` (issue 33): the API through an HTTP client (every status code, the same
bytes as `segue protect`, the token), a real server process against hostile clients, and
the page in a real headless browser (Debian's chromium, driven by selenium)."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import shutil
import socket
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest

from benchmarks.serve_load import wait_for_health

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from segue_cli.serve.app import create_app  # noqa: E402
from segue_cli.serve.config import ServeConfig  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "segue_cli" / "data" / "example-astronaut.png"
TOKEN = "t0ken-for-the-tests-only"
LOCAL = "http://127.0.0.1:8000"  # the server answers its own host names only (DNS rebinding)


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app(ServeConfig(threads=2)), base_url=LOCAL) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def photo() -> bytes:
    return EXAMPLE.read_bytes()


def cli_bytes(tmp_path: Path, data: bytes, *options: str) -> bytes:
    """What `segue protect` writes for this photo (a folder run, default options)."""
    folder = tmp_path / "in"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "me.png").write_bytes(data)
    done = subprocess.run([sys.executable, "-m", "segue_cli", "protect", str(folder), "--out", str(tmp_path / "out"),
                           "--quiet", *options], capture_output=True)
    assert done.returncode == 0, done.stderr
    return (tmp_path / "out" / "me.png").read_bytes()


def test_one_photo_comes_back_as_the_png_segue_protect_writes(client, photo, tmp_path):
    response = client.post("/v1/protect", files={"file": ("me.png", photo, "image/png")}, data={"identity": "Ada"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert 'filename="me-protected.png"' in response.headers["content-disposition"]
    assert response.content == cli_bytes(tmp_path, photo, "--identity", "Ada")
    raw = client.post("/v1/protect?identity=Ada", content=photo, headers={"Content-Type": "image/png"})
    assert raw.status_code == 200 and raw.content == response.content
    other = client.post("/v1/protect", files={"file": ("me.png", photo, "image/png")}, data={"identity": "Bo"})
    assert other.content != response.content  # the name decides the perturbation
    faces = client.post("/v1/protect", files={"file": ("me.png", photo, "image/png")}, data={"identity": "Ada", "faces": "off"})
    assert faces.content == cli_bytes(tmp_path / "off", photo, "--identity", "Ada", "--no-faces")


def test_several_photos_come_back_as_a_zip_of_the_same_bytes(client, photo):
    one = client.post("/v1/protect", files={"file": ("me.png", photo, "image/png")}, data={"label": "3"}).content
    response = client.post("/v1/protect", files=[("files", ("me.png", photo, "image/png")),
                                                 ("files", ("me.png", photo, "image/png"))], data={"label": "3"})
    assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert archive.namelist() == ["me.png", "me-2.png"]
    assert archive.read("me.png") == one == archive.read("me-2.png")


@pytest.mark.parametrize(("fields", "says"), [
    ({}, "give exactly one of identity, label or code"),
    ({"identity": "A", "label": "2"}, "give exactly one of identity, label or code"),
    ({"label": "1.5"}, "label must be a whole number"),
    ({"code": "-4"}, "code must be a whole number"),
    ({"label": "99999999"}, "label must be a whole number 0..65535"),
    ({"identity": "A", "faces": "maybe"}, "unknown faces mode"),
    ({"identity": "A", "format": "gif"}, "unknown format"),
    ({"identity": "A", "quality": "50"}, "quality applies to jpeg and webp only"),
    ({"identity": "A", "cloak": "perhaps"}, "cloak must be true or false"),
    ({"identity": "A", "colour": "red"}, "unknown option(s) 'colour'"),
])
def test_bad_options_are_400_with_the_clis_words(client, photo, fields, says):
    response = client.post("/v1/protect", files={"file": ("me.png", photo, "image/png")}, data=fields)
    assert response.status_code == 400
    body = response.json()
    assert says in body["error"] and body["status"] == 400 and "hint" in body


def test_not_an_image_too_small_or_a_bomb_is_422_and_a_wrong_body_415(client):
    import numpy as np
    from PIL import Image

    tiny, bomb = io.BytesIO(), io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tiny, "PNG")
    Image.new("L", (12_000, 10_000)).save(bomb, "PNG")  # 120 M pixels, a few hundred kB of zeros
    for name, data, says in (("x.png", b"not an image", "not a readable image"), ("t.png", tiny.getvalue(), "too small"),
                             ("b.png", bomb.getvalue(), "exceeds the limit")):
        response = client.post("/v1/protect", files={"file": (name, data, "image/png")}, data={"identity": "A"})
        assert response.status_code == 422 and says in response.json()["error"] and name in response.json()["error"]
    response = client.post("/v1/protect", content=b"{}", headers={"Content-Type": "application/json"})
    assert response.status_code == 415 and "multipart/form-data" in response.json()["hint"]
    assert client.post("/v1/protect", data={"identity": "A"}).status_code == 400  # a form without a photo


def test_too_large_is_413_before_the_body_is_read(photo):
    with TestClient(create_app(ServeConfig(max_upload_mb=0.01)), base_url=LOCAL) as small:
        response = small.post("/v1/protect", files={"file": ("me.png", photo, "image/png")}, data={"identity": "A"})
        assert response.status_code == 413 and "upload limit of 0.01 MB" in response.json()["error"]
        claimed = small.post("/v1/protect?identity=A", content=b"x", headers={"Content-Type": "image/png",
                                                                             "Content-Length": str(2 * 1024**3)})
        assert claimed.status_code == 413


def test_a_full_queue_is_503_with_retry_after(photo):
    """One thread, one waiting place: a third request at once is turned away, not queued."""
    release = threading.Event()

    class SlowProtector:
        def code_for(self, identity=None, label=None, code=None):
            return 1

        def protect_file(self, data, **options):
            release.wait(10)
            return b"png", []

    app = create_app(ServeConfig(threads=1, queue=1), protector=SlowProtector())

    async def three() -> list[int]:
        import httpx

        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=LOCAL) as http:
            sent = [asyncio.create_task(http.post("/v1/protect?identity=A", content=photo,
                                                  headers={"Content-Type": "image/png"})) for _ in range(3)]
            await asyncio.sleep(0.5)
            release.set()
            responses = await asyncio.gather(*sent)
        assert sorted(r.status_code for r in responses) == [200, 200, 503]
        busy = next(r for r in responses if r.status_code == 503)
        assert busy.headers["retry-after"] == "1" and "busy" in busy.json()["error"]
        return [r.status_code for r in responses]

    asyncio.run(three())


def test_the_token_is_asked_of_every_request(photo):
    with TestClient(create_app(ServeConfig(token=TOKEN)), base_url=LOCAL) as guarded:
        for path in ("/", "/healthz", "/v1/info", "/docs"):
            assert guarded.get(path).status_code == 401, path
        assert guarded.get("/healthz", headers={"Authorization": "Bearer wrong-token-wrong-token"}).status_code == 401
        assert guarded.get("/healthz", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        page = guarded.get(f"/?token={TOKEN}")  # the page, opened from a link: one request brings all of it
        assert page.status_code == 200 and "fetch(\"/v1/protect\"" in page.text
        assert guarded.get(f"/v1/info?token={TOKEN}").status_code == 401  # the API takes the header only
        response = guarded.post("/v1/protect", files={"file": ("me.png", photo, "image/png")}, data={"identity": "A"},
                                headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.status_code == 200


def test_info_health_docs_and_the_page(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    info = client.get("/v1/info").json()
    assert info["model"] == "segue-webface10-112.onnx" and len(info["model_sha256"]) == 64
    assert info["epsilon"] == pytest.approx(8 / 255) and info["limits"]["max_upload_mb"] == 50
    assert "/v1/protect" in client.get("/openapi.json").json()["paths"]
    page = client.get("/")
    assert page.status_code == 200 and "const token = new URLSearchParams" in page.text  # its JS, inlined
    assert "src=" not in page.text and "href=" not in page.text  # nothing else to fetch
    assert "does not stop existing face-recognition networks" in " ".join(page.text.split())
    import re

    assert re.search(r"(https?:)?//[\w.-]+\.[a-z]{2,}", page.text) is None  # works offline: nothing from elsewhere
    response = client.options("/v1/protect", headers={"Origin": "https://elsewhere.example", "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in response.headers  # CORS off unless asked


def test_options_are_checked_and_exposure_without_a_token_is_flagged():
    from segue_cli.errors import ConfigError

    assert ServeConfig(host="0.0.0.0").exposed_without_token
    assert not ServeConfig(host="0.0.0.0", token=TOKEN).exposed_without_token and not ServeConfig().exposed_without_token
    for bad in ({"port": 0}, {"workers": 1000}, {"max_upload_mb": float("inf")}, {"token": "short"},
                {"cors_origins": ("example.org",)}, {"threads": -1}):
        with pytest.raises(ConfigError):
            ServeConfig(**bad)


# --- a real server process -----------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "segue_cli", "serve", "--port", str(port), "--threads", "2",
                                "--max-upload-mb", "5"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    if not wait_for_health(url, 300):
        process.kill()
        pytest.fail(f"segue serve did not start: {process.stdout.read() if process.stdout else ''}")
    yield url, port, process
    process.terminate()
    process.wait(10)


def test_the_banner_names_the_address_it_binds(server):
    """Issue 43: it said localhost while binding 127.0.0.1."""
    url, port, process = server
    assert process.stdout is not None
    banner = process.stdout.readline()
    assert f"the page at http://127.0.0.1:{port}/ " in banner and "localhost" not in banner


@pytest.mark.slow
def test_a_huge_or_abandoned_upload_does_not_hurt_the_others(server, photo):
    import httpx

    url, port, process = server
    huge = socket.create_connection(("127.0.0.1", port))
    huge.sendall(b"POST /v1/protect?identity=A HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
                 b"Content-Length: 2147483648\r\n\r\n" + b"\0" * 65536)
    abandoned = socket.create_connection(("127.0.0.1", port))
    abandoned.sendall(b"POST /v1/protect?identity=A HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
                      b"Content-Length: 100000\r\n\r\n" + photo[:5000])
    abandoned.close()  # gone mid-upload
    answer = huge.recv(4096)
    assert b" 413 " in answer.split(b"\r\n")[0]  # refused at once by its declared size
    huge.close()
    response = httpx.post(url + "/v1/protect", files={"file": ("me.png", photo, "image/png")}, data={"identity": "A"},
                          timeout=60)
    assert response.status_code == 200 and response.content.startswith(b"\x89PNG")
    assert process.poll() is None


@pytest.mark.slow
def test_the_page_protects_a_photo_in_a_real_browser(server, photo, tmp_path):
    """Debian's chromium, headless, driven by selenium: pick the photo, type the name, press
    Protect, read the protected image back from the page; it is the CLI's bytes. With
    SEGUE_SCREENSHOT=PATH the page is saved there (the README's picture)."""
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver_path):
        pytest.skip("Debian's chromium and chromium-driver are not installed (CI installs them: .ci/run)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, _, _ = server
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1100,1000"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        browser.get(url + "/")
        (tmp_path / "me.png").write_bytes(photo)
        browser.find_element(By.ID, "files").send_keys(str(tmp_path / "me.png"))
        browser.find_element(By.ID, "identity").send_keys("Ada")
        browser.find_element(By.ID, "protect").click()
        WebDriverWait(browser, 120).until(lambda b: b.find_elements(By.CSS_SELECTOR, "img.protected"))
        WebDriverWait(browser, 30).until(lambda b: "Done" in b.find_element(By.ID, "status").text)
        encoded = browser.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "fetch(document.querySelector('img.protected').src).then(r => r.arrayBuffer()).then(b => {"
            "  let s = ''; new Uint8Array(b).forEach(c => s += String.fromCharCode(c)); done(btoa(s)); });")
        assert base64.b64decode(encoded) == cli_bytes(tmp_path, photo, "--identity", "Ada")
        browser.find_element(By.ID, "show-residual").click()
        assert browser.find_element(By.CSS_SELECTOR, "canvas.residual").is_displayed()
        assert not browser.find_element(By.ID, "download-all").get_attribute("disabled")
        # Keyboard: the form's controls are reachable with Tab in a sensible order.
        assert browser.find_element(By.ID, "drop").get_attribute("tabindex") == "0"
        if os.environ.get("SEGUE_SCREENSHOT"):
            browser.save_screenshot(os.environ["SEGUE_SCREENSHOT"])
        # The page runs under its Content-Security-Policy with nothing refused (issue 44) ...
        refused = [entry["message"] for entry in browser.get_log("browser") if "Content Security Policy" in entry["message"]]
        assert not refused, refused
        # ... and takes ?token= out of the address bar once read (no history, no Referer).
        browser.get(url + "/?token=a-token-from-a-link-1234")
        WebDriverWait(browser, 10).until(lambda b: "token" not in b.current_url)
        assert browser.current_url == url + "/"
    finally:
        browser.quit()


def test_serve_is_listed_and_explains_its_options():
    from typer.testing import CliRunner

    from segue_cli.cli.app import app

    result = CliRunner().invoke(app, ["serve", "--help"])
    assert result.exit_code == 0 and "--max-upload-mb" in result.output and "--token" in result.output
    result = CliRunner().invoke(app, ["serve", "--port", "0"])
    assert result.exit_code == 2 and "--port" in result.output
