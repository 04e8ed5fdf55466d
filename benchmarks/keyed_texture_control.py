"""A control for protocol P112: protect WebFace10 with each identity's keyed luminance
texture alone (segue_cli/nn/keyed_texture.py), no generator.

delta = eps * tanh(gain * texture), the same on R, G and B; with ``--shift`` (default)
each photo gets the texture at its own circular offset, so the identity's mean image
does not contain it. Codes: the folder name as a label (``--codes labels``) or
``webface10-<label>`` hashed as ``--identity`` would (``--codes hashed``).

  python benchmarks/keyed_texture_control.py OUT_DIR
  segue evaluate --train-protected OUT_DIR --train-clean ../shared/data/WebFace10/train \
      --test ../shared/data/WebFace10/test --protocol p112-screen --skip-baseline --threads 1
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from segue_cli.datasets import scan_image_folder  # noqa: E402
from segue_cli.imageio import load_image, save_image  # noqa: E402
from segue_cli.nn.keyed_texture import image_offset, keyed_texture, shifted  # noqa: E402
from segue_cli.side_info import folder_code  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "WebFace10" / "train")
    parser.add_argument("--codes", choices=("labels", "hashed"), default="labels")
    parser.add_argument("--band", type=float, nargs=2, default=(8.0, 24.0), metavar=("SHORTEST", "LONGEST"),
                        help="wavelengths kept, px at 224")
    parser.add_argument("--gain", type=float, default=2.0, help="texture RMS before the tanh (larger: nearer +/-eps)")
    parser.add_argument("--orientation-power", type=float, default=2.0,
                        help="larger: each texture keeps fewer orientations (more distinct between identities)")
    parser.add_argument("--no-shift", action="store_true", help="the same placement on every photo of an identity")
    parser.add_argument("--epsilon", type=float, default=8 / 255)
    args = parser.parse_args()
    if args.out.exists():
        raise SystemExit(f"{args.out} exists; choose a new folder")
    dataset = scan_image_folder(args.data)
    textures = {}
    for name in dataset.identities:
        key = name if args.codes == "labels" else f"webface10-{name}"
        textures[name] = keyed_texture(folder_code(key), band=tuple(args.band), orientation_power=args.orientation_power)
    for item in dataset.items:
        rgb = load_image(item.path).rgb
        texture = textures[item.identity]
        if not args.no_shift:
            seed = int.from_bytes(hashlib.sha256(str(item.path.relative_to(args.data)).encode()).digest()[:8], "big")
            texture = shifted(texture, image_offset(seed))
        pattern = F.interpolate(texture[None, None], size=rgb.shape[:2], mode="bilinear", align_corners=False)[0, 0]
        delta = (args.epsilon * 255 * torch.tanh(args.gain * pattern)).numpy()[..., None]
        out = np.clip(rgb.astype(np.float64) + delta, 0, 255).round().astype(np.uint8)
        target = args.out / item.identity / (item.path.stem + ".png")
        target.parent.mkdir(parents=True, exist_ok=True)
        save_image(target, out)
    print(f"wrote {len(dataset.items)} photos to {args.out}")


if __name__ == "__main__":
    main()
