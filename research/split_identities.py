"""Split WebFace10 by identity, to measure protection of people the generator never saw.

P112's "hashed" variant gives the generator codes it never saw, but the faces behind them
are the ten it was trained on, and a targeted poison aims each photo at one of those very
people. A real user is not in the training set. This writes two WebFace10-shaped trees,
``OUT/seen`` (the first ``--seen`` identities, to train a generator on) and
``OUT/unseen`` (the others, to protect and attack), each with train/ and test/ copied
from the data (nothing in the data is written):

    python research/split_identities.py runs/split --seen 5
    segue train runs/split/seen/train --out runs/v3/split-seen ...
    python research/p112.py --model runs/v3/split-seen/generator.safetensors --data runs/split/unseen \\
        --variant hashed --protocol p112-screen --out runs/split/eval-unseen --threads 1
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "WebFace10"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="folder for seen/ and unseen/ (must not exist)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="WebFace10 root with train/ and test/")
    parser.add_argument("--seen", type=int, default=5, help="how many identities (in sorted order) go to seen/")
    args = parser.parse_args()
    identities = sorted(p.name for p in (args.data / "train").iterdir() if p.is_dir())
    if not 1 <= args.seen < len(identities):
        raise SystemExit(f"--seen must be between 1 and {len(identities) - 1}")
    if args.out.exists():
        raise SystemExit(f"{args.out} exists; pass a new folder")
    for group, names in (("seen", identities[: args.seen]), ("unseen", identities[args.seen :])):
        for split in ("train", "test"):
            for name in names:
                shutil.copytree(args.data / split / name, args.out / group / split / name)
        print(f"{args.out / group}: {', '.join(names)}")


if __name__ == "__main__":
    main()
