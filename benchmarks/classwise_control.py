"""A control for protocol P112: protect WebFace10 with a class-wise fixed pattern.

Each identity gets one random pattern of +/-eps signs, bilinearly upsampled to the photo:
either a smooth global one (``--grid 14``: a 14 x 14 grid) or a local one (``--tile 8``:
an 8 x 8 tile repeated across the 112 px working size, as a generator working at 112 px
and upsampled by ``segue protect`` would make), added to all its train photos and saved as PNG. This is the
simplest shortcut an attacker's model can learn; if P112 accuracy on it stays high, the
harness or the resize destroys shortcuts, and a generator cannot be judged by it.

  python benchmarks/classwise_control.py OUT_DIR
  segue evaluate --train-protected OUT_DIR --train-clean ../shared/data/WebFace10/train \
      --test ../shared/data/WebFace10/test --protocol p112 --skip-baseline --threads 1
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from segue_cli.datasets import scan_image_folder  # noqa: E402
from segue_cli.imageio import load_image, save_image  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "WebFace10" / "train")
    parser.add_argument("--grid", type=int, default=14, help="pattern cells across the photo (global pattern)")
    parser.add_argument("--tile", type=int, default=0,
                        help="instead of --grid: a TILE x TILE random sign tile at --working-size scale, repeated "
                             "across the photo (a local pattern a convolution sees everywhere)")
    parser.add_argument("--luma", action="store_true",
                        help="one sign per cell shared by R, G and B (a brightness pattern that survives grayscale)")
    parser.add_argument("--working-size", type=int, default=112)
    parser.add_argument("--epsilon", type=float, default=8 / 255)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.out.exists():
        raise SystemExit(f"{args.out} exists; choose a new folder")
    dataset = scan_image_folder(args.data)
    rng = torch.Generator().manual_seed(args.seed)
    cells = args.tile or args.grid
    channels = 1 if args.luma else 3
    signs = {name: (torch.randint(0, 2, (1, channels, cells, cells), generator=rng).float() * 2 - 1).expand(1, 3, -1, -1)
             for name in dataset.identities}
    if args.tile:
        repeats = -(-args.working_size // args.tile)
        signs = {name: s.repeat(1, 1, repeats, repeats)[..., : args.working_size, : args.working_size]
                 for name, s in signs.items()}
    for item in dataset.items:
        rgb = load_image(item.path).rgb
        pattern = F.interpolate(signs[item.identity], size=rgb.shape[:2], mode="bilinear", align_corners=False)[0]
        delta = (pattern * args.epsilon * 255).round().permute(1, 2, 0).numpy()
        out = np.clip(rgb.astype(np.float64) + delta, 0, 255).astype(np.uint8)
        target = args.out / item.identity / (item.path.stem + ".png")
        target.parent.mkdir(parents=True, exist_ok=True)
        save_image(target, out)
    print(f"wrote {len(dataset.items)} photos to {args.out}")


if __name__ == "__main__":
    main()
