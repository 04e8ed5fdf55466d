"""The cloak's speed on one core (issue 40: at least 0.5 photos a second).

Runs `segue protect --cloak --workers 1` (one thread decodes, cloaks and encodes; the cloak
runs torch on one thread) on a folder of real face photos, once per cloak setting, and
prints photos per second from the run's own summary, with the machine's load beside it.
Each setting protects into a fresh temporary folder.

    python benchmarks/cloak_bench.py                       # 40 LFW48 photos; the figures in docs/benchmarks.md
    python benchmarks/cloak_bench.py --limit 8 --networks dlib
    python benchmarks/cloak_bench.py --networks dlib,faceplugin,mobilefacenet --jitter 0 --jitter 0.05
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "LFW48" / "train"
SEGUE = Path(sys.executable).with_name("segue")


def run(photos: Path, networks: str, steps: int, work: Path, jitter: float | None = None) -> dict[str, object]:
    out = work / f"out-{networks.replace(',', '+')}-{jitter}"
    command = [str(SEGUE), "protect", str(photos), "--out", str(out), "--identity", "benchmark", "--cloak",
               "--cloak-networks", networks, "--cloak-steps", str(steps), "--workers", "1", "--json", "--quiet"]
    command += [] if jitter is None else ["--cloak-jitter", str(jitter)]
    load = os.getloadavg()[0]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    seconds = time.perf_counter() - started
    summary = [json.loads(line) for line in result.stdout.splitlines() if '"summary"' in line][-1]
    return {"networks": networks, "steps": steps, "jitter": "default" if jitter is None else jitter, "photos": summary["written"], "cloaked": summary["cloaked"],
            "process_seconds": round(seconds, 1), "run_seconds": summary["seconds"],
            "photos_per_second": round(summary["written"] / summary["seconds"], 3), "load_before": round(load, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="a folder tree of face photos")
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--networks", action="append", default=None,
                        help="a --cloak-networks value, repeatable (default: all three, then dlib alone)")
    parser.add_argument("--jitter", type=float, action="append", default=None,
                        help="a --cloak-jitter value, repeatable (default: the cloak's default only)")
    args = parser.parse_args()
    paths = sorted(args.data.rglob("*.jpg"))[: args.limit]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        photos = work / "photos"
        photos.mkdir()
        for index, path in enumerate(paths):
            shutil.copy(path, photos / f"{index:03d}{path.suffix}")
        for networks in args.networks or ["dlib,faceplugin,mobilefacenet", "dlib"]:
            for jitter in args.jitter or [None]:
                print(json.dumps({"cpus": os.cpu_count(), **run(photos, networks, args.steps, work, jitter)}), flush=True)


if __name__ == "__main__":
    main()
