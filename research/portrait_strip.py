"""A full portrait protected face by face (`--faces`), for the model card: clean,
protected and residual x30 (mid-grey: no change) side by side, at full size, as a person
sees them before posting.

  python research/portrait_strip.py --out docs/img/default-model-portrait.png
  python research/portrait_strip.py --cloak 10 --out docs/img/cloak-portrait.png   # segue protect --cloak
  python research/portrait_strip.py --strength low --out docs/img/default-model-portrait-low.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from segue_cli import CloakConfig, Protector  # noqa: E402

RESIDUAL_GAIN = 30  # as the evaluation report's strip: mid-grey is no change

EXAMPLE = ROOT / "segue_cli" / "data" / "example-astronaut.png"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="generator (default: the shipped model)")
    parser.add_argument("--photo", type=Path, default=EXAMPLE, help="portrait to protect (default: the shipped example)")
    parser.add_argument("--cloak", type=int, default=None, metavar="STEPS", help="also cloak, as protect --cloak")
    parser.add_argument("--strength", default="high", help="segue protect --strength (low, medium, high)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    clean = np.asarray(Image.open(args.photo).convert("RGB"))
    cloak = CloakConfig(steps=args.cloak) if args.cloak else None
    protector = Protector(model=args.model, faces="on", cloak=cloak, strength=args.strength)
    protected = np.asarray(protector.protect(clean, identity="segue example"))
    residual = np.clip(127.5 + RESIDUAL_GAIN * (protected.astype(np.float64) - clean), 0, 255).astype(np.uint8)
    gap = np.full((clean.shape[0], 8, 3), 255, np.uint8)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate([clean, gap, protected, gap, residual], axis=1)).save(args.out, optimize=True)
    print(f"wrote {args.out} (largest change {np.abs(protected.astype(int) - clean).max()}/255)")


if __name__ == "__main__":
    main()
