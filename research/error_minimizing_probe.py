"""Purpose: does error-minimising noise (Huang et al., "Unlearnable Examples", ICLR 2021)
keep a from-scratch attacker from learning a few people who have about 19 photos each
(LFW48, issue 41), where every fixed or keyed pattern tried so far was learned too late?

The min-min of the paper, on the protected people's photos only: a ResNet18 surrogate (the
attacker's own architecture and size, trained from scratch) alternates TRAIN_STEPS batches of
ordinary training on the surrogate's pool with PGD_STEPS signed-gradient steps that make its
loss on every protected photo smaller, within +/-EPSILON/255 (at the photo's full size, seen
through the attacker's antialiased resize), until the surrogate classifies the perturbed
protected photos at STOP_ACCURACY or ROUNDS run out. Noise is per photo (``--mode sample``)
or one map per person (``--mode class``). With ``--augment`` the surrogate trains, and the noise
is optimised, through the flip+crop attacker's random mirrors and shifts. ``--noise-size 112``
optimises the noise at the attacker's size and writes it as 2 x 2 blocks at 224 px, so the
attacker's downscale keeps its amplitude instead of averaging a full-size noise away;
``--luma`` puts one map on R, G and B alike.

The surrogate's pool (``--pool``):
  others     the other people of the split, clean (an oracle: the attacker's own other classes,
             which a user never has; the paper's setting)
  DIR        a folder of other people (e.g. ../shared/data/WebFace10/train): what a shipped
             surrogate could know, none of them in the attacker's set
Protected people go in one at a time (``--one-at-a-time``, what one user's run would do) or
all together.

Writes OUT as an ImageFolder tree for `segue evaluate` (people not protected as their
decoded originals) and OUT.json with the settings, each round's figures and the time:

  python research/error_minimizing_probe.py runs/em/lfw-few-sample --data ../shared/data/LFW48/train --protect 5
  python research/error_minimizing_probe.py runs/em/lfw-all-sample --data ../shared/data/LFW48/train --protect 48
  segue evaluate --train-protected runs/em/lfw-few-sample --train-clean ../shared/data/LFW48/train \\
      --test ../shared/data/LFW48/test --protocol p112-few --threads 1 --out runs/em/lfw-few-sample-eval
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from research.p112 import identity_folders, protected_people  # noqa: E402
from research.trees import write_tree  # noqa: E402
from segue_cli.datasets import scan_image_folder  # noqa: E402
from segue_cli.imageio import load_image  # noqa: E402
from segue_cli.evaluation.countermeasure_ops import crop, flip  # noqa: E402
from segue_cli.nn.attackers import build_attacker  # noqa: E402
from segue_cli.train.views import resize  # noqa: E402  (the attacker's resize, as training uses it)


def load_people(root: Path, names: list[str]) -> tuple[torch.Tensor, list[int]]:
    """uint8 [N, 3, H, W] photos of ``names`` (in that order) and their positions in it."""
    photos, labels = [], []
    for label, name in enumerate(names):
        for path in sorted(p for p in (root / name).iterdir() if p.is_file()):
            photos.append(torch.from_numpy(load_image(path).rgb.copy()).permute(2, 0, 1))
            labels.append(label)
    return (torch.stack(photos) if photos else torch.zeros(0, 3, 1, 1, dtype=torch.uint8)), labels


class MinMin:
    def __init__(self, pool: torch.Tensor, pool_labels: torch.Tensor, protected: torch.Tensor,
                 protected_labels: torch.Tensor, classes: int, args: argparse.Namespace) -> None:
        self.pool, self.pool_labels = pool, pool_labels
        self.protected, self.protected_labels = protected, protected_labels
        self.args, self.size = args, args.image_size
        self.epsilon = args.epsilon / 255.0
        count = int(protected_labels.max()) + 1 if args.mode == "class" else len(protected_labels)
        side = args.noise_size or protected.shape[-1]
        self.full_size = protected.shape[-2:]
        self.delta = torch.zeros(count, 1 if args.luma else 3, side, side)  # in [0, 1] units, at --noise-size
        torch.manual_seed(args.seed)
        self.model = build_attacker("resnet18", classes, self.size)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=args.lr)
        self.rng = torch.Generator().manual_seed(args.seed)

    def view(self, x: torch.Tensor) -> torch.Tensor:
        """The photos as the surrogate sees them: resized, and with ``--augment`` mirrored and
        shifted as the flip+crop attacker does (expectation over its draws, one per step)."""
        x = resize(x, self.size)
        return crop(flip(x, self.rng), self.rng) if self.args.augment else x

    def full(self, delta: torch.Tensor) -> torch.Tensor:
        """Noise at the photos' size: nearest-neighbour blocks of the --noise-size map (so the
        attacker's resize keeps its amplitude), the luminance map on R, G and B alike."""
        if delta.shape[-2:] != self.full_size:
            delta = F.interpolate(delta, size=tuple(self.full_size), mode="nearest")
        return delta.expand(-1, 3, -1, -1)

    def noise_of(self, index: torch.Tensor) -> torch.Tensor:
        return self.full(self.delta[self.protected_labels[index]] if self.args.mode == "class" else self.delta[index])

    def perturbed(self, index: torch.Tensor) -> torch.Tensor:
        return (self.protected[index].float() / 255.0 + self.noise_of(index)).clamp(0, 1)

    def train_steps(self) -> float:
        """TRAIN_STEPS ordinary batches over pool + perturbed protected photos (the protected
        ones are a batch's share in proportion to their number)."""
        self.model.train()
        total = len(self.pool_labels) + len(self.protected_labels)
        losses = []
        for _ in range(self.args.train_steps):
            pick = torch.randint(total, (self.args.batch_size,), generator=self.rng)
            from_pool, from_protected = pick[pick < len(self.pool_labels)], pick[pick >= len(self.pool_labels)] - len(
                self.pool_labels)
            parts = [(self.pool[from_pool].float() / 255.0, self.pool_labels[from_pool])] if len(from_pool) else []
            parts += [(self.perturbed(from_protected), self.protected_labels[from_protected])] if len(
                from_protected) else []
            x, y = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
            loss = F.cross_entropy(self.model(self.view(x)), y)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            losses.append(float(loss.detach()))
        return float(np.mean(losses))

    def noise_steps(self) -> None:
        """PGD_STEPS signed steps of the noise that lower the surrogate's loss on the protected photos."""
        self.model.eval()
        step = self.epsilon * self.args.step_fraction
        if self.args.mode == "class":
            for _ in range(self.args.pgd_steps):
                delta = self.delta.clone().requires_grad_(True)
                for index in torch.arange(len(self.protected_labels)).split(self.args.batch_size):
                    x = (self.protected[index].float() / 255.0 + self.full(delta[self.protected_labels[index]])).clamp(0, 1)
                    F.cross_entropy(self.model(self.view(x)), self.protected_labels[index],
                                    reduction="sum").backward()
                assert delta.grad is not None
                self.delta = (self.delta - step * delta.grad.sign()).clamp(-self.epsilon, self.epsilon)
            return
        for index in torch.arange(len(self.protected_labels)).split(self.args.batch_size):
            clean = self.protected[index].float() / 255.0
            delta = self.delta[index].clone()
            for _ in range(self.args.pgd_steps):
                delta.requires_grad_(True)
                loss = F.cross_entropy(self.model(self.view((clean + self.full(delta)).clamp(0, 1))),
                                       self.protected_labels[index])
                (grad,) = torch.autograd.grad(loss, delta)
                delta = (delta.detach() - step * grad.sign()).clamp(-self.epsilon, self.epsilon)
            self.delta[index] = delta.detach()

    @torch.no_grad()
    def protected_accuracy(self) -> tuple[float, float]:
        """The surrogate's accuracy on the perturbed protected photos and on the same photos clean."""
        self.model.eval()
        index = torch.arange(len(self.protected_labels))
        hits_noisy, hits_clean = 0, 0
        for part in index.split(64):
            hits_noisy += int((self.model(resize(self.perturbed(part), self.size)).argmax(1)
                               == self.protected_labels[part]).sum())
            hits_clean += int((self.model(resize(self.protected[part].float() / 255.0, self.size)).argmax(1)
                               == self.protected_labels[part]).sum())
        return 100.0 * hits_noisy / len(index), 100.0 * hits_clean / len(index)

    def run(self, log: list[dict[str, object]], who: str) -> None:
        for round_ in range(1, self.args.rounds + 1):
            started = time.perf_counter()
            loss = self.train_steps()
            self.noise_steps()
            noisy, clean = self.protected_accuracy()
            log.append({"who": who, "round": round_, "train_loss": loss, "protected_noisy": noisy,
                        "protected_clean": clean, "seconds": time.perf_counter() - started})
            print(f"[{who}] round {round_}: loss {loss:.3f}, surrogate on protected: noisy {noisy:.1f}%, "
                  f"clean {clean:.1f}% ({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
            if noisy >= self.args.stop_accuracy and round_ >= self.args.min_rounds:
                break


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--data", type=Path, required=True, help="the clean train split: <identity>/<images>")
    parser.add_argument("--protect", type=int, default=5, help="protect N people spread over the folder order")
    parser.add_argument("--pool", default="others", help="'others' (the split's other people, clean) or a folder")
    parser.add_argument("--one-at-a-time", action="store_true", help="each protected person in a run of their own")
    parser.add_argument("--mode", choices=("sample", "class"), default="sample")
    parser.add_argument("--augment", action="store_true", help="the surrogate and the noise see flip+crop")
    parser.add_argument("--noise-size", type=int, default=0, help="optimise the noise at N x N, shown in blocks "
                        "at the photo's size (0: the photo's size)")
    parser.add_argument("--luma", action="store_true", help="one noise map on R, G and B alike (luminance)")
    parser.add_argument("--epsilon", type=float, default=8.0, help="L-inf budget, levels of 255")
    parser.add_argument("--step-fraction", type=float, default=0.1, help="PGD step as a share of epsilon")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--min-rounds", type=int, default=1)
    parser.add_argument("--train-steps", type=int, default=10)
    parser.add_argument("--pgd-steps", type=int, default=20)
    parser.add_argument("--stop-accuracy", type=float, default=99.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--image-size", type=int, default=112, help="the attacker's input size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()

    names = identity_folders(args.data)
    chosen = protected_people(names, args.protect)
    pool_root, pool_names = (args.data, [n for n in names if n not in chosen]) if args.pool == "others" else (
        Path(args.pool), identity_folders(Path(args.pool)))
    pool, pool_labels = load_people(pool_root, pool_names)
    print(f"pool: {len(pool_labels)} photos of {len(pool_names)} people from {pool_root}", file=sys.stderr)
    groups = [[name] for name in chosen] if args.one_at_a_time else [chosen]
    noise: dict[str, np.ndarray] = {}  # "identity/stem" -> levels, H x W x 3
    log: list[dict[str, object]] = []
    for group in groups:
        protected, local = load_people(args.data, group)
        labels = torch.tensor(local) + len(pool_names)
        minmin = MinMin(pool, torch.tensor(pool_labels), protected, labels, len(pool_names) + len(group), args)
        minmin.run(log, "+".join(group))
        offset = 0
        for person in group:
            stems = sorted(p.stem for p in (args.data / person).iterdir() if p.is_file())
            for stem in stems:
                index = torch.tensor([offset])
                noise[f"{person}/{stem}"] = np.round(minmin.noise_of(index)[0].permute(1, 2, 0).numpy() * 255.0)
                offset += 1

    dataset = scan_image_folder(args.data)
    write_tree(dataset, args.out, lambda item, rgb: noise.get(f"{item.identity}/{item.path.stem}"))
    record = {"settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
              "protected": chosen, "rounds": log, "seconds": time.perf_counter() - started}
    args.out.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.out} ({record['seconds']:.0f} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
