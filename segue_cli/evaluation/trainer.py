"""Train one attacker from scratch and test it on clean photos after every epoch.

P112 step 3: Adam (lr 5e-4), cosine annealing over all steps, batch 32, cross-entropy,
no augmentation beyond the scenario's counter-measures, inputs in [0, 1] without
normalisation. The same seed gives the same initial weights and batch order, so the
baseline and the protected run differ only in their training images.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..datasets import batch_order
from ..progress import ProgressCallback, ProgressEvent, ignore, start_task, step
from ..nn.attackers import build_attacker
from .countermeasures import Scenario, augment_batch


@dataclass(frozen=True)
class TrainSettings:
    epochs: int
    batch_size: int
    lr: float
    seed: int
    device: torch.device
    channels_last: bool = True
    eval_batch_size: int = 100
    bf16: bool = False  # autocast to bfloat16: about 2x faster on CPUs with AVX512-BF16, not P112

    def autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)


@dataclass
class EpochStats:
    epoch: int
    loss: float
    train_accuracy: float  # percent, on the (augmented) training batches
    test_accuracy: float  # percent, clean test set
    lr: float  # at the end of the epoch
    seconds: float  # training and testing
    test_seconds: float


@dataclass
class AttackRun:
    arch: str
    attack: str
    train_set: str  # "protected" or "clean" (the baseline)
    final_accuracy: float
    peak_accuracy: float
    peak_epoch: int
    per_identity: dict[str, float]  # final epoch, percent
    history: list[EpochStats] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _as_input(images: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    x = images.to(device, non_blocking=True).float().div_(255.0)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


@torch.inference_mode()
def predict(model: nn.Module, images: torch.Tensor, settings: TrainSettings) -> torch.Tensor:
    model.eval()
    with settings.autocast():
        outputs = [
            model(_as_input(images[i : i + settings.eval_batch_size], settings.device, settings.channels_last)).argmax(1).cpu()
            for i in range(0, len(images), settings.eval_batch_size)
        ]
    return torch.cat(outputs)


def accuracy(predicted: torch.Tensor, targets: torch.Tensor) -> float:
    return 100.0 * float((predicted == targets).float().mean())


def per_identity_accuracy(predicted: torch.Tensor, targets: torch.Tensor, identities: list[str]) -> dict[str, float]:
    return {
        name: accuracy(predicted[targets == k], targets[targets == k]) if bool((targets == k).any()) else float("nan")
        for k, name in enumerate(identities)
    }


def train_attacker(
    arch: str,
    scenario: Scenario,
    train_set: str,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    identities: list[str],
    settings: TrainSettings,
    progress: ProgressCallback | None = None,
) -> AttackRun:
    """``train`` and ``test`` are (uint8 images [N, 3, S, S], targets [N]) already at the
    attacker's size, with any full-resolution counter-measure already applied."""
    emit = progress or ignore
    started = time.perf_counter()
    images, targets = train
    test_images, test_targets = test
    num_classes, image_size = len(identities), images.shape[-1]

    torch.manual_seed(settings.seed)  # same initial weights for the baseline and the protected run
    model = build_attacker(arch, num_classes, image_size).to(settings.device)
    if settings.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    rng = torch.Generator().manual_seed(settings.seed)
    steps_per_epoch = len(batch_order(len(targets), settings.batch_size, torch.Generator().manual_seed(0)))
    total_steps = settings.epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total_steps))

    run = AttackRun(arch=arch, attack=scenario.name, train_set=train_set, final_accuracy=0.0, peak_accuracy=0.0,
                    peak_epoch=0, per_identity={}, steps=total_steps)
    name = f"{arch} {scenario.name} {train_set}"
    emit(start_task("run_start", "run", name, settings.epochs * steps_per_epoch,
                    {"arch": arch, "attack": scenario.name, "train_set": train_set, "epochs": settings.epochs,
                     "steps": steps_per_epoch}))
    predicted = torch.empty(0, dtype=torch.long)
    for epoch in range(1, settings.epochs + 1):
        epoch_started = time.perf_counter()
        model.train()
        loss_sum, correct, seen = 0.0, 0.0, 0
        for index in batch_order(len(targets), settings.batch_size, rng):
            x = _as_input(images[index], settings.device, settings.channels_last)
            soft = F.one_hot(targets[index], num_classes).float().to(settings.device)
            with settings.autocast():
                x, soft = augment_batch(x, soft, scenario, rng, model)
                logits = model(x).float()
            loss = F.cross_entropy(logits, soft)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            loss_sum += float(loss.detach()) * len(index)
            correct += float((logits.detach().argmax(1) == soft.argmax(1)).sum())
            seen += len(index)
            emit(step("step", "run", f"epoch {epoch}/{settings.epochs} loss {float(loss.detach()):.3f}",
                      {"epoch": epoch, "loss": float(loss.detach())}))
        test_started = time.perf_counter()
        predicted = predict(model, test_images, settings)
        stats = EpochStats(
            epoch=epoch, loss=loss_sum / max(seen, 1), train_accuracy=100.0 * correct / max(seen, 1),
            test_accuracy=accuracy(predicted, test_targets), lr=optimizer.param_groups[0]["lr"],
            seconds=time.perf_counter() - epoch_started, test_seconds=time.perf_counter() - test_started,
        )
        run.history.append(stats)
        if stats.test_accuracy > run.peak_accuracy or epoch == 1:
            run.peak_accuracy, run.peak_epoch = stats.test_accuracy, epoch
        figures = (f"epoch {epoch}/{settings.epochs} loss {stats.loss:.3f} train {stats.train_accuracy:.0f}% "
                   f"test {stats.test_accuracy:.1f}%")
        # One permanent line per epoch, so logs of unattended runs show progress too.
        emit(ProgressEvent("epoch_end", {"arch": arch, "attack": scenario.name, "train_set": train_set, **asdict(stats)},
                           task="run", text=figures, line=f"{name}: {figures}"))
    run.final_accuracy = run.history[-1].test_accuracy
    run.per_identity = per_identity_accuracy(predicted, test_targets, identities)
    run.seconds = time.perf_counter() - started
    emit(ProgressEvent("run_end", run.to_dict()))
    return run
