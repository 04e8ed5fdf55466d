"""The perturbation on its way to the photo, in torch: the one upsample (training's view
of a protected photo, the cloak, the research probes). ``photo.compose.apply_delta`` is
its numpy twin on the product path (the same bilinear rule, half-pixel centres, as
OpenCV's INTER_LINEAR), so what training rewards is what ``segue protect`` writes."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def upsample(delta: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """``delta`` [B, C, h, w] bilinearly resized to ``size`` (align_corners False)."""
    return F.interpolate(delta, size=tuple(size), mode="bilinear", align_corners=False)


def round_to_8_bits(x: torch.Tensor) -> torch.Tensor:
    """Rounded to 1/255 steps, straight-through: the gradient passes as if unrounded."""
    return x + (torch.round(x * 255.0) / 255.0 - x).detach()


def photo_with_delta(photos: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """The protected photo as ``segue protect`` writes it: delta (at the working size, one
    or three channels) upsampled to the photo, added, and rounded to 8 bits
    (straight-through, so gradients reach delta). No round trip when the sizes match."""
    if photos.shape[-2:] == delta.shape[-2:]:  # --photo-scale 1
        return (photos + delta).clamp(0, 1)
    return round_to_8_bits((photos + upsample(delta, photos.shape[-2:])).clamp(0, 1))
