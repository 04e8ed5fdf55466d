"""The cost of a small `segue protect` run, whole process included (issue 18).

A person protecting a handful of photos pays for the process: imports, opening the
model, then the photos. This measures, each in a fresh process and repeated:

* ``floor``: one Python process that decodes the same photos with Pillow and writes
  them as PNG with Pillow (the least any tool that reads JPEG and writes PNG pays);
* ``segue``: ``segue protect DIR --out OUT`` with no other option (the shipped model);
* usage errors: ``segue protect`` on a missing folder and with a bad option, wall time
  until it exits 2.

CPU time is user + system of the child process (``os.wait4``), peak memory its maximum
resident set. The children run with their bytecode cached (``PYTHONPYCACHEPREFIX`` in the
temp folder, after one uncounted warm-up run of each command), as an installed segue runs:
pip compiles a package's modules when it installs it, while a checkout run under
``PYTHONDONTWRITEBYTECODE=1`` would compile every segue module again at each start.
Example (the command behind docs/benchmarks.md "A small run"):

    python benchmarks/small_run_bench.py --photos 20 --repeat 5 --write-docs
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.protect_bench import DEFAULT_DATA, write_docs  # noqa: E402

SEGUE = [sys.executable, "-m", "segue_cli"]
FLOOR_SCRIPT = """
import sys
from pathlib import Path
from PIL import Image
src, out = Path(sys.argv[1]), Path(sys.argv[2])
for path in sorted(src.iterdir()):
    with Image.open(path) as image:
        image.convert("RGB").save(out / (path.stem + ".png"))
"""


CHILD_ENV = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}


def measured(command: list[str], expect: int = 0) -> dict[str, float]:
    """Run ``command``; its wall seconds, CPU seconds (user + system) and peak RSS (MiB)."""
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=CHILD_ENV)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code != expect:
        raise SystemExit(f"{' '.join(command)} exited {code}, expected {expect}:\n{child.stderr.read().decode()}"
                         if child.stderr else f"{command} exited {code}")
    return {"seconds": seconds, "cpu": usage.ru_utime + usage.ru_stime, "rss_mib": usage.ru_maxrss / 1024}


def photos(data: Path, count: int, into: Path) -> Path:
    """``count`` photos of the data set, evenly spread over its sorted list, in one folder."""
    into.mkdir(parents=True)
    every = sorted(data.rglob("*.jpg"))
    found = every[:: max(1, len(every) // count)][:count]  # spread over the identities
    for index, path in enumerate(found):
        shutil.copyfile(path, into / f"{index:03d}-{path.name}")
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA / "train")
    parser.add_argument("--photos", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--write-docs", action="store_true", help="replace docs/benchmarks.md's 'A small run' section")
    args = parser.parse_args()
    runs: dict[str, list[dict[str, float]]] = {"floor": [], "segue": [], "missing input": [], "bad option": []}
    with tempfile.TemporaryDirectory(prefix="segue-small-") as folder:
        work = Path(folder)
        source = photos(args.data, args.photos, work / "photos")
        CHILD_ENV["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
        for attempt in range(-1, args.repeat):  # alternate, so load from other jobs falls on both alike
            out = work / f"floor-{attempt}"
            out.mkdir()
            timed = {"floor": measured([sys.executable, "-c", FLOOR_SCRIPT, str(source), str(out)]),
                     "segue": measured([*SEGUE, "protect", str(source), "--out", str(work / f"segue-{attempt}")]),
                     "missing input": measured([*SEGUE, "protect", str(work / "no-such-folder")], expect=2),
                     "bad option": measured([*SEGUE, "protect", str(source), "--batch-size", "0"], expect=2)}
            for name, row in timed.items():
                if attempt >= 0:  # -1: the warm-up, which writes the bytecode
                    runs[name].append(row)
    median = {name: {key: statistics.median(r[key] for r in rows) for key in rows[0]} for name, rows in runs.items()}
    ratio = median["segue"]["cpu"] / median["floor"]["cpu"]
    start, end = "<!-- small-run-bench:start -->", "<!-- small-run-bench:end -->"
    lines = [
        start, "## A small run: the whole `segue protect` process (issue 18)", "",
        f"{args.photos} WebFace10 photos (224 px JPEG in, PNG out), each command in a fresh process, median of "
        f"{args.repeat} alternating runs after a warm-up run (bytecode cached, as in an installed segue); "
        f"{os.cpu_count()} CPU cores ({platform.machine()}), load average "
        f"{os.getloadavg()[0]:.1f} at the end. CPU is user + system time of the process.", "",
        "| command | wall s | CPU s | peak RSS (MiB) |", "|---|---|---|---|",
    ]
    labels = {"floor": "Pillow decode + PNG encode, one Python process (the floor)",
              "segue": "`segue protect DIR --out OUT` (shipped model, ONNX Runtime)",
              "missing input": "usage error: `segue protect no-such-folder`",
              "bad option": "usage error: `segue protect DIR --batch-size 0`"}
    for name, row in median.items():
        lines.append(f"| {labels[name]} | {row['seconds']:.2f} | {row['cpu']:.2f} | {row['rss_mib']:.0f} |")
    slowest_error = max(median["missing input"]["seconds"], median["bad option"]["seconds"])
    lines += ["", f"`segue protect` costs {ratio:.2f}x the floor's CPU time (target: at most 1.8x, issue 43) and peaks at "
                  f"{median['segue']['rss_mib']:.0f} MiB (target: at most 250 MiB); usage errors are reported in "
                  f"{slowest_error:.2f} s or less (target: 0.5 s).", "",
              "Command:", "", "```", "python benchmarks/small_run_bench.py " + " ".join(sys.argv[1:]), "```", end]
    section = "\n".join(lines) + "\n"
    print(section)
    if args.write_docs:
        write_docs(section, start, end)


if __name__ == "__main__":
    main()
