"""How far 8/255 can move dlib's embedding at all: per-photo PGD against the twin.

The identity term of `segue train --identity-weight` asks a generator to lower the cosine
similarity between dlib's descriptor of each protected photo and its identity's clean
centroid. This probe asks the same of plain per-photo PGD (white box, no distortion
layer, 30 steps of 2/255, L-inf 8/255) on a few WebFace10 photos, to tell a limit of the
budget from a limit of the generator:

    python research/identity_pgd_probe.py --identities 10 --per-identity 8

It also plays the nearest-class-mean attacker: the protected photos are enrolled (one
mean descriptor per identity) and every clean test photo of those identities is matched.

``--working-size 112`` makes the perturbation at 112 px and upsamples it to the photo,
as ``segue protect`` does with the generator's output; ``--distort`` measures it, and
optimises it (a fresh draw every step), through ``segue train``'s distortion layer
(blur, JPEG, resize, flips), as the identity term does:

    python research/identity_pgd_probe.py --identities 10 --per-identity 8 --working-size 112 --distort

``--universal`` asks what a code pattern could do: ONE perturbation per identity, shared
by all its photos (as a class-wise code pattern is), optimised on half of them and
measured on the other half, where the nearest-class-mean attacker is then played: the
held-out protected photos are enrolled and the identities' clean test photos matched:

    python research/identity_pgd_probe.py --identities 10 --per-identity 16 --working-size 112 --universal
"""

from __future__ import annotations

import argparse
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
    parser.add_argument("--universal", action="store_true",
                        help="one perturbation per identity, optimised on half its photos, measured on the rest")
    args = parser.parse_args()
    if args.universal:
        universal_probe(args)
        return

    import torch.nn.functional as F

    from segue_cli.faces.dlib_face_net import extract_chips
    from segue_cli.train.identity import class_centroids, prepare
    from segue_cli.imageio import load_image
    from segue_cli.nn import distortions

    rng = torch.Generator().manual_seed(0)
    layer = distortions.DistortionConfig()

    def seen(batch: torch.Tensor) -> torch.Tensor:
        if not args.distort:
            return batch
        # Not flipped: the chip's place is the clean photo's.
        return distortions.apply(batch, distortions.sample(len(batch), layer, rng).without_flips(), layer)

    folders = sorted(p for p in args.data.iterdir() if p.is_dir())[: args.identities]
    paths = [p for folder in folders for p in sorted(folder.glob("*.jpg"))[: args.per_identity]]
    photos = torch.stack([torch.from_numpy(load_image(p).rgb).permute(2, 0, 1) for p in paths])
    targets = torch.tensor([k for k in range(len(folders)) for _ in range(args.per_identity)])
    tests, test_targets = test_queries(args)
    # The test photos' chips are located with the training photos'; centroids of the clean
    # training photos only are what the PGD lowers.
    objective = prepare(torch.cat([photos, tests]), torch.cat([targets, test_targets]), len(folders))
    x, indices = photos.float() / 255, torch.arange(len(photos))
    with torch.no_grad():
        queries = F.normalize(objective.net(extract_chips(tests.double(), objective.matrices[len(photos):]).float()), dim=1)
        chips = extract_chips(photos.double(), objective.matrices[indices]).float()
        clean_descriptors = F.normalize(objective.net(chips), dim=1)
        objective.centroids = class_centroids(clean_descriptors, targets, len(folders))
        others = clean_descriptors @ objective.centroids.T
        clean = float(others[indices, targets].mean())
        others[indices, targets] = -2.0
    clean_ncm = ncm_accuracy(clean_descriptors, targets, queries, test_targets, len(folders))
    print(f"clean: cosine to own identity {clean:.3f}, to the nearest other identity {float(others.max(1).values.mean()):.3f}; "
          f"nearest class mean with them enrolled: {clean_ncm:.1%}")
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
            enrolled_chips = extract_chips(protected(delta) * 255.0, objective.matrices[indices])
            enrolled = F.normalize(objective.net(enrolled_chips), dim=1)
        print(f"{name}: cosine to own identity {clean:.3f} clean -> {moved:.3f} after PGD ({len(x)} photos); "
              f"nearest class mean with them enrolled: "
              f"{ncm_accuracy(enrolled, targets, queries, test_targets, len(folders)):.1%} ({len(tests)} clean test photos)")


def ncm_accuracy(enrolled: torch.Tensor, labels: torch.Tensor, queries: torch.Tensor, truth: torch.Tensor,
                 identities: int) -> float:
    """Nearest-class-mean attacker: enrolled unit descriptors give one centroid per identity;
    each query (unit descriptor) is matched to the closest."""
    from segue_cli.train.identity import class_centroids

    return float(((queries @ class_centroids(enrolled, labels, identities).T).argmax(1) == truth).float().mean())


def test_queries(args: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor]:
    """Every clean test photo of the probed identities (uint8) and its identity."""
    from segue_cli.imageio import load_image

    folders = sorted(p for p in (args.data.parent / "test").iterdir() if p.is_dir())[: args.identities]
    paths = [(k, p) for k, folder in enumerate(folders) for p in sorted(folder.glob("*.jpg"))]
    photos = torch.stack([torch.from_numpy(load_image(p).rgb).permute(2, 0, 1) for _, p in paths])
    return photos, torch.tensor([k for k, _ in paths])


def universal_probe(args: argparse.Namespace) -> None:
    import torch.nn.functional as F

    from segue_cli.faces.dlib_face_net import extract_chips
    from segue_cli.train.identity import prepare
    from segue_cli.imageio import load_image

    def load(root: Path, count: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        folders = sorted(p for p in root.iterdir() if p.is_dir())[: args.identities]
        paths = [(k, p) for k, folder in enumerate(folders) for p in sorted(folder.glob("*.jpg"))[:count]]
        photos = torch.stack([torch.from_numpy(load_image(p).rgb).permute(2, 0, 1) for _, p in paths])
        return photos, torch.tensor([k for k, _ in paths])

    photos, targets = load(args.data, args.per_identity)
    tests, test_targets = test_queries(args)
    fit = torch.cat([torch.nonzero(targets == k).flatten()[: args.per_identity // 2] for k in range(args.identities)])
    fitted = set(fit.tolist())
    held = torch.tensor([i for i in range(len(targets)) if i not in fitted])
    objective = prepare(torch.cat([photos, tests]), torch.cat([targets, test_targets]), args.identities)
    x = photos.float() / 255
    size = tuple(x.shape[-2:]) if not args.working_size else (args.working_size, args.working_size)

    def descriptors(batch: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        chips = extract_chips(batch * 255.0, objective.matrices[indices])
        return F.normalize(objective.net(chips), dim=1)

    def protected(delta: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        full = F.interpolate(delta, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return (x[indices] + full[targets[indices]].expand(-1, 3, -1, -1)).clamp(0, 1)

    with torch.no_grad():
        queries = descriptors(tests.float() / 255, len(photos) + torch.arange(len(tests)))

    with torch.no_grad():
        clean_held = descriptors(x[held], held)
    print(f"nearest class mean, clean held-out photos enrolled: {ncm_accuracy(clean_held, targets[held], queries, test_targets, args.identities):.1%} "
          f"({len(tests)} clean test photos, {args.identities} identities)")
    for name, channels in (("luminance", 1), ("colour", 3)):
        delta = torch.zeros(args.identities, channels, *size, requires_grad=True)
        for _ in range(args.steps):
            moved = (descriptors(protected(delta, fit), fit) * objective.centroids[targets[fit]]).sum(1).mean()
            (grad,) = torch.autograd.grad(moved, delta)
            with torch.no_grad():
                delta -= (1 / 255) * grad.sign()
                delta.clamp_(-8 / 255, 8 / 255)
        with torch.no_grad():
            held_desc = descriptors(protected(delta, held), held)
            fit_similarity = float((descriptors(protected(delta, fit), fit) * objective.centroids[targets[fit]]).sum(1).mean())
            held_similarity = float((held_desc * objective.centroids[targets[held]]).sum(1).mean())
        print(f"{name}, one pattern per identity: cosine to own identity {fit_similarity:.3f} (optimised photos), "
              f"{held_similarity:.3f} (held out); nearest class mean with the held-out protected photos enrolled: "
              f"{ncm_accuracy(held_desc, targets[held], queries, test_targets, args.identities):.1%}")


if __name__ == "__main__":
    main()
