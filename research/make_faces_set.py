"""Build the "larger photos" benchmark set from WebFace10 for the detect-align protocol.

Every 224 px face crop is upscaled (bicubic) to a random size and pasted, with a soft
edge, at a random place on a larger canvas (default 1024 x 768) whose background is a
smooth random colour field with some grain. Everything is seeded per photo from
``--seed`` and the photo's relative path, so the set is the same on every run and
adding photos does not change the others. Layout: ``OUT/<split>/<label>/<name>.jpg``
(JPEG quality 95) plus ``OUT/placements.csv`` (where each face went).

    python research/make_faces_set.py /work/shared/data/WebFace10 /tmp/webface10-photos
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from segue_cli.storage import atomic_write  # noqa: E402
from segue_cli.errors import InputError, OutputError  # noqa: E402
from segue_cli.imageio import discover_images, load_image, save_image  # noqa: E402


@dataclass(frozen=True)
class SetConfig:
    width: int = 1024
    height: int = 768
    min_side: float = 0.35  # face crop side as a fraction of the canvas height
    max_side: float = 0.8
    seed: int = 0
    splits: tuple[str, ...] = ("train", "test")
    per_identity: int | None = None  # first N photos of each identity (None: all)

    def __post_init__(self) -> None:
        if not 0 < self.min_side <= self.max_side <= 1:
            raise InputError(f"face sizes {self.min_side}..{self.max_side} must satisfy 0 < min <= max <= 1")
        if min(self.width, self.height) < 64:
            raise InputError(f"canvas {self.width}x{self.height} is too small (64 px a side at least)")


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    coarse = rng.uniform(40, 215, size=(3, 4, 3)).astype(np.float32)
    coarse = 0.5 * coarse + 0.5 * coarse.mean(axis=2, keepdims=True)  # muted colours
    field = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    grain = cv2.resize(rng.normal(0, 6, size=(height // 8, width // 8, 3)).astype(np.float32), (width, height),
                       interpolation=cv2.INTER_LINEAR)
    return np.clip(field + grain, 0, 255)


def compose(face: np.ndarray, rng: np.random.Generator, config: SetConfig) -> tuple[np.ndarray, tuple[int, int, int]]:
    """The face crop upscaled and pasted on a random background: (photo, (x, y, side))."""
    side = int(round(rng.uniform(config.min_side, config.max_side) * min(config.height, config.width)))
    x = int(rng.integers(0, config.width - side + 1))
    y = int(rng.integers(0, config.height - side + 1))
    canvas = _background(rng, config.width, config.height)
    big = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    # Soft edge (6% of the side) so the paste has no hard square outline.
    ramp = np.clip(np.minimum(np.arange(side), np.arange(side)[::-1]) / max(1.0, 0.06 * side), 0, 1)
    alpha = np.minimum(ramp[:, None], ramp[None, :])[:, :, None]
    region = canvas[y : y + side, x : x + side]
    canvas[y : y + side, x : x + side] = alpha * big + (1 - alpha) * region
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8), (x, y, side)


def build_faces_set(src: Path, dst: Path, config: SetConfig = SetConfig()) -> dict[str, int]:
    """Write the set; returns the number of photos per split."""
    src, dst = Path(src), Path(dst)
    if dst.exists() and any(dst.iterdir()):
        raise OutputError(f"{dst} already exists and is not empty", "give a new folder")
    counts: dict[str, int] = {}
    rows: list[dict[str, object]] = []
    for split in config.splits:
        if not (src / split).is_dir():
            raise InputError(f"{src / split} not found", "give the WebFace10 root (with train/ and test/)")
        counts[split] = 0
        for identity in sorted(p for p in (src / split).iterdir() if p.is_dir()):
            for path in discover_images(identity)[: config.per_identity]:
                relative = path.relative_to(src)
                rng = np.random.default_rng([config.seed, zlib.crc32(relative.as_posix().encode())])
                photo, (x, y, side) = compose(load_image(path).rgb, rng, config)
                target = (dst / relative).with_suffix(".jpg")
                save_image(target, photo, image_format="jpeg", quality=95)
                rows.append({"path": target.relative_to(dst).as_posix(), "label": identity.name, "x": x, "y": y, "side": side})
                counts[split] += 1

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=["path", "label", "x", "y", "side"])
            writer.writeheader()
            writer.writerows(rows)

    atomic_write(dst / "placements.csv", write)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src", type=Path, help="WebFace10 root with train/ and test/")
    parser.add_argument("dst", type=Path, help="new folder for the set")
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--height", type=int, default=768)
    parser.add_argument("--min-side", type=float, default=0.35, help="smallest face crop, fraction of the canvas height")
    parser.add_argument("--max-side", type=float, default=0.8, help="largest face crop, fraction of the canvas height")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-identity", type=int, default=None, help="only the first N photos of each identity")
    args = parser.parse_args()
    config = SetConfig(args.width, args.height, args.min_side, args.max_side, args.seed, per_identity=args.per_identity)
    print(json.dumps(build_faces_set(args.src, args.dst, config)))


if __name__ == "__main__":
    main()
