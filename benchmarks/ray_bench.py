"""`segue protect --engine ray` against the local engine, on the same photos.

Default: the 1,500 WebFace10 photos (train and test, 224 px JPEG in, PNG out) with the
shipped model, each engine in a fresh process into a fresh output folder:

* ``local``: `segue protect DIR --identity bench` (this machine's threads);
* ``ray``: the same with ``--engine ray --actors N`` (a local Ray started for the run).

Both outputs are compared file by file (they must be byte-identical). Printed: wall time
of the whole command (Ray's start included), photos a second, the per-photo overhead Ray
adds, and the ratio of Ray's throughput to the local engine's. Measured on a quiet
machine:

    python benchmarks/ray_bench.py --actors 2
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "WebFace10"


def run(args: list[str]) -> tuple[float, dict]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "segue_cli", *args, "--json"], capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"segue {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return seconds, json.loads(done.stdout.strip().splitlines()[-1])


def digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*.png"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="WebFace10 root (train/ and test/ are used)")
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--limit", type=int, default=None, help="first N photos only (a quick check)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="segue-ray-bench-"))
    try:
        photos = work / "photos"
        sources = sorted(p for split in ("train", "test") for p in (args.data / split).rglob("*.jpg"))[: args.limit]
        for source in sources:
            target = photos / source.parent.parent.name / source.parent.name / source.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        common = [str(photos), "--identity", "bench"]
        local_s, local = run(["protect", *common, "--out", str(work / "local")])
        ray_s, on_ray = run(["protect", *common, "--out", str(work / "ray"), "--engine", "ray",
                             "--actors", str(args.actors)])
        same = digest(work / "local") == digest(work / "ray")
        count = local["written"]
        result = {
            "photos": count, "cpus": os.cpu_count(), "actors": args.actors,
            "local_seconds": round(local_s, 1), "ray_seconds": round(ray_s, 1),
            "local_photos_per_s": round(count / local_s, 2), "ray_photos_per_s": round(on_ray["written"] / ray_s, 2),
            "ray_throughput_share": round(local_s / ray_s, 3),
            "ray_overhead_ms_per_photo": round(1000 * (ray_s - local_s) / count, 1),
            "byte_identical": same,
        }
        print(json.dumps(result, indent=2))
        if not same:
            raise SystemExit("outputs differ between the engines")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
