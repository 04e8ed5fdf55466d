"""How much of the defender's perturbation survives into the crop an attacker trains on.

For each photo (scikit-image's astronaut upscaled 4x to 2048 px, and the portraits that
ship in the face-recognition 1.3.0 sdist) a fixed random pattern stands in for the
generator (``attacker_pipeline.probe_pattern``; structure at 112/grid px of the crop):

* face-aware: ``segue protect``'s face planner with YuNet, the pattern made on each aligned crop;
* whole-image, resized: the pattern made at 112 px for the whole photo and upscaled to
  it (a generator run on the photo resized to its working size);
* whole-image, native: the pattern tiled over the photo at 1:1 (a fully convolutional
  generator run at full resolution).

The attacker detects and aligns the protected photo (YuNet or dlib, antialiased crop)
and we report the Pearson correlation between the crop residual and the pattern.

    python research/faces_correlation.py --photos .cache/face_recognition_photos
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from segue_cli.evaluation.attacker_pipeline import attacker_crop_correlation, probe_pattern  # noqa: E402
from segue_cli.faces.detectors import DlibDetector, YuNetDetector  # noqa: E402
from segue_cli.imageio import discover_images, load_image  # noqa: E402
from segue_cli.photo.compose import face_planner  # noqa: E402

EPSILON = 8 / 255


def protect(rgb: np.ndarray, delta: np.ndarray) -> np.ndarray:
    return np.clip(rgb + np.rint(delta * 255.0), 0, 255).astype(np.uint8)


def protections(rgb: np.ndarray, pattern: np.ndarray, detector: YuNetDetector) -> dict[str, np.ndarray]:
    height, width = rgb.shape[:2]
    hwc = pattern.transpose(1, 2, 0)
    plan = face_planner(detector, "on")(rgb, 112, EPSILON)
    assert plan.details["faces_found"], "no face found"
    tiles = np.tile(hwc, (height // hwc.shape[0] + 1, width // hwc.shape[1] + 1, 1))[:height, :width]
    return {
        "face-aware": plan.compose([pattern] * len(plan.inputs)),
        "whole-resized": protect(rgb, cv2.resize(hwc, (width, height), interpolation=cv2.INTER_LINEAR)),
        "whole-native": protect(rgb, tiles),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=Path, default=Path(".cache/face_recognition_photos"),
                        help="folder of portrait photos (tests/test_faces.py fetches them there)")
    parser.add_argument("--grids", type=int, nargs="+", default=[8, 16, 28, 112])
    args = parser.parse_args()
    from skimage.data import astronaut

    photos = {"astronaut-2048": cv2.resize(astronaut(), (2048, 2048), interpolation=cv2.INTER_CUBIC)}
    if not args.photos.is_dir():
        sys.exit(f"{args.photos} not found: run `pytest tests/test_faces.py` once to fetch the photos")
    photos.update({p.name: load_image(p).rgb for p in discover_images(args.photos)})
    yunet, dlib = YuNetDetector(), DlibDetector()
    table: dict[str, dict[str, float]] = {}
    for grid in args.grids:
        pattern = probe_pattern(grid, epsilon=EPSILON)
        for name, rgb in photos.items():
            for method, protected in protections(rgb, pattern, yunet).items():
                for attacker in (yunet, dlib):
                    found = attacker_crop_correlation(rgb, protected, attacker, pattern)
                    key = f"grid {grid} | {method} | attacker {attacker.name}"
                    table.setdefault(key, {})[name] = round(max(found), 3) if found else float("nan")
    print(json.dumps({"photos": list(photos), "correlation": table}, indent=1))
    print("\n| pattern grid | protection | attacker | median | min | per photo |\n|---|---|---|---|---|---|")
    for key, per_photo in table.items():
        values = [v for v in per_photo.values() if v == v]
        grid, method, who = key.split(" | ")
        print(f"| {grid.split()[1]} | {method} | {who.split()[1]} | {statistics.median(values):.2f} | {min(values):.2f} | "
              + " ".join(f"{v:.2f}" for v in per_photo.values()) + " |")


if __name__ == "__main__":
    main()
