"""Protocol P112 end to end: protect WebFace10's train split with ``segue protect``,
then play the attacker with ``segue evaluate --protocol p112``.

Variants (see docs/benchmark-protocol.md):
  labels   each identity folder is the label (``--by-folder``)
  hashed   each identity protected with ``--identity webface10-<label>``: codes the
           generator never saw in training
  pseudo   labels from ``segue cluster`` instead of the folders (``--labels CSV``, the
           unsupervised scenario); the attacker still trains on the true identities
Every step is a plain ``segue`` command, printed before it runs, so any figure can be
re-made by hand. Results land in OUT/<variant>/eval*/results.json.

The protocols for people the model never saw (docs/benchmark-protocol.md) run the same way
on LFW48: ``p112-unseen`` protects everyone under hashed names (``--prefix lfw48``),
``p112-few`` only ``--few 5`` of them (the others are copied untouched):

  python research/p112.py --data ../shared/data/LFW48 --prefix lfw48 --variant hashed --protocol p112-unseen
  python research/p112.py --data ../shared/data/LFW48 --prefix lfw48 --variant hashed --few 5 --protocol p112-few
  python research/p112.py --variant hashed --few 2 --protocol p112-few        # WebFace10, 2 of 10

  python research/p112.py --model models/segue-webface10-112.safetensors --variant labels
  python research/p112.py --variant hashed --skip-baseline
  python research/p112.py --variant labels --attack jpeg-75 --attack gray --skip-baseline
  python research/p112.py --variant labels --arch embedding-dlib          # pretrained face recognition
  python research/p112.py --variant labels --image-size 64 --skip-baseline  # a departure, recorded
  python research/p112.py --variant hashed --protocol p112-screen --skip-baseline  # a screen, not P112
  python research/p112.py --variant hashed --cloak 10 --arch embedding-dlib --skip-baseline  # protect --cloak
  python research/p112.py --variant hashed --cloak 10 --cloak-split keep-colour --out runs/p112-keep --skip-baseline
  python research/p112.py --variant hashed --strength medium --out runs/p112-medium --skip-baseline
  segue cluster ../shared/data/WebFace10/train --k 10 --out runs/wf10-pseudo.csv
  python research/p112.py --variant pseudo --labels runs/wf10-pseudo.csv --skip-baseline
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "WebFace10"


def segue(*args: str) -> str:
    command = [sys.executable, "-m", "segue_cli", *args]
    print("$ segue " + shlex.join(args), file=sys.stderr, flush=True)
    completed = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    if completed.returncode != 0:
        raise SystemExit(f"segue {args[0]} failed with exit code {completed.returncode}")
    return completed.stdout


def protected_people(identities: list[str], count: int | None) -> list[str]:
    """All, or ``count`` spread evenly over the folder order (positions round(i * n / count)):
    the p112-few rule, so every model is measured on the same people."""
    if count is None:
        return identities
    return [identities[round(i * len(identities) / count)] for i in range(count)]


def identity_folders(train: Path) -> list[str]:
    """Identity folders in the order ``segue evaluate`` gives their classes (numbers by value)."""
    return sorted((p.name for p in train.iterdir() if p.is_dir()), key=lambda name: (0, int(name)) if name.isdecimal()
                  else (1, name))


def protect(model: str | None, train: Path, out: Path, variant: str, labels: Path | None, extra: list[str],
            prefix: str = "webface10", few: int | None = None) -> None:
    options = (["--model", model] if model else []) + extra  # passed to every protect call
    if few is not None and variant != "hashed":
        raise SystemExit("--few protects a few people under hashed names: use it with --variant hashed")
    if variant == "pseudo":
        if labels is None:
            raise SystemExit("--variant pseudo needs --labels CSV (from segue cluster)")
        segue("protect", str(train), "--out", str(out), "--labels", str(labels), *options)
    elif variant == "labels":
        segue("protect", str(train), "--out", str(out), "--by-folder", *options)
    elif variant == "hashed":
        chosen = set(protected_people(identity_folders(train), few))
        for identity in identity_folders(train):
            if identity in chosen:
                segue("protect", str(train / identity), "--out", str(out / identity), "--identity", f"{prefix}-{identity}",
                      *options)
            else:  # not protected: the attacker gets the original photos
                shutil.copytree(train / identity, out / identity)
    else:
        raise SystemExit(f"unknown variant {variant}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="generator checkpoint or ONNX file (default: the shipped model)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="WebFace10 root with train/ and test/")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "p112", help="work folder")
    parser.add_argument("--variant", choices=("labels", "hashed", "pseudo"), default="labels")
    parser.add_argument("--labels", type=Path, default=None, help="labels CSV of segue cluster (--variant pseudo)")
    parser.add_argument("--arch", action="append", default=None, help="attacker architecture (repeatable)")
    parser.add_argument("--attack", action="append", default=None, help="counter-measure (repeatable)")
    parser.add_argument("--protocol", default="p112", help="p112, or p112-screen to rank variants (not a P112 figure)")
    parser.add_argument("--image-size", type=int, default=None, help="attacker input size (a departure from 112)")
    parser.add_argument("--skip-baseline", action="store_true", help="do not train the clean baseline")
    parser.add_argument("--cloak", type=int, default=None, metavar="STEPS",
                        help="protect with --cloak --cloak-steps STEPS (the identity cloak against the face networks)")
    parser.add_argument("--cloak-epsilon", type=float, default=None, help="with --cloak: protect's --cloak-epsilon")
    parser.add_argument("--cloak-split", default=None, help="with --cloak: protect's --cloak-split (clip, keep-colour)")
    parser.add_argument("--cloak-networks", default=None, help="with --cloak: protect's --cloak-networks (default: all three)")
    parser.add_argument("--cloak-target", default=None, help="with --cloak: protect's --cloak-target (example, none)")
    parser.add_argument("--strength", default=None, help="protect's --strength preset (low, medium, high; default: high)")
    parser.add_argument("--prefix", default="webface10", help="hashed names are PREFIX-<folder> (lfw48 for LFW48)")
    parser.add_argument("--few", type=int, default=None, metavar="N",
                        help="protect only N people, spread over the folder order (p112-few); the rest stay clean")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()

    variant_dir = args.out / (args.variant + (f"-few{args.few}" if args.few else ""))
    protected = variant_dir / "protected"
    if not protected.exists():
        extra = [] if args.strength is None else ["--strength", args.strength]
        if args.cloak is not None:
            extra += ["--cloak", "--cloak-steps", str(args.cloak)] + (
                [] if args.cloak_epsilon is None else ["--cloak-epsilon", str(args.cloak_epsilon)]) + (
                [] if args.cloak_split is None else ["--cloak-split", args.cloak_split]) + (
                [] if args.cloak_networks is None else ["--cloak-networks", args.cloak_networks]) + (
                [] if args.cloak_target is None else ["--cloak-target", args.cloak_target])
        protect(args.model, args.data / "train", protected, args.variant, args.labels, extra, args.prefix, args.few)
    evaluate_args = ["evaluate", "--train-protected", str(protected), "--train-clean", str(args.data / "train"),
                     "--test", str(args.data / "test"), "--protocol", args.protocol, "--out", str(variant_dir / "eval"),
                     "--seed", str(args.seed), "--threads", str(args.threads), "--json"]
    for arch in args.arch or []:
        evaluate_args += ["--arch", arch]
    for attack in args.attack or []:
        evaluate_args += ["--attack", attack]
    if args.image_size is not None:
        evaluate_args += ["--image-size", str(args.image_size)]
    if args.skip_baseline:
        evaluate_args.append("--skip-baseline")
    summary = json.loads(segue(*evaluate_args).strip().splitlines()[-1])
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
