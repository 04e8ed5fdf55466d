"""Memory of `segue serve` after a burst of large photos (issue 44): COUNT photos of
SIZE x SIZE pixels (within the server's 40 MP limit) sent at once by as many clients, each
retrying after a 503; the server's resident memory before, at its peak, and a few seconds
after the burst, with the heap handed back to the system after large requests
(malloc_trim, the default) and without it.

  python benchmarks/serve_memory.py                 # 4 photos of 6000 x 6000
  python benchmarks/serve_memory.py --count 2 --size 4000
"""

from __future__ import annotations

import argparse
import asyncio
import io
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.serve_load import free_port, wait_for_health  # noqa: E402

SERVER = """
import sys
import segue_cli.serve.app as app
if sys.argv[1] == "off":
    app.TRIM_AFTER_PIXELS = 10**15
from segue_cli.cli.app import app as cli
sys.argv = ["segue", "serve", "--port", sys.argv[2], "--threads", "2"]
cli()
"""


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def photo(size: int, seed: int) -> bytes:
    import numpy as np
    from PIL import Image

    small = np.random.default_rng(seed).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(small).resize((size, size), Image.Resampling.BILINEAR).save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


async def burst(url: str, photos: list[bytes]) -> list[int]:
    import httpx

    async def one(http: httpx.AsyncClient, index: int, data: bytes) -> int:
        while True:
            response = await http.post(url + "/v1/protect", files={"file": (f"{index}.png", data, "image/png")},
                                       data={"identity": "x"})
            if response.status_code != 503:
                return response.status_code
            await asyncio.sleep(float(response.headers.get("retry-after", "1")))

    async with httpx.AsyncClient(timeout=600) as http:
        return list(await asyncio.gather(*(one(http, i, data) for i, data in enumerate(photos))))


def measure(trim: str, photos: list[bytes], settle_s: float) -> dict[str, object]:

    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, trim, str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(url)
        asyncio.run(burst(url, [photo(320, 9)]))  # warm: the model and its first run
        before = rss_mib(server.pid)
        started = time.perf_counter()
        statuses = asyncio.run(burst(url, photos))
        seconds = time.perf_counter() - started
        time.sleep(settle_s)
        return {"trim": trim, "statuses": statuses, "seconds": seconds, "before": before,
                "peak": rss_mib(server.pid, "VmHWM"), "after": rss_mib(server.pid)}
    finally:
        server.terminate()
        server.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=4)
    parser.add_argument("--size", type=int, default=6000)
    parser.add_argument("--settle", type=float, default=3.0, help="seconds after the burst before reading RSS")
    args = parser.parse_args()
    photos = [photo(args.size, seed) for seed in range(args.count)]
    print(f"{args.count} photos of {args.size} x {args.size} ({sum(map(len, photos)) / 1e6:.1f} MB of PNG), "
          f"segue serve --threads 2\n")
    print("| malloc_trim after large requests | answered | burst | RSS before | peak RSS | RSS after |\n|---|---|---:|---:|---:|---:|")
    for trim in ("on", "off"):
        row = measure(trim, photos, args.settle)
        print(f"| {trim} | {row['statuses']} | {row['seconds']:.1f} s | {row['before']:.0f} MiB | "
              f"{row['peak']:.0f} MiB | {row['after']:.0f} MiB |", flush=True)


if __name__ == "__main__":
    main()
