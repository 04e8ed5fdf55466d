"""How far 8/255 can move dlib's embedding at all: per-photo PGD against the twin.

The identity term of `segue train --identity-weight` asks a generator to lower the cosine
similarity between dlib's descriptor of each protected photo and its identity's clean
centroid. This probe asks the same of plain per-photo PGD (white box, no distortion
layer, 30 steps of 2/255, L-inf 8/255) on a few WebFace10 photos, to tell a limit of the
budget from a limit of the generator:

    python benchmarks/identity_pgd_probe.py --identities 10 --per-identity 8

``--working-size 112`` makes the perturbation at 112 px and upsamples it to the photo,
as ``segue protect`` does with the generator's output; ``--distort`` measures it, and
optimises it (a fresh draw every step), through ``segue train``'s distortion layer
(blur, JPEG, resize, flips), as the identity term does:

    python benchmarks/identity_pgd_probe.py --identities 10 --per-identity 8 --working-size 112 --distort
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "WebFace10" / "train"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--identities", type=int, default=3)
    parser.add_argument("--per-identity", type=int, default=6)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--working-size", type=int, default=0, help="perturb at this size, upsampled (0: the photo's)")
    parser.add_argument("--distort", action="store_true", help="through the training distortion layer")
    args = parser.parse_args()

    import torch.nn.functional as F

    from segue_cli.faces.dlib_face_net import extract_chips
    from segue_cli.identity_objective import prepare
    from segue_cli.imageio import load_image
    from segue_cli.nn import distortions

    rng = torch.Generator().manual_seed(0)
    layer = distortions.DistortionConfig()

    def seen(batch: torch.Tensor) -> torch.Tensor:
        if not args.distort:
            return batch
        params = distortions.sample(len(batch), layer, rng)
        unflipped = replace(params, hflip=torch.zeros_like(params.hflip), vflip=torch.zeros_like(params.vflip))
        return distortions.apply(batch, unflipped, layer)  # the chip's place is the clean photo's

    folders = sorted(p for p in args.data.iterdir() if p.is_dir())[: args.identities]
    paths = [p for folder in folders for p in sorted(folder.glob("*.jpg"))[: args.per_identity]]
    photos = torch.stack([torch.from_numpy(load_image(p).rgb).permute(2, 0, 1) for p in paths])
    targets = torch.tensor([k for k in range(len(folders)) for _ in range(args.per_identity)])
    objective = prepare(photos, targets, len(folders))
    x, indices = photos.float() / 255, torch.arange(len(photos))
    with torch.no_grad():
        clean = float(objective.similarity(x, indices, targets))
        chips = extract_chips(photos.double(), objective.matrices).float()
        to_centroids = F.normalize(objective.net(chips), dim=1) @ objective.centroids.T
        others = to_centroids.clone()
        others[indices, targets] = -2.0
    print(f"clean: cosine to own identity {clean:.3f}, to the nearest other identity {float(others.max(1).values.mean()):.3f}")
    size = tuple(x.shape[-2:]) if not args.working_size else (args.working_size, args.working_size)

    def protected(delta: torch.Tensor) -> torch.Tensor:
        full = delta if size == tuple(x.shape[-2:]) else F.interpolate(delta, size=x.shape[-2:], mode="bilinear",
                                                                       align_corners=False)
        return (x + full.expand(-1, 3, -1, -1)).clamp(0, 1)

    for name, channels in (("luminance", 1), ("colour", 3)):
        delta = torch.zeros(len(x), channels, *size, requires_grad=True)
        for _ in range(args.steps):
            similarity = objective.similarity(seen(protected(delta)), indices, targets)
            (grad,) = torch.autograd.grad(similarity, delta)
            with torch.no_grad():
                delta -= (2 / 255) * grad.sign()
                delta.clamp_(-8 / 255, 8 / 255)
        with torch.no_grad():
            moved = float(objective.similarity(seen(protected(delta)), indices, targets))
        print(f"{name}: cosine to own identity {clean:.3f} clean -> {moved:.3f} after PGD ({len(x)} photos)")


if __name__ == "__main__":
    main()
