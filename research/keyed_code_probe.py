"""Purpose: which position-free code keyed to a name does a from-scratch attacker learn
as a shortcut, with no generator and no training on the person (issue 31)?

Writes a protected copy of an ImageFolder train split: every photo of a protected person
gets that person's code pattern at a fresh random phase or offset (seeded by the photo's
path, so a rerun writes the same bytes), the same on R, G and B (a luminance code), at
+/-AMPLITUDE/255. People not protected are written as their decoded originals (PNG),
so `segue evaluate` sees identical pixels for them. Families:

  grating  a square-wave grating; the code picks one of PERIODS x ANGLES
  tile     a TILE x TILE random +/-1 tile of CELL px cells, repeated over the photo at a
           random cyclic offset (the code seeds the tile)
  atoms    ACTIVE of a few shared gratings (PERIODS x ANGLES), each at its own random
           phase, summed and signed: the code picks which; a detector of one atom learns
           from every person who has it, and the person is a linear readout of the atoms
  fixed    a GRID x GRID map of random +/-1 cells at the same place on every photo (a
           control: is any class-wise shortcut learned here at all?)

  python research/keyed_code_probe.py runs/codes/lfw-tile --data ../shared/data/LFW48/train \\
      --family tile --cell 4 --tile 4 --hash-prefix lfw48
  segue evaluate --train-protected runs/codes/lfw-tile --train-clean ../shared/data/LFW48/train \\
      --test ../shared/data/LFW48/test --protocol p112-screen --skip-baseline --threads 1

``--protect N`` protects N people spread evenly over the folder order (the p112-few case:
the others stay clean). docs/research/2026-12-06-keyed-codes.md has the figures.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from math import comb
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from research.trees import write_tree  # noqa: E402
from segue_cli.datasets import LabelledImage, scan_image_folder  # noqa: E402
from research.p112 import protected_people  # noqa: E402
from segue_cli.nn.codes import identity_code  # noqa: E402


def photo_rng(relative: str) -> np.random.Generator:
    """A generator seeded by the photo's path: its phase or offset, the same on every run."""
    return np.random.default_rng(int.from_bytes(hashlib.sha256(relative.encode()).digest()[:8], "big"))


def grating(code: int, shape: tuple[int, int], rng: np.random.Generator, periods: list[float],
            angles: int) -> np.ndarray:
    period = periods[code % len(periods)]
    angle = np.pi * ((code // len(periods)) % angles) / angles
    y, x = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    phase = rng.uniform(0, 2 * np.pi)
    return np.sign(np.sin(2 * np.pi * (x * np.cos(angle) + y * np.sin(angle)) / period + phase) + 1e-9)


def tile(code: int, shape: tuple[int, int], rng: np.random.Generator, cell: int, size: int) -> np.ndarray:
    signs = np.random.default_rng(0x5E6E0000 + code).integers(0, 2, (size, size)) * 2 - 1
    offset = rng.integers(0, size * cell, 2)
    rows = ((np.arange(shape[0]) + offset[0]) // cell) % size
    cols = ((np.arange(shape[1]) + offset[1]) // cell) % size
    return signs[rows[:, None], cols[None, :]].astype(np.float64)


def atoms(code: int, shape: tuple[int, int], rng: np.random.Generator, periods: list[float], angles: int,
          active: int) -> np.ndarray:
    from itertools import combinations

    grid = [(p, np.pi * a / angles) for p in periods for a in range(angles)]
    chosen = list(combinations(range(len(grid)), active))[code % comb(len(grid), active)]
    y, x = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    total = np.zeros(shape)
    for index in chosen:
        period, angle = grid[index]
        total += np.sin(2 * np.pi * (x * np.cos(angle) + y * np.sin(angle)) / period + rng.uniform(0, 2 * np.pi))
    return np.sign(total + 1e-9)


def fixed(code: int, shape: tuple[int, int], grid: int, channels: int = 1) -> np.ndarray:
    import cv2

    cells = np.random.default_rng(0x5E6E0000 + code).integers(0, 2, (grid, grid, channels)) * 2 - 1
    big = cv2.resize(cells.astype(np.float32), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
    return np.sign(big.reshape(shape[0], shape[1], channels)).astype(np.float64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--data", type=Path, required=True, help="the clean train split: <identity>/<images>")
    parser.add_argument("--family", choices=("grating", "tile", "atoms", "fixed"), default="tile")
    parser.add_argument("--hash-prefix", default="lfw48", help="codes are identity_code(PREFIX-<folder>)")
    parser.add_argument("--amplitude", type=float, default=8.0, help="levels of 255")
    parser.add_argument("--protect", type=int, default=None, help="protect only N people (the others clean)")
    parser.add_argument("--periods", type=float, nargs="+", default=[8.0, 13.0], help="grating: periods, px")
    parser.add_argument("--angles", type=int, default=5, help="grating: angles over 180 degrees")
    parser.add_argument("--cell", type=int, default=4, help="tile: cell size, px")
    parser.add_argument("--tile", type=int, default=4, help="tile: cells a side")
    parser.add_argument("--active", type=int, default=3, help="atoms: gratings a code sums")
    parser.add_argument("--grid", type=int, default=14, help="fixed: cells a side")
    parser.add_argument("--colour", action="store_true", help="fixed: its own signs on R, G and B (a colour code)")
    args = parser.parse_args()
    if args.out.exists():
        raise SystemExit(f"{args.out} exists; choose a new folder")
    dataset = scan_image_folder(args.data)
    chosen = set(protected_people(dataset.identities, args.protect))
    def delta_of(item: LabelledImage, rgb: np.ndarray) -> np.ndarray | None:
        if item.identity not in chosen:
            return None
        code = identity_code(f"{args.hash_prefix}-{item.identity}")
        rng = photo_rng(str(item.path.relative_to(args.data)))
        shape = rgb.shape[:2]
        if args.family == "grating":
            pattern = grating(code, shape, rng, args.periods, args.angles)
        elif args.family == "atoms":
            pattern = atoms(code, shape, rng, args.periods, args.angles, args.active)
        elif args.family == "fixed":
            pattern = fixed(code, shape, args.grid, 3 if args.colour else 1)
        else:
            pattern = tile(code, shape, rng, args.cell, args.tile)
        return np.round(pattern * args.amplitude)

    write_tree(dataset, args.out, delta_of)
    print(f"wrote {len(dataset.items)} photos to {args.out}; protected: {', '.join(sorted(chosen))}")


if __name__ == "__main__":
    main()
