"""The ceiling of a luminance targeted poison: per-photo PGD instead of a generator.

Every generator screened for issue 15 protects less than the shipped colour model. This
probe asks whether 8/255 of *luminance* can protect at all when nothing limits the
optimiser: each training photo gets its own perturbation, optimised against a surrogate
trained on clean photos, so that the surrogate takes it for the next identity (a targeted
adversarial poison, TAP). It is made as ``segue protect`` makes the generator's: one
channel at the 112 px working size, added to R, G and B alike, bilinearly upsampled to
the photo and rounded to 8 bits; it is optimised through the attacker's view (antialiased
resize to 112 px, grayscale for half the photos) and ``segue train``'s distortion layer
(a fresh draw every step). The photos are written as an ImageFolder tree for ``segue
evaluate``:

    python research/targeted_poison_probe.py runs/tap-probe --surrogate runs/v3/warm-decoys20-g28/state.pt [--classwise 28 --passes 20 --step 0.5]
    segue evaluate --train-protected runs/tap-probe --train-clean ../shared/data/WebFace10/train \\
        --test ../shared/data/WebFace10/test --protocol p112-screen --skip-baseline --threads 1

The surrogate is a ``segue train`` run's ``state.pt``; one trained on clean photos only
comes from ``--surrogate-warmup N --surrogate-period 100`` (its warm-up epochs never see
a perturbation). A per-photo poison cannot be shipped as it is (it needs the surrogate
and many passes at protect time, and it aims at the training identities), so its figure
is what a perfect generator of this recipe could reach, not a model.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from research.pgd_options import add_pgd_options, start_output  # noqa: E402
from segue_cli.datasets import decode_images, scan_image_folder  # noqa: E402
from segue_cli.imageio import save_image  # noqa: E402
from segue_cli.nn import distortions  # noqa: E402
from segue_cli.nn.surrogate import build_surrogate  # noqa: E402
from segue_cli.nn.delta import photo_with_delta  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "WebFace10" / "train"
WORKING_SIZE = 112


def attacker_view(photos: torch.Tensor, delta: torch.Tensor, gray: torch.Tensor) -> torch.Tensor:
    """Photos [B, 3, H, W] in [0, 1] plus a working-size luminance delta [B, 1, 112, 112],
    as the attacker trains on them: upsampled, rounded to 8 bits (straight-through),
    resized to 112 px, and in grayscale where ``gray``."""
    protected = photo_with_delta(photos, delta)
    view = F.interpolate(protected, size=(WORKING_SIZE, WORKING_SIZE), mode="bilinear", antialias=True, align_corners=False)
    return distortions.grayscale(view, gray)


def poison_batch(surrogate: torch.nn.Module, photos: torch.Tensor, wanted: torch.Tensor, args: argparse.Namespace,
                 rng: torch.Generator) -> torch.Tensor:
    """Targeted L-inf PGD (sign steps, a fresh distortion draw each step) for one batch."""
    config = distortions.DistortionConfig()
    delta = torch.zeros(len(photos), 1, WORKING_SIZE, WORKING_SIZE)
    step = args.step / 255
    for _ in range(args.steps):
        delta.requires_grad_(True)
        gray = torch.rand(len(photos), generator=rng) < 0.5
        params = distortions.sample(len(photos), config, rng)
        logits = surrogate(distortions.apply(attacker_view(photos, delta, gray), params, config))
        loss = F.cross_entropy(logits, wanted)
        (grad,) = torch.autograd.grad(loss, delta)
        delta = (delta.detach() - step * grad.sign()).clamp(-args.epsilon / 255, args.epsilon / 255)
    return delta.detach()


def classwise_delta(patterns: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Each photo's identity map [B, 1, 112, 112], upsampled from the G x G patterns."""
    return F.interpolate(patterns[truth], size=(WORKING_SIZE, WORKING_SIZE), mode="bilinear", align_corners=False)


def classwise_patterns(surrogate: torch.nn.Module, images: torch.Tensor, targets: torch.Tensor, classes: int,
                       args: argparse.Namespace, rng: torch.Generator) -> torch.Tensor:
    """One luminance map per identity [classes, 1, G, G], targeted PGD over shuffled batches."""
    config = distortions.DistortionConfig()
    patterns = torch.zeros(classes, 1, args.classwise, args.classwise)
    bound, step = args.epsilon / 255, args.step / 255
    started = time.perf_counter()
    for done in range(args.passes):
        order = torch.randperm(len(images), generator=rng)
        aimed = 0
        for start in range(0, len(images), args.batch):
            index = order[start : start + args.batch]
            photos, truth = images[index].float() / 255, targets[index]
            wanted = (truth + 1) % classes
            patterns.requires_grad_(True)
            gray = torch.rand(len(photos), generator=rng) < 0.5
            params = distortions.sample(len(photos), config, rng)
            view = attacker_view(photos, classwise_delta(patterns, truth), gray)
            logits = surrogate(distortions.apply(view, params, config))
            (grad,) = torch.autograd.grad(F.cross_entropy(logits, wanted), patterns)
            patterns = (patterns.detach() - step * grad.sign()).clamp(-bound, bound)
            aimed += int((logits.argmax(1) == wanted).sum())
        print(f"pass {done + 1}/{args.passes}, {time.perf_counter() - started:.0f} s: surrogate takes "
              f"{aimed / len(images):.3f} of the distorted photos for the aimed-at identity", flush=True)
    return patterns.detach()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--surrogate", type=Path, required=True, help="state.pt of a segue train run")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--limit", type=int, default=0, help="only the first N photos (a smoke run)")
    add_pgd_options(parser, steps=10, step=2.0, batch=32)
    parser.add_argument("--classwise", type=int, default=0, metavar="G",
                        help="one G x G map per identity instead of one perturbation per photo")
    parser.add_argument("--passes", type=int, default=10, help="with --classwise: passes over the photos")
    args = parser.parse_args()
    rng = start_output(args)

    dataset = scan_image_folder(args.data)
    items = dataset.items[: args.limit] if args.limit else dataset.items
    images, _, _ = decode_images([item.path for item in items], 2 * WORKING_SIZE, workers=1)
    targets = torch.tensor(dataset.targets[: len(items)])
    classes = len(dataset.identities)
    surrogate = build_surrogate(classes)
    surrogate.load_state_dict(torch.load(args.surrogate, map_location="cpu", weights_only=True)["surrogate"])
    surrogate.eval().requires_grad_(False)

    patterns = classwise_patterns(surrogate, images, targets, classes, args, rng) if args.classwise else None
    started = time.perf_counter()
    hits = {"clean_true": 0, "poisoned_true": 0, "poisoned_wanted": 0}
    for start in range(0, len(items), args.batch):
        photos = images[start : start + args.batch].float() / 255
        truth = targets[start : start + args.batch]
        wanted = (truth + 1) % classes
        if patterns is None:
            delta = poison_batch(surrogate, photos, wanted, args, rng)
        else:
            delta = classwise_delta(patterns, truth)
        no_gray = torch.zeros(len(photos), dtype=torch.bool)
        with torch.no_grad():
            clean = surrogate(attacker_view(photos, torch.zeros_like(delta), no_gray)).argmax(1)
            poisoned = surrogate(attacker_view(photos, delta, no_gray)).argmax(1)
        hits["clean_true"] += int((clean == truth).sum())
        hits["poisoned_true"] += int((poisoned == truth).sum())
        hits["poisoned_wanted"] += int((poisoned == wanted).sum())
        protected = torch.round(photo_with_delta(photos, delta) * 255).to(torch.uint8)
        for offset, rgb in enumerate(protected):
            item = items[start + offset]
            target = args.out / item.identity / (item.path.stem + ".png")
            target.parent.mkdir(parents=True, exist_ok=True)
            save_image(target, rgb.permute(1, 2, 0).numpy())
        done = start + len(photos)
        print(f"{done}/{len(items)} photos, {time.perf_counter() - started:.0f} s; surrogate on the poisoned photos: "
              f"true {hits['poisoned_true'] / done:.3f}, aimed-at {hits['poisoned_wanted'] / done:.3f} "
              f"(clean photos: true {hits['clean_true'] / done:.3f})", flush=True)


if __name__ == "__main__":
    main()
