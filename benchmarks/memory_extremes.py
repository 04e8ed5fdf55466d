"""Peak memory of `segue protect` on the largest images its pixel limit lets through:
a 10,000 x 10,000 photo and 16 x 6,000,000 / 6,000,000 x 16 strips (issue 19: the strips
once passed 9 GB because the generator saw them at full size). Each case runs in a fresh
process; the target is a peak RSS under 3 GB for any image within --max-pixels.

  python benchmarks/memory_extremes.py            # writes the table for docs/benchmarks.md
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

CASES = {"10000 x 10000 photo": (10_000, 10_000), "16 x 6,000,000 strip": (16, 6_000_000),
         "6,000,000 x 16 strip": (6_000_000, 16), "16 x 1,000,000 strip": (16, 1_000_000)}


def make(path: Path, height: int, width: int) -> None:
    rng = np.random.default_rng(0)
    if height * width > 50_000_000 and min(height, width) < 100:
        Image.fromarray(np.full((height, width, 3), 120, np.uint8)).save(path)
    else:
        small = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
        Image.fromarray(small).resize((width, height), Image.Resampling.BILINEAR).save(path, compress_level=1)


def main() -> None:
    print("| image | file size | peak RSS | wall |\n|---|---:|---:|---:|")
    for name, (height, width) in CASES.items():
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "in"
            folder.mkdir()
            make(folder / "x.png", height, width)
            started = time.perf_counter()
            # A fresh process per case, reporting its own peak (ru_maxrss, KiB on Linux).
            code = ("import resource, sys; from segue_cli.cli.app import main; sys.argv = ['segue', 'protect', "
                    f"{str(folder)!r}, '--out', {str(Path(tmp) / 'out')!r}, '--quiet']\n"
                    "try:\n    main()\nexcept SystemExit as e:\n    code = e.code\nelse:\n    code = 0\n"
                    "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\nsys.exit(code)")
            done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            peak_mib = int(done.stdout.split()[-1]) / 1024
            print(f"| {name} | {(folder / 'x.png').stat().st_size / 1e6:.1f} MB | {peak_mib:,.0f} MiB | "
                  f"{time.perf_counter() - started:.0f} s |", flush=True)


if __name__ == "__main__":
    main()
