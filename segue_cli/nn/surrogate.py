"""The surrogate classifier f that the generator is trained against (ResNet18)."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .attackers import build_attacker


def build_surrogate(num_classes: int, stem: str = "standard") -> nn.Module:
    """ResNet18 from scratch.

    ``stem="small"`` is the official code's choice for images <= 112 px (3x3 stride-1
    first conv, no max-pool). ``standard`` is torchvision's stem, which is also what the
    P112 attacker uses, and costs 16x less on a CPU at 112 px.
    """
    model = build_attacker("resnet18", num_classes)
    if stem == "small":
        model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    elif stem != "standard":
        raise ValueError(f"unknown surrogate stem {stem!r}")
    return model


def pgd_noise(
    model: nn.Module, images: torch.Tensor, targets: torch.Tensor, budget: float, steps: int,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None, step_size: float | None = None,
) -> torch.Tensor:
    """L-inf PGD noise that raises ``model``'s loss on ``images`` (detached).

    The generator is trained against it so its perturbation still works when an attacker
    adds adversarial noise of this budget (robust unlearnable examples). The attacker's
    adversarial training (``segue evaluate --attack at-R``) uses it too, with its own step.
    ``targets`` may be class indices or soft labels [B, K] (after Mixup or CutMix).
    """
    if budget <= 0 or steps <= 0:
        return torch.zeros_like(images)
    step_size = budget / steps if step_size is None else step_size
    noise = torch.zeros_like(images).uniform_(-budget, budget)
    base = images.detach()
    for _ in range(steps):
        noise.requires_grad_(True)
        inputs = (base + noise).clamp(0, 1)
        loss = nn.functional.cross_entropy(model(transform(inputs) if transform else inputs), targets)
        (grad,) = torch.autograd.grad(loss, noise)
        noise = (noise.detach() + step_size * grad.sign()).clamp(-budget, budget)
    return noise.detach()
