"""Generator-only throughput: PyTorch vs ONNX Runtime on this machine's CPU.

Times ``backend.perturb`` (images already decoded and resized to the working size, codes
given) for each batch size, after warm-up calls, alternating between the backends, and reports images per
second from the median call. A freshly initialised generator costs exactly what a trained one does,
so by default one is saved to a temp checkpoint and exported with ``segue export``'s code;
``--model`` times a real checkpoint instead. The result table replaces the section
``## Generator backends (torch vs ONNX Runtime)`` in docs/benchmarks.md (``--no-doc`` to
only print it).

    python benchmarks/backend_bench.py                      # working size 112, batches 1 16 32
    python benchmarks/backend_bench.py --seconds 1 --no-doc # quick look
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import segue_cli  # noqa: E402,F401  (first: it turns ONNX Runtime's telemetry off before the runtime loads)
import onnxruntime as ort  # noqa: E402

from segue_cli.artifacts import save_generator  # noqa: E402

from segue_cli.storage import atomic_write  # noqa: E402
from segue_cli.export import ExportConfig, export_model  # noqa: E402
from segue_cli.nn.generator import SegueGenerator  # noqa: E402
from segue_cli.backends.onnx_backend import OnnxBackend  # noqa: E402
from segue_cli.backends import PerturbationBackend  # noqa: E402
from segue_cli.backends.torch_backend import TorchBackend  # noqa: E402

HEADING = "## Generator backends (torch vs ONNX Runtime)"
DOC = ROOT / "docs" / "benchmarks.md"
WARMUP_CALLS = 2  # first calls pay for allocations and kernel selection


def images_per_second(backends: dict[str, PerturbationBackend], batch: int, size: int, seconds: float) -> dict[str, float]:
    """Median-call throughput of each backend; calls alternate between backends so that
    load from other jobs on the machine falls on both alike."""
    rng = np.random.default_rng(0)
    images = rng.random((batch, 3, size, size), dtype=np.float32)
    codes = rng.integers(0, 2**16, batch, dtype=np.int64)
    for backend in backends.values():
        for _ in range(WARMUP_CALLS):
            backend.perturb(images, codes)
    times: dict[str, list[float]] = {name: [] for name in backends}
    deadline = time.perf_counter() + seconds * len(backends)
    while min(map(len, times.values())) < 3 or (time.perf_counter() < deadline and len(times["torch"]) < 200):
        for name, backend in backends.items():
            start = time.perf_counter()
            backend.perturb(images, codes)
            times[name].append(time.perf_counter() - start)
    return {name: batch / statistics.median(calls) for name, calls in times.items()}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def render(rows: list[tuple[int, int, float, float]], args: argparse.Namespace, command: str, model_note: str) -> str:
    lines = [
        HEADING, "",
        f"Generator only (`backend.perturb` on images already at the working size {args.size} x {args.size}; "
        "no decoding, resizing or encoding), images per second from the median of repeated calls after "
        "warm-up calls, calls alternating between the backends. Higher is better.", "",
        f"- Command: `{command}`",
        f"- Model: {model_note}",
        f"- Machine: {cpu_name()}, {os.cpu_count()} cores; torch {torch.__version__}, "
        f"onnxruntime {ort.__version__} (CPUExecutionProvider); "
        f"measured {datetime.date.today().isoformat()} with a load average of {os.getloadavg()[0]:.1f} from other "
        "jobs on the machine, which hurts multi-threaded runs most; compare backends within a row.", "",
        "| threads | batch | torch (img/s) | ONNX Runtime (img/s) | ONNX / torch |",
        "|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {n} | {b} | {t:.1f} | {o:.1f} | {o / t:.2f} |" for n, b, t, o in rows]
    wins = sum(o > t for _, _, t, o in rows)
    faster = "ONNX Runtime" if wins * 2 > len(rows) else "torch" if wins * 2 < len(rows) else "neither clearly"
    lines += ["", f"Faster on this CPU: **{faster}** (in {max(wins, len(rows) - wins)} of {len(rows)} settings).", ""]
    return "\n".join(lines)


def update_doc(section: str, doc: Path = DOC) -> None:
    """Replace our section (heading up to the next ``## ``) or append it; other sections stay."""
    text = doc.read_text() if doc.exists() else "# Benchmarks\n\nEvery figure here comes from the command shown beside it.\n"
    lines = text.splitlines()
    if HEADING in lines:
        start = lines.index(HEADING)
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        lines[start:end] = section.rstrip("\n").splitlines() + ([""] if end < len(lines) else [])
        new = "\n".join(lines) + "\n"
    else:
        new = text.rstrip("\n") + "\n\n" + section.rstrip("\n") + "\n"
    atomic_write(doc, lambda tmp: tmp.write_text(new))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=112, help="working size in pixels (default 112)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16, 32], help="batch sizes (default 1 16 32)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, os.cpu_count() or 1],
                        help="CPU thread counts to try, the same for both backends (default: 1 and all cores)")
    parser.add_argument("--seconds", type=float, default=2.0, help="time budget per backend and batch size")
    parser.add_argument("--model", type=Path, help="a .safetensors checkpoint to time (default: a fresh generator)")
    parser.add_argument("--no-doc", action="store_true", help="print the table only; leave docs/benchmarks.md alone")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = args.model
        if checkpoint is None:
            torch.manual_seed(0)
            checkpoint = Path(tmp) / "fresh.safetensors"
            save_generator(checkpoint, SegueGenerator(), epsilon=8 / 255, image_size=args.size)
        started = time.perf_counter()
        exported = export_model(ExportConfig(out=Path(tmp) / "g.onnx", model=checkpoint))
        print(f"exported in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        rows = []
        for threads in args.threads:
            torch.set_num_threads(threads)
            backends: dict[str, PerturbationBackend] = {"torch": TorchBackend(checkpoint, "cpu"),
                                                        "onnx": OnnxBackend(exported.out, "cpu", threads)}
            for batch in args.batches:
                figures = images_per_second(backends, batch, args.size, args.seconds)
                rows.append((threads, batch, figures["torch"], figures["onnx"]))
                print(f"threads {threads} batch {batch:3d}: torch {figures['torch']:7.1f} img/s, "
                      f"onnx {figures['onnx']:7.1f} img/s", file=sys.stderr)
    command = "python " + " ".join(["benchmarks/backend_bench.py", *sys.argv[1:]])
    note = f"`{args.model}`" if args.model else "freshly initialised generator (same cost as a trained one)"
    section = render(rows, args, command, note)
    print(section)
    if not args.no_doc:
        update_doc(section)
        print(f"updated {DOC}", file=sys.stderr)


if __name__ == "__main__":
    main()
