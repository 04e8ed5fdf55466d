"""Measure the two landmark templates that segue_cli hard-codes.

* WEBFACE10_TEMPLATE_112 (segue_cli/faces.py): where YuNet's five points sit, on
  average, in WebFace10's face crops scaled to 112 px: the framing the generator was
  trained on.
* DLIB5_TEMPLATE_112 (segue_cli/face_detectors.py): where dlib's five points (eye
  corners, bottom of the nose) land in the ArcFace 112 px crop when the face is aligned
  with YuNet's points, so dlib faces align like YuNet faces.

Each photo is upscaled 2x (bicubic) before detection so whole-pixel landmarks are
half-pixel precise. Prints the arrays to paste, their spread, and how far dlib-aligned
faces land from YuNet-aligned ones (pixels of the 112 crop).

    python research/fit_face_templates.py --data /work/shared/data/WebFace10/train --limit 400
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from segue_cli.faces.detectors import DlibDetector, YuNetDetector, _iou  # noqa: E402
from segue_cli.faces.geometry import ARCFACE_TEMPLATE_112, alignment_matrix, similarity_transform  # noqa: E402
from segue_cli.imageio import discover_images, load_image  # noqa: E402


def _central(items: list, box_of, width: int, height: int):
    """The item whose box centre is nearest the photo centre (WebFace crops are centred)."""

    def distance(item) -> float:
        x0, y0, x1, y1 = box_of(item)
        return float(np.hypot((x0 + x1 - width) / 2, (y0 + y1 - height) / 2))

    return min(items, key=distance, default=None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="a folder of face crops, e.g. WebFace10/train")
    parser.add_argument("--limit", type=int, default=400, help="photos used, evenly spaced over the set")
    args = parser.parse_args()

    paths = discover_images(args.data)
    paths = [paths[i] for i in np.linspace(0, len(paths) - 1, min(args.limit, len(paths))).round().astype(int)]
    yunet, dlib = YuNetDetector(), DlibDetector()
    webface_points, dlib_in_crop, residuals = [], [], []
    for path in paths:
        rgb = load_image(path).rgb
        height, width = rgb.shape[:2]
        big = cv2.resize(rgb, (2 * width, 2 * height), interpolation=cv2.INTER_CUBIC)
        face = _central(yunet.detect(big), lambda f: f.box, 2 * width, 2 * height)
        if face is None:
            continue
        yunet_points = (face.landmarks + 0.5) / 2 - 0.5  # back to the photo's pixel grid
        webface_points.append((yunet_points + 0.5) * (112 / width) - 0.5 if width == height else None)
        match = _central([d for d in dlib.raw_points(big) if _iou(d[0], face.box) > 0.3], lambda d: d[0], 2 * width, 2 * height)
        if match is None:
            continue
        to_crop = alignment_matrix(face.landmarks, 112)
        dlib_in_crop.append(np.hstack([match[1], np.ones((5, 1))]) @ to_crop.T)
    webface = np.array([p for p in webface_points if p is not None])
    dlib_points = np.array(dlib_in_crop)
    dlib_template = dlib_points.mean(axis=0)
    # How far a dlib-aligned crop lands from the YuNet-aligned one (the identity map if
    # they agreed exactly), measured at the five ArcFace points.
    for points in dlib_points:
        to_template = np.vstack([similarity_transform(points, dlib_template), [0, 0, 1]])
        moved = np.hstack([ARCFACE_TEMPLATE_112, np.ones((5, 1))]) @ to_template[:2].T
        residuals.append(float(np.linalg.norm(moved - ARCFACE_TEMPLATE_112, axis=1).mean()))
    print(json.dumps({
        "photos": len(paths),
        "yunet_faces": len(webface),
        "dlib_matched": len(dlib_points),
        "WEBFACE10_TEMPLATE_112": np.round(webface.mean(axis=0), 2).tolist(),
        "webface_spread_px": np.round(webface.std(axis=0), 2).tolist(),
        "DLIB5_TEMPLATE_112": np.round(dlib_template, 2).tolist(),
        "dlib_spread_px": np.round(dlib_points.std(axis=0), 2).tolist(),
        "dlib_vs_yunet_alignment_px": {"mean": round(float(np.mean(residuals)), 2), "p90": round(float(np.percentile(residuals, 90)), 2)},
    }, indent=1))


if __name__ == "__main__":
    main()
