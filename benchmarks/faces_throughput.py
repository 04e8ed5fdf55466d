"""Time face-aware protection of one 12-megapixel photo on this machine.

The photo is scikit-image's astronaut upscaled (bicubic) to 4000 x 4000 and cut to
4000 x 3000 (one face, ~700 px wide). The generator is freshly initialised (speed does
not depend on training), saved with ``artifacts.save_generator`` and opened through
``runtime.TorchBackend``, as ``segue protect`` will. Each repeat times detection plus
alignment, the generator and the warp back (``face_aware_delta``), and separately adding
the delta to the photo and rounding to 8 bits. Decoding and encoding the file are not
included (they depend on the format, not on --faces).

    python benchmarks/faces_throughput.py --repeats 5 --detector yunet

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
from segue_cli.face_detectors import open_detector  # noqa: E402
from segue_cli.faces import backend_perturb_fn, face_aware_delta  # noqa: E402
from segue_cli.nn.generator import GeneratorConfig, SegueGenerator  # noqa: E402
from segue_cli.runtime import TorchBackend  # noqa: E402
from segue_cli.side_info import identity_code  # noqa: E402


def twelve_megapixel_photo() -> np.ndarray:
    from skimage.data import astronaut

    return np.ascontiguousarray(cv2.resize(astronaut(), (4000, 4000), interpolation=cv2.INTER_CUBIC)[:3000])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--detector", default="yunet", choices=["yunet", "dlib"])
    parser.add_argument("--torch-threads", type=int, default=None, help="torch.set_num_threads (default: torch's own)")
    args = parser.parse_args()
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
    perturb = backend_perturb_fn(backend, identity_code("benchmark"))
    face_aware_delta(photo, detector, perturb, epsilon=epsilon)  # warm-up: first calls load code and caches
    detect_s, delta_s, apply_s = [], [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        faces = detector.detect(photo)
        detect_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        result = face_aware_delta(photo, detector, perturb, epsilon=epsilon)
        delta_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        protected = np.clip(photo + np.rint(result.delta * 255.0), 0, 255).astype(np.uint8)
        apply_s.append(time.perf_counter() - start)
    assert result is not None and np.abs(protected.astype(int) - photo).max() <= 8
    print(json.dumps({
        "photo": f"{photo.shape[1]}x{photo.shape[0]}",
        "detector": detector.name,
        "faces": len(faces),
        "repeats": args.repeats,
        "median_s": {
            "detect": round(statistics.median(detect_s), 3),
            "face_aware_delta_including_detection": round(statistics.median(delta_s), 3),
            "add_delta_and_round": round(statistics.median(apply_s), 3),
            "total": round(statistics.median(delta_s) + statistics.median(apply_s), 3),
        },
        "machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "processor": platform.processor() or platform.machine(), "load_avg_1min": round(os.getloadavg()[0], 2),
                    "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "")},
    }, indent=1))


if __name__ == "__main__":
    main()
