"""Throughput of `segue protect` against its I/O floor.

Runs the protect pipeline twice over the same photos (default: the 1,500 WebFace10
images, 224 px JPEG in, PNG out), each in a fresh process so peak memory is per run:

* ``floor``: the generator replaced by a backend that returns a zero delta, i.e. decode,
  resize, map back, PNG encode and write only;
* ``model``: the real generator (``--model``; without it a freshly initialised generator
  at working size 112 is saved to a temp checkpoint: same cost as a trained one).

Prints a table and, with ``--write-docs``, replaces the protect section of
docs/benchmarks.md. Example (the command behind the published figures):

    nice -n 10 /work/venv/bin/python benchmarks/protect_bench.py --write-docs

The same through ONNX Runtime:

    python benchmarks/protect_bench.py --save-fresh-model /tmp/fresh-112.safetensors
    segue export /tmp/fresh-112.safetensors --out /tmp/fresh-112.onnx
    python benchmarks/protect_bench.py --model /tmp/fresh-112.onnx --backend onnx --write-docs
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from segue_cli.protect.config import ProtectConfig, default_workers  # noqa: E402
from segue_cli.protect import protect  # noqa: E402
from segue_cli.backends import BackendInfo, open_backend  # noqa: E402

# The data sits in shared/ beside the checkout (or beside the worktrees' parent).
DEFAULT_DATA = next((p / "shared" / "data" / "WebFace10" for p in (REPO.parent, REPO.parent.parent)
                     if (p / "shared" / "data" / "WebFace10").is_dir()), REPO.parent / "shared" / "data" / "WebFace10")
DOCS = REPO / "docs" / "benchmarks.md"

def markers(backend: str) -> tuple[str, str]:
    """One docs section per backend, replaced in place by later runs."""
    return f"<!-- protect-bench-{backend}:start -->", f"<!-- protect-bench-{backend}:end -->"


class ZeroBackend:
    """The I/O floor: same interface and working size as the real model, zero delta."""

    def __init__(self, info: BackendInfo) -> None:
        self.info = BackendInfo(**{**info.__dict__, "name": "zero"})

    def perturb(self, images: np.ndarray, codes: np.ndarray) -> np.ndarray:
        return np.zeros_like(images, dtype=np.float32)


def fresh_model(folder: Path, image_size: int = 112) -> Path:
    import torch

    from segue_cli.artifacts import save_generator
    from segue_cli.nn.generator import GeneratorConfig, SegueGenerator

    torch.manual_seed(0)
    path = folder / f"fresh-{image_size}.safetensors"
    save_generator(path, SegueGenerator(GeneratorConfig()), epsilon=8 / 255, image_size=image_size,
                   training={"note": "benchmark: freshly initialised, untrained"})
    return path


def single_run(args: argparse.Namespace) -> dict[str, object]:
    """One pipeline run in this process; prints its figures as JSON."""
    backend = open_backend(args.model, args.backend, args.device, threads=max(1, (os.cpu_count() or 1) - args.workers))
    if args.single == "floor":
        backend = ZeroBackend(backend.info)
    with tempfile.TemporaryDirectory(prefix="segue-bench-") as out:
        config = ProtectConfig(input=args.data, out=Path(out) / "protected", model=args.model, backend=args.backend,
                               device=args.device, workers=args.workers, batch_size=args.batch_size)
        started, cpu_started = time.perf_counter(), time.process_time()
        summary = protect(config, backend=backend)
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    return {"run": args.single, "written": summary.written, "failed": summary.failed, "seconds": seconds,
            "cpu_ms_per_image": 1000 * cpu_seconds / max(1, summary.written),
            "images_per_second": summary.written / seconds, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "backend": backend.info.name, "device": backend.info.device, "image_size": backend.info.image_size}


def child(args: argparse.Namespace, which: str) -> dict[str, object]:
    command = [sys.executable, __file__, "--single", which, "--data", str(args.data), "--model", str(args.model),
               "--backend", args.backend, "--device", args.device, "--workers", str(args.workers),
               "--batch-size", str(args.batch_size)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{which} run failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def markdown(rows: list[dict[str, Any]], args: argparse.Namespace, command: str) -> str:
    floor, model = rows
    ratio = float(model["images_per_second"]) / float(floor["images_per_second"])
    start, end = markers(str(model["backend"]))
    lines = [
        start,
        f"## `segue protect` throughput ({model['backend']} backend)",
        "",
        f"{model['written']} WebFace10 photos (224 px JPEG in, PNG out, working size {model['image_size']}), "
        f"backend {model['backend']} on {model['device']}, {args.workers} I/O thread(s), batch {args.batch_size}; "
        f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), shared with other jobs while measured "
        f"(load average {args.load:.1f} at the start). CPU ms/image counts every thread of the run.",
        "",
        "| run | images | seconds | images/s | CPU ms/image | peak RSS (MiB) |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        name = "I/O floor (zero delta)" if row["run"] == "floor" else "generator"
        lines.append(f"| {name} | {row['written']} | {float(row['seconds']):.1f} | {float(row['images_per_second']):.1f} "
                     f"| {float(row['cpu_ms_per_image']):.1f} | {float(row['peak_rss_mib']):.0f} |")
    lines += ["", f"Generator throughput = {ratio:.0%} of the I/O floor "
                  "(targets: at least 80% of the floor, issue 18; at least 30 images/s; peak memory under 1 GiB). "
                  "On this shared machine images/s moves by 10-20% from run to run. The generator runs on the "
                  "calling thread beside the I/O threads' decoding and encoding, so on several cores the wall-clock "
                  "share is the figure; the CPU ms/image ratio "
                  f"({float(floor['cpu_ms_per_image']) / float(model['cpu_ms_per_image']):.0%}) is what one core "
                  "would reach. " + (
                      "Most of the peak RSS is importing torch (about 510 MiB); the pipeline itself holds a few "
                      "batches of photos." if model["backend"] == "torch" else
                      "On ONNX Runtime torch is never imported: the peak is ONNX Runtime, OpenCV and the few "
                      "batches of photos the pipeline holds."),
              "", "Command:", "", "```", command, "```", "",
              "Through ONNX Runtime: `--save-fresh-model /tmp/fresh-112.safetensors`, "
              "`segue export /tmp/fresh-112.safetensors --out /tmp/fresh-112.onnx`, then "
              "`--model /tmp/fresh-112.onnx --backend onnx`.", end]
    return "\n".join(lines) + "\n"


def write_docs(section: str, start: str, end: str) -> None:
    """Replace the section between the markers ``start`` and ``end`` (or append it)."""
    text = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n\nEach figure names the command that produced it.\n"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + section + rest.split(end, 1)[1].lstrip("\n")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    DOCS.parent.mkdir(parents=True, exist_ok=True)
    DOCS.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of photos (recursive)")
    parser.add_argument("--model", default=None, help="generator; default: a fresh one at working size 112")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=default_workers(), help="I/O threads (default: as segue protect)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--write-docs", action="store_true", help=f"replace the protect section of {DOCS}")
    parser.add_argument("--save-fresh-model", type=Path, metavar="PATH",
                        help="only save the fresh generator to PATH (e.g. to export it to ONNX) and exit")
    parser.add_argument("--single", choices=("floor", "model"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.single:
        print(json.dumps(single_run(args)))
        return
    if args.save_fresh_model:
        args.save_fresh_model.parent.mkdir(parents=True, exist_ok=True)
        fresh = fresh_model(args.save_fresh_model.parent)
        fresh.replace(args.save_fresh_model)
        print(args.save_fresh_model)
        return
    command = "nice -n 10 /work/venv/bin/python benchmarks/protect_bench.py " + " ".join(sys.argv[1:])
    with tempfile.TemporaryDirectory(prefix="segue-bench-model-") as folder:
        if args.model is None:
            args.model = str(fresh_model(Path(folder)))
        for path in sorted(Path(args.data).rglob("*")):  # warm the page cache so both runs read from memory
            if path.is_file():
                path.read_bytes()
        args.load = os.getloadavg()[0]
        rows = [child(args, "floor"), child(args, "model")]
    section = markdown(rows, args, command.strip())
    print(section)
    if args.write_docs:
        write_docs(section, *markers(str(rows[1]["backend"])))


if __name__ == "__main__":
    main()
