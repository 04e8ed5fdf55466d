"""What each counter-measure does to the images (``countermeasures.COUNTERMEASURES`` names
them and says when each applies): numpy, Pillow and torch, imported here and never by the
registry. Random draws take an explicit ``torch.Generator`` so a run repeats exactly."""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from ..nn.distortions import gaussian_blur, resize_down_up
from ..nn.surrogate import pgd_noise
from .countermeasures import CROP_DEFAULT_PERCENT, CUTOUT_HOLES, at_step_size, blur_kernel

Batch = tuple[torch.Tensor, torch.Tensor]


# --- full resolution, while decoding -----------------------------------------------------


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """PIL's ITU-R 601-2 luma ("L"), copied back to 3 channels (torchvision Grayscale(3))."""
    luma = np.asarray(Image.fromarray(rgb).convert("L"))
    return np.repeat(luma[:, :, None], 3, axis=2)


def jpeg_reencode(rgb: np.ndarray, quality: int) -> np.ndarray:
    """Encode with PIL at ``quality`` (its default 4:2:0 subsampling) and decode again."""
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB")).copy()


# --- on the whole resized training set ---------------------------------------------------


def estimate_remove(images: torch.Tensor, targets: torch.Tensor, budget: int) -> torch.Tensor:
    """Estimate each identity's shared perturbation and subtract it (uint8 in, uint8 out).

    The estimate of identity c is mean(photos of c) - mean over identities of their means,
    clipped to +-budget/255. Face crops of different people share their average face, so
    what is left of an identity's mean is its own look plus whatever pattern its photos
    share; clipping to the budget the attacker knows segue uses keeps the subtraction from
    wiping out real appearance (skin tone, hair) beyond that. A class-wise perturbation of
    up to that budget is removed whatever its frequency or colour; a per-image one is not.
    Applied to the protected set and, in the baseline, to the clean set, so its cost to a
    clean attacker is measured too."""
    x = images.float() / 255.0
    classes = targets.unique()
    means = torch.stack([x[targets == c].mean(dim=0) for c in classes])
    overall = means.mean(dim=0)
    cleaned = x.clone()
    for c, mean in zip(classes.tolist(), means):
        pattern = (mean - overall).clamp(-budget / 255.0, budget / 255.0)
        cleaned[targets == c] -= pattern
    return (cleaned.clamp(0, 1) * 255.0).round().to(torch.uint8)


# --- per batch, on resized float images ---------------------------------------------------


def flip(x: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """Each photo mirrored left-right with probability 1/2 (torchvision RandomHorizontalFlip)."""
    mirrored = (torch.rand(len(x), generator=rng) < 0.5).to(x.device)
    return torch.where(mirrored.view(-1, 1, 1, 1), x.flip(-1), x)


def crop(x: torch.Tensor, rng: torch.Generator, percent: int = CROP_DEFAULT_PERCENT) -> torch.Tensor:
    """A random crop of each photo after reflect-padding PERCENT of its side on every edge
    (torchvision RandomCrop(size, padding, padding_mode="reflect")): shifts of up to that
    much, the augmentation that CIFAR-style training (and a scraper copying it) uses."""
    height, width = x.shape[-2:]
    pad = max(1, round(min(height, width) * percent / 100))
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    tops = torch.randint(0, 2 * pad + 1, (len(x),), generator=rng).tolist()
    lefts = torch.randint(0, 2 * pad + 1, (len(x),), generator=rng).tolist()
    return torch.stack([padded[i, :, top : top + height, left : left + width]
                        for i, (top, left) in enumerate(zip(tops, lefts))])


def cutout(x: torch.Tensor, rng: torch.Generator, holes: int = CUTOUT_HOLES) -> torch.Tensor:
    """DeVries & Taylor's Cutout: ``holes`` squares of half the side, centres uniform, clipped."""
    batch, _, height, width = x.shape
    side = max(1, min(height, width) // 2)
    mask = torch.ones(batch, 1, height, width, dtype=x.dtype, device=x.device)
    centres_y = torch.randint(0, height, (batch, holes), generator=rng)
    centres_x = torch.randint(0, width, (batch, holes), generator=rng)
    for i in range(batch):
        for cy, cx in zip(centres_y[i].tolist(), centres_x[i].tolist()):
            top, left = max(0, cy - side // 2), max(0, cx - side // 2)
            mask[i, :, top : min(height, cy + side // 2), left : min(width, cx + side // 2)] = 0
    return x * mask


def mixup(x: torch.Tensor, targets: torch.Tensor, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Zhang et al.'s Mixup with lambda ~ Beta(1, 1), i.e. uniform. ``targets`` are soft [B, K]."""
    lam = float(torch.rand((), generator=rng))
    order = torch.randperm(len(x), generator=rng).to(x.device)
    return lam * x + (1 - lam) * x[order], lam * targets + (1 - lam) * targets[order]


def cutmix(x: torch.Tensor, targets: torch.Tensor, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Yun et al.'s CutMix, lambda ~ Beta(1, 1): a box of area (1 - lambda) from a shuffled
    partner; the label weight is the box's actual (clipped) area."""
    height, width = x.shape[-2:]
    lam = float(torch.rand((), generator=rng))
    order = torch.randperm(len(x), generator=rng).to(x.device)
    cut = math.sqrt(1.0 - lam)
    cut_h, cut_w = int(height * cut), int(width * cut)
    cy, cx = int(torch.randint(0, height, (), generator=rng)), int(torch.randint(0, width, (), generator=rng))
    top, bottom = max(0, cy - cut_h // 2), min(height, cy + cut_h // 2)
    left, right = max(0, cx - cut_w // 2), min(width, cx + cut_w // 2)
    mixed = x.clone()
    mixed[:, :, top:bottom, left:right] = x[order][:, :, top:bottom, left:right]
    kept = 1.0 - (bottom - top) * (right - left) / (height * width)
    return mixed, kept * targets + (1 - kept) * targets[order]


def adversarial_examples(model: nn.Module, x: torch.Tensor, targets: torch.Tensor, budget: int, steps: int) -> torch.Tensor:
    """PGD (random start, sign steps) within the L-inf budget R/255, clamped to [0, 1].

    The noise is computed with the model in eval mode so the extra forward passes do not
    move BatchNorm's running statistics; training then resumes on the returned batch.
    """
    was_training = model.training
    model.eval()
    try:
        noise = pgd_noise(model, x, targets, budget / 255, steps, step_size=at_step_size(budget, steps))
    finally:
        model.train(was_training)
    return (x + noise).clamp(0, 1)


# --- each counter-measure's ``apply``, by stage (``countermeasures.Countermeasure``) ----------
def gray(rgb: np.ndarray, _: Any) -> np.ndarray:
    return to_gray(rgb)


def blur_batch(x: torch.Tensor, targets: torch.Tensor, rng: torch.Generator, model: Any, sigma: float) -> Batch:
    return gaussian_blur(x, blur_kernel(sigma), sigma), targets


def down_batch(x: torch.Tensor, targets: torch.Tensor, rng: torch.Generator, model: Any, percent: int) -> Batch:
    return resize_down_up(x, percent / 100).clamp(0, 1), targets


def flip_batch(x: torch.Tensor, targets: torch.Tensor, rng: torch.Generator, model: Any, _: Any) -> Batch:
    return flip(x, rng), targets


def crop_batch(x: torch.Tensor, targets: torch.Tensor, rng: torch.Generator, model: Any, percent: int) -> Batch:
    return crop(x, rng, percent), targets


def cutout_batch(x: torch.Tensor, targets: torch.Tensor, rng: torch.Generator, model: Any, _: Any) -> Batch:
    return cutout(x, rng), targets


def mixup_batch(x: torch.Tensor, targets: torch.Tensor, rng: torch.Generator, model: Any, _: Any) -> Batch:
    return mixup(x, targets, rng)


def cutmix_batch(x: torch.Tensor, targets: torch.Tensor, rng: torch.Generator, model: Any, _: Any) -> Batch:
    return cutmix(x, targets, rng)


def at_batch(x: torch.Tensor, targets: torch.Tensor, rng: torch.Generator, model: Any, parameter: tuple[int, int]) -> Batch:
    if model is None:
        raise ValueError("adversarial training needs the model")
    return adversarial_examples(model, x, targets, *parameter), targets
