"""A control for protocol P112: protect WebFace10 with a class-wise fixed pattern.

Each identity gets one random pattern of +/-eps signs, bilinearly upsampled to the photo:
either a smooth global one (``--grid 14``: a 14 x 14 grid) or a local one (``--tile 8``:
an 8 x 8 tile repeated across the 112 px working size, as a generator working at 112 px
and upsampled by ``segue protect`` would make), added to all its train photos and saved as PNG. This is the
simplest shortcut an attacker's model can learn; if P112 accuracy on it stays high, the
harness or the resize destroys shortcuts, and a generator cannot be judged by it.

Or (``--texture``) a band-pass luminance texture expanded from each identity's code, at
its own circular offset in every photo (``--no-shift``: the same placement on all), so the
identity's mean image does not contain it: see ``keyed_texture``.

  python research/classwise_control.py OUT_DIR
  python research/classwise_control.py OUT_DIR --texture [--no-shift] [--band 8 24]
  segue evaluate --train-protected OUT_DIR --train-clean ../shared/data/WebFace10/train \
      --test ../shared/data/WebFace10/test --protocol p112 --skip-baseline --threads 1
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from research.trees import write_tree  # noqa: E402
from segue_cli.datasets import LabelledImage, LabelledSet, scan_image_folder  # noqa: E402
from segue_cli.nn.delta import upsample  # noqa: E402
from segue_cli.nn.codes import folder_code  # noqa: E402

TEXTURE_SIZE = 224  # textures are drawn at this size and resized to the photo


def keyed_texture(code: int, band: tuple[float, float], orientation_power: float = 2.0,
                  size: int = TEXTURE_SIZE) -> torch.Tensor:
    """A size x size luminance texture with unit RMS, the same for a code on every machine:
    white noise seeded by the code, kept where the wavelength lies in ``band`` (px), with
    a random gain per orientation sector so codes differ in their orientation mix, not
    only in phases (which a shift scrambles). Why this band: the attacker's resize to
    112 px keeps it, JPEG keeps luminance there, and a face's own luminance energy falls
    with frequency, so a texture stands out more than a coarse map of the same amplitude."""
    rng = torch.Generator().manual_seed(0x5E6E7E47 ^ int(code))
    noise = torch.randn(size, size, generator=rng, dtype=torch.float64)
    fy = torch.fft.fftfreq(size, dtype=torch.float64)[:, None]
    fx = torch.fft.rfftfreq(size, dtype=torch.float64)[None, :]
    radius = torch.sqrt(fx**2 + fy**2)
    sectors = 8
    angle = torch.atan2(fy, fx + 1e-12).remainder(torch.pi)
    sector = (angle / torch.pi * sectors).long().clamp_max(sectors - 1)
    gains = torch.rand(sectors, generator=rng, dtype=torch.float64) ** orientation_power
    mask = ((radius >= 1.0 / band[1]) & (radius <= 1.0 / band[0])).to(torch.float64) * gains[sector]
    texture = torch.fft.irfft2(torch.fft.rfft2(noise) * mask, s=(size, size))
    return (texture / texture.pow(2).mean().sqrt().clamp_min(1e-12)).float()


def texture_patterns(args: argparse.Namespace, dataset: LabelledSet) -> dict[Path, torch.Tensor]:
    """Per photo: its identity's texture (at the photo's own offset), as eps-scaled signs."""
    textures = {name: keyed_texture(folder_code(name), tuple(args.band), args.orientation_power)
                for name in dataset.identities}
    patterns = {}
    for item in dataset.items:
        texture = textures[item.identity]
        if not args.no_shift:
            seed = int.from_bytes(hashlib.sha256(str(item.path.relative_to(args.data)).encode()).digest()[:8], "big")
            offset = torch.randint(0, TEXTURE_SIZE, (2,), generator=torch.Generator().manual_seed(seed >> 1)).tolist()
            texture = torch.roll(texture, shifts=tuple(offset), dims=(0, 1))
        patterns[item.path] = torch.tanh(args.gain * texture)[None, None].expand(1, 3, -1, -1)
    return patterns


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
    parser.add_argument("--texture", action="store_true", help="each identity's keyed luminance texture instead")
    parser.add_argument("--band", type=float, nargs=2, default=(8.0, 24.0), metavar=("SHORTEST", "LONGEST"),
                        help="--texture: wavelengths kept, px at 224")
    parser.add_argument("--gain", type=float, default=2.0, help="--texture: RMS before the tanh (larger: nearer +/-eps)")
    parser.add_argument("--orientation-power", type=float, default=2.0,
                        help="--texture: larger keeps fewer orientations per texture")
    parser.add_argument("--no-shift", action="store_true", help="--texture: the same placement on every photo")
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
    per_photo = texture_patterns(args, dataset) if args.texture else {}
    def delta_of(item: LabelledImage, rgb: np.ndarray) -> np.ndarray:
        source = per_photo[item.path] if args.texture else signs[item.identity]
        pattern = upsample(source, rgb.shape[:2])[0]
        return (pattern * args.epsilon * 255).round().permute(1, 2, 0).numpy()

    write_tree(dataset, args.out, delta_of)
    print(f"wrote {len(dataset.items)} photos to {args.out}")


if __name__ == "__main__":
    main()
