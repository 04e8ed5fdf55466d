"""A per-photo identity cloak against dlib's face network, written out for the real attacker.

``identity_pgd_probe.py`` found that per-photo PGD moves dlib's descriptors far enough that
a nearest-class-mean attacker who enrols the cloaked photos matches almost no clean test
photo, where every generator trained here moved nothing. This script writes such cloaked
photos as an ImageFolder tree, so that ``segue evaluate --arch embedding-dlib`` plays the
attacker with its own face location and alignment on all 130 photos of an identity. Only
the first ``--cloak N`` identities are cloaked, the others stay clean (people who do not
protect themselves), as on a real platform:

    python research/identity_cloak.py runs/cloak --cloak 3
    segue evaluate --train-protected runs/cloak --train-clean ../shared/data/WebFace10/train \\
        --test ../shared/data/WebFace10/test --protocol p112 --arch embedding-dlib --skip-baseline --threads 1

Transfer (issue 32): the same tree judged by SFace, a network the cloak is never made
against (``--arch embedding-sface``); knobs that may help it transfer: ``--grid-divisor``
(a smoother cloak), ``--momentum`` (MI-FGSM), ``--model-noise`` (a perturbed twin every
step), ``--jitter`` (each step's crops moved and scaled at random), ``--texture`` (the reach
follows the face's local contrast, for SSIM), ``--toward-person POOL``
(each cloaked person pulled toward their own target, the farthest person of POOL:
docs/research/2026-12-07-cloak-targets.md). The report's protected-people line gives the cloaked people's recall against the
same people's with nobody cloaked.

Each photo is cloaked by ``segue protect --cloak``'s own code (``segue_cli/photo/cloak.py``: one
luminance channel over the face region, ``--steps`` steps through the training distortion layer,
within 8/255), on the clean photo (no generator), against either the photo's own clean
descriptor (``--reference self``, what ``segue protect --cloak`` does) or the mean clean
descriptor of that person's photos (``--reference centroid``, which a user who protects
all their photos at once has). White box: the attacker's network is the one the cloak was
made against. Session 10's figures in docs/evaluation.md came from an earlier form of this
script (commit 60ab53a: its own loop, a 112 px grid over the whole crop, the centroid).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from typing import Any
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from research.pgd_options import add_pgd_options, start_output  # noqa: E402
from segue_cli.faces.networks import SURROGATES  # noqa: E402
from segue_cli.photo.cloak_targets import farthest_targets  # noqa: E402
from segue_cli.photo.cloak import CloakConfig, IdentityCloak  # noqa: E402
from segue_cli.datasets import scan_image_folder  # noqa: E402
from segue_cli.train.identity import class_centroids  # noqa: E402
from segue_cli.imageio import load_image, save_image  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "WebFace10" / "train"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--cloak", type=int, default=3, help="cloak the first N identities; the rest are copied clean")
    parser.add_argument("--reference", choices=("self", "centroid"), default="self",
                        help="move each photo away from its own clean descriptor, or from its person's mean")
    parser.add_argument("--grid-divisor", type=int, default=2, help="the cloak's grid: the face region / this (smoother)")
    parser.add_argument("--momentum", type=float, default=0.0, help="MI-FGSM momentum (0: plain signed steps)")
    parser.add_argument("--model-noise", type=float, default=0.0, help="std of the twin's channel-scale noise per step")
    parser.add_argument("--networks", default=",".join(SURROGATES),
                        help=f"the face networks the cloak is made against, comma-separated (default: all of {', '.join(SURROGATES)})")
    parser.add_argument("--smoothing", type=float, default=0.0, help="weight of the objective on a Gaussian-smoothed copy (LowKey)")
    parser.add_argument("--jitter", type=float, default=0.0,
                        help="CloakConfig.jitter: each step's crops moved and scaled by up to this share of their side")
    parser.add_argument("--texture", type=float, default=0.0,
                        help="CloakConfig.texture: the share of each pixel's reach that follows the face's local contrast")
    parser.add_argument("--target", choices=("none", "example"), default="none",
                        help="CloakConfig.target: 'example' pulls every photo toward the shipped portrait (protect's default)")
    parser.add_argument("--toward", type=Path, default=None,
                        help="a photo of another face: every cloak also pulls toward its descriptor (Fawkes' target)")
    parser.add_argument("--toward-person", default=None, metavar="POOL",
                        help="one target per cloaked person (Fawkes): the clean mean of the person in POOL farthest "
                             "from them, each used once while any is left; POOL is 'data' (the set's own other people) "
                             "or an ImageFolder tree of people outside the set; 'next': the set's next person in "
                             "numeric order, as research/cloak_target_platform.sh pairs them")
    add_pgd_options(parser, steps=30, step=2.0, batch=None)
    args = parser.parse_args()
    start_output(args)
    cloak = IdentityCloak(CloakConfig(steps=args.steps, step=args.step, grid_divisor=args.grid_divisor,
                                      momentum=args.momentum, model_noise=args.model_noise,
                                      networks=tuple(args.networks.split(",")), smoothing=args.smoothing, jitter=args.jitter,
                                      texture=args.texture,
                                      target=args.target))
    dataset = scan_image_folder(args.data)
    toward = None if args.toward is None else cloak.descriptors(load_image(args.toward).rgb)
    targets = None if args.toward_person is None else person_targets(cloak, dataset, args)
    started = time.perf_counter()
    for rank, identity in enumerate(dataset.identities):
        items = [item for item in dataset.items if item.identity == identity]
        folder = args.out / identity
        folder.mkdir(parents=True)
        if rank >= args.cloak:
            for item in items:
                shutil.copy2(item.path, folder / item.path.name)
            continue
        photos = [load_image(item.path).rgb for item in items]
        reference = None
        if args.reference == "centroid":
            described = [cloak.descriptors(rgb) for rgb in photos]
            reference = {}
            for name in cloak.nets:
                vectors = F.normalize(torch.from_numpy(np.stack([d[name] for d in described])), dim=1)
                reference[name] = class_centroids(vectors, torch.zeros(len(vectors), dtype=torch.long), 1)[0].numpy()
        similarities = []
        for item, rgb in zip(items, photos):
            result = cloak.cloak(rgb, rgb, args.epsilon / 255, reference, toward if targets is None else targets[identity])
            similarities.append(result.similarity)
            save_image(folder / (item.path.stem + ".png"), result.pixels)
        print(f"identity {identity}: {len(items)} photos cloaked, mean similarity {np.mean(similarities):.3f} "
              f"({time.perf_counter() - started:.0f} s)", flush=True)


def person_centroids(cloak: IdentityCloak, root: Path) -> dict[str, dict[str, np.ndarray]]:
    """{person: {network: the unit mean of their faces}}, as ``--cloak-target FOLDER`` reads a target."""
    return {person: cloak.target_descriptors(str(root / person)) for person in scan_image_folder(root).identities}


def person_targets(cloak: IdentityCloak, dataset: Any, args: argparse.Namespace) -> dict[str, dict[str, np.ndarray]]:
    """Each cloaked person's target: the farthest pool person (mean cosine over the networks) not yet
    taken, by the rule of ``segue protect --cloak-target others`` (photo/cloak_targets.py)."""
    own = person_centroids(cloak, args.data)
    pool = own if args.toward_person in ("data", "next") else person_centroids(cloak, Path(args.toward_person))
    cloaked = {identity: own[identity] for identity in dataset.identities[:args.cloak]}
    if args.toward_person == "next":
        ordered = sorted(own, key=lambda name: (not name.isdigit(), int(name) if name.isdigit() else 0, name))
        chosen = {identity: ordered[(ordered.index(identity) + 1) % len(ordered)] for identity in cloaked}
    else:
        chosen = farthest_targets(cloaked, pool)
    for identity, target in chosen.items():
        closeness = np.mean([own[identity][n] @ pool[target][n] for n in cloak.nets])
        print(f"identity {identity}: pulled toward {target} (mean cosine {closeness:.3f})", flush=True)
    return {identity: pool[target] for identity, target in chosen.items()}


if __name__ == "__main__":
    main()
