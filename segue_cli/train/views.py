"""What the surrogate sees of a protected photo: what an attacker sees (``photo_scale``).

Photos are loaded at ``photo_scale`` x the working size, the generator runs on them
resized to the working size, its perturbation is upsampled to the photo as ``segue
protect`` does, the result is rounded to 8 bits (straight-through) and resized back to
the working size as protocol P112's attacker does. A perturbation that only works at
the working size is not rewarded. With ``gray_p`` > 0 that share of photos reaches the
surrogate in grayscale, as an attacker who squeezes colour out sees them, so a
protection carried by colour alone is not rewarded either.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from ..nn import distortions
from ..nn.delta import photo_with_delta

if TYPE_CHECKING:
    from ..nn.generator import SegueGenerator
    from .config import TrainConfig


def photo_size(config: TrainConfig) -> int:
    return round(config.image_size * config.photo_scale)


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """The attacker's resize: antialiased bilinear to size x size (P112's torchvision Resize)."""
    if x.shape[-2:] == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def protected_photo(config: TrainConfig, generator: SegueGenerator, photos: torch.Tensor,
                    signs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(delta at the working size, the protected photo at the photos' size, as protect writes it)."""
    delta = config.epsilon * generator(resize(photos, config.image_size), signs)
    return delta, photo_with_delta(photos, delta)


def seen_by_attacker(config: TrainConfig, protected: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """A protected photo as the attacker sees it: at the working size, ``gray_p`` of them in grayscale."""
    view = resize(protected, config.image_size)
    if config.gray_p > 0:
        view = distortions.grayscale(view, torch.rand(len(view), generator=rng) < config.gray_p)
    return view


def attacker_view(config: TrainConfig, generator: SegueGenerator, photos: torch.Tensor,
                  signs: torch.Tensor, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(delta at the working size, the protected photo as the attacker sees it at the working size)."""
    delta, protected = protected_photo(config, generator, photos, signs)
    return delta, seen_by_attacker(config, protected, rng)
