"""A per-photo identity cloak against dlib's face network, written out for the real attacker.

``identity_pgd_probe.py`` found that per-photo PGD moves dlib's descriptors far enough that
a nearest-class-mean attacker who enrols the cloaked photos matches almost no clean test
photo, where every generator trained here moved nothing. This script writes such cloaked
photos as an ImageFolder tree, so that ``segue evaluate --arch embedding-dlib`` plays the
attacker with its own face location and alignment on all 130 photos of an identity. Only
the first ``--cloak N`` identities are cloaked, the others stay clean (people who do not
protect themselves), as on a real platform:

    python benchmarks/identity_cloak.py runs/cloak --cloak 3
    segue evaluate --train-protected runs/cloak --train-clean ../shared/data/WebFace10/train \\
        --test ../shared/data/WebFace10/test --protocol p112 --arch embedding-dlib --skip-baseline --threads 1

Each photo's perturbation is made as ``segue protect`` makes the generator's: one
luminance channel at the 112 px working size, upsampled to the photo and rounded to 8
bits, within 8/255. It lowers the cosine similarity between the twin's descriptor of the
photo (through ``segue train``'s distortion layer, a fresh draw each step) and the mean
clean descriptor of that person's own photos, which a user has. White box: the attacker's
network is the one the cloak was made against. About 30 steps of dlib's network per photo,
1.4-1.7 s a photo on one CPU thread here: a per-photo cloak, like Fawkes, not a generator.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pgd_options import add_pgd_options, start_output  # noqa: E402
from segue_cli.datasets import scan_image_folder  # noqa: E402
from segue_cli.identity_objective import prepare  # noqa: E402
from segue_cli.imageio import load_image, save_image  # noqa: E402
from segue_cli.nn import distortions  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "WebFace10" / "train"
WORKING_SIZE = 112


def cloak_identity(photos: torch.Tensor, args: argparse.Namespace, rng: torch.Generator) -> torch.Tensor:
    """Cloaked uint8 photos [N, 3, H, W] of ONE person, made against their own clean centroid."""
    objective = prepare(photos, torch.zeros(len(photos), dtype=torch.long), 1)
    layer = distortions.DistortionConfig()
    cloaked = []
    for start in range(0, len(photos), args.batch):
        x = photos[start : start + args.batch].float() / 255
        indices = torch.arange(start, start + len(x))
        owner = torch.zeros(len(x), dtype=torch.long)
        delta = torch.zeros(len(x), 1, WORKING_SIZE, WORKING_SIZE, requires_grad=True)

        def protected(d: torch.Tensor) -> torch.Tensor:
            full = F.interpolate(d, size=x.shape[-2:], mode="bilinear", align_corners=False)
            return (x + full.expand(-1, 3, -1, -1)).clamp(0, 1)

        for _ in range(args.steps):
            params = distortions.sample(len(x), layer, rng).without_flips()  # the chip's place is the clean photo's
            similarity = objective.similarity(distortions.apply(protected(delta), params, layer), indices, owner)
            (grad,) = torch.autograd.grad(similarity, delta)
            with torch.no_grad():
                delta -= (args.step / 255) * grad.sign()
                delta.clamp_(-args.epsilon / 255, args.epsilon / 255)
        with torch.no_grad():
            cloaked.append(torch.round(protected(delta) * 255).to(torch.uint8))
    return torch.cat(cloaked)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--cloak", type=int, default=3, help="cloak the first N identities; the rest are copied clean")
    add_pgd_options(parser, steps=30, step=2.0, batch=16)
    args = parser.parse_args()
    rng = start_output(args)
    dataset = scan_image_folder(args.data)
    started = time.perf_counter()
    for rank, identity in enumerate(dataset.identities):
        items = [item for item in dataset.items if item.identity == identity]
        folder = args.out / identity
        folder.mkdir(parents=True)
        if rank >= args.cloak:
            for item in items:
                shutil.copy2(item.path, folder / item.path.name)
            continue
        photos = torch.stack([torch.from_numpy(load_image(item.path).rgb).permute(2, 0, 1) for item in items])
        for item, rgb in zip(items, cloak_identity(photos, args, rng)):
            save_image(folder / (item.path.stem + ".png"), rgb.permute(1, 2, 0).numpy())
        print(f"identity {identity}: {len(items)} photos cloaked ({time.perf_counter() - started:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
