"""Time face-aware protection of one 12-megapixel photo on this machine.

The photo is scikit-image's astronaut upscaled (bicubic) to 4000 x 4000 and cut to
4000 x 3000 (one face, ~700 px wide). The generator is freshly initialised (speed does
not depend on training), saved with ``artifacts.save_generator`` and opened through
``backends.torch_backend.TorchBackend``, as ``segue protect`` does. Each repeat times the
steps of ``segue protect``'s face planner: the plan (detection and alignment), the
generator on the crops, and composing (the warp back, adding the delta, rounding to 8
bits). Decoding and encoding the file are not included (they depend on the format, not
on --faces).

    python benchmarks/faces_throughput.py --repeats 5 --detector yunet

End to end through ``segue protect`` (decode, detect, generator, warp back, encode):
``--make-photos DIR --count 5`` writes that many copies of the photo as JPEG (quality
95) and exits; then time ``segue protect DIR --faces`` (docs/benchmarks.md).
``--stages PHOTO`` times each step ``segue protect`` takes on one photo, in one thread,
with the shipped default model: decode, plan (detect + align), generator, compose,
bound check and PNG write, face-aware and whole-image.

On a CPU shared with other busy processes, torch's default OpenMP threads spin on
barriers (one generator call on a 112 px crop: ~1.2 s instead of ~10 ms); compare with
``--torch-threads 1`` or ``OMP_WAIT_POLICY=PASSIVE``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from segue_cli.artifacts import save_generator  # noqa: E402
from segue_cli.faces.detectors import open_detector  # noqa: E402
from segue_cli.photo.compose import face_planner  # noqa: E402
from segue_cli.nn.generator import GeneratorConfig, SegueGenerator  # noqa: E402
from segue_cli.backends.torch_backend import TorchBackend  # noqa: E402
from segue_cli.nn.codes import identity_code  # noqa: E402


def twelve_megapixel_photo() -> np.ndarray:
    from skimage.data import astronaut

    return np.ascontiguousarray(cv2.resize(astronaut(), (4000, 4000), interpolation=cv2.INTER_CUBIC)[:3000])


def pipeline_stages(photo: Path, repeats: int, detector_name: str) -> dict:
    from segue_cli.imageio import load_image, save_image
    from segue_cli.photo.compose import face_planner, whole_image_plan, within_limit
    from segue_cli.backends import open_backend

    backend = open_backend(None, "auto", "cpu")
    info = backend.info
    planners = {"faces": face_planner(open_detector(detector_name), "on"), "whole-image": whole_image_plan}
    code = np.array([identity_code("benchmark", info.code_bits)])
    times: dict[str, dict[str, list[float]]] = {name: {} for name in planners}

    def timed(mode: str, step: str, fn, *args):
        start = time.perf_counter()
        result = fn(*args)
        times[mode].setdefault(step, []).append(time.perf_counter() - start)
        return result

    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeats):
            for mode, planner in planners.items():
                image = timed(mode, "decode", load_image, photo)
                plan = timed(mode, "plan", planner, image.rgb, info.image_size, info.epsilon)
                deltas = timed(mode, "generator", backend.perturb, np.stack(plan.inputs), np.repeat(code, len(plan.inputs)))
                out = timed(mode, "compose", plan.compose, list(deltas))
                assert timed(mode, "bound_check", within_limit, image.rgb, out, info.epsilon)
                timed(mode, "write_png", save_image, Path(tmp) / f"{mode}.png", out)
    return {"photo": str(photo), "model": str(info.model_path), "backend": f"{info.name} on {info.device}",
            "repeats": repeats, "load_avg_1min": round(os.getloadavg()[0], 2),
            "median_s": {mode: {step: round(statistics.median(v), 3) for step, v in steps.items()}
                         for mode, steps in times.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--detector", default="yunet", choices=["yunet", "dlib"])
    parser.add_argument("--torch-threads", type=int, default=None, help="torch.set_num_threads (default: torch's own)")
    parser.add_argument("--make-photos", type=Path, default=None, help="write --count copies of the 12 MP photo as JPEG here, then exit")
    parser.add_argument("--count", type=int, default=5)
    parser.add_argument("--stages", type=Path, default=None, help="time segue protect's steps on this photo, then exit")
    args = parser.parse_args()
    if args.make_photos is not None:
        from PIL import Image

        args.make_photos.mkdir(parents=True, exist_ok=True)
        image = Image.fromarray(twelve_megapixel_photo())
        for index in range(args.count):
            image.save(args.make_photos / f"astronaut-12mp-{index}.jpg", quality=95)
        print(f"wrote {args.count} photos of {image.width}x{image.height} to {args.make_photos}")
        return
    if args.stages is not None:
        print(json.dumps(pipeline_stages(args.stages, args.repeats, args.detector), indent=1))
        return
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)

    photo = twelve_megapixel_photo()
    torch.manual_seed(0)
    epsilon = 8 / 255
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = Path(tmp) / "fresh.safetensors"
        save_generator(checkpoint, SegueGenerator(GeneratorConfig()), epsilon=epsilon, image_size=112,
                       training={"note": "freshly initialised, for timing only"})
        backend = TorchBackend(checkpoint, device="cpu")
    detector = open_detector(args.detector)
    planner = face_planner(detector, "on")
    codes = np.array([identity_code("benchmark")])

    def protect_once() -> tuple[np.ndarray, list[float]]:
        times = [time.perf_counter()]
        plan = planner(photo, 112, epsilon)
        times.append(time.perf_counter())
        deltas = backend.perturb(np.stack(plan.inputs), np.repeat(codes, len(plan.inputs)))
        times.append(time.perf_counter())
        protected = plan.compose(list(deltas))
        times.append(time.perf_counter())
        return protected, [b - a for a, b in zip(times, times[1:])]

    protect_once()  # warm-up: first calls load code and caches
    steps: list[list[float]] = []
    for _ in range(args.repeats):
        protected, seconds = protect_once()
        steps.append(seconds)
    assert np.abs(protected.astype(int) - photo).max() <= 8
    plan_s, generator_s, compose_s = ([row[i] for row in steps] for i in range(3))
    print(json.dumps({
        "photo": f"{photo.shape[1]}x{photo.shape[0]}",
        "detector": detector.name,
        "repeats": args.repeats,
        "median_s": {
            "plan_detect_and_align": round(statistics.median(plan_s), 3),
            "generator": round(statistics.median(generator_s), 3),
            "compose_warp_add_round": round(statistics.median(compose_s), 3),
            "total": round(statistics.median([sum(row) for row in steps]), 3),
        },
        "machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "processor": platform.processor() or platform.machine(), "load_avg_1min": round(os.getloadavg()[0], 2),
                    "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "")},
    }, indent=1))


if __name__ == "__main__":
    main()
