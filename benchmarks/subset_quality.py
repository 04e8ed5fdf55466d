"""Image quality of some identities of a protected tree only.

``segue evaluate`` averages SSIM over every pair, so in a tree where only some people are
protected (``identity_cloak.py --cloak N``) the untouched copies pull SSIM toward 1. This
measures the protected identities alone, with the same code (``measure_quality``, 224 px):

    python benchmarks/subset_quality.py runs/probe/cloak3-eps4 ../shared/data/WebFace10/train 0 1 2
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from segue_cli.datasets import scan_image_folder  # noqa: E402
from segue_cli.evaluation.data import pair_by_relative_path  # noqa: E402
from segue_cli.evaluation.quality import measure_quality  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("protected", type=Path)
    parser.add_argument("clean", type=Path)
    parser.add_argument("identities", nargs="+", help="identity folder names to measure")
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args()
    pairs = [(p, c) for p, c in pair_by_relative_path(scan_image_folder(args.protected), scan_image_folder(args.clean)) if p.parent.name in set(args.identities)]
    if not pairs:
        sys.exit(f"no pairs for identities {args.identities} in {args.protected}")
    report = asdict(measure_quality(pairs, args.size))
    print(json.dumps({k: v for k, v in report.items() if not k.endswith("_note")}, indent=2))


if __name__ == "__main__":
    main()
