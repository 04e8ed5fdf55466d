"""How the perturbation looks, beyond PSNR: tint, colour share and class-wise sameness.

- **tint**: mean CIEDE2000 colour difference between the clean and the protected image
  after both are blurred with a Gaussian of sigma ``TINT_SIGMA`` px (at 224 px). The blur
  removes the fine texture a viewer does not see as colour, so what is left is the
  coarse colour cast a viewer does see ("the face turned magenta"). About 1 is the
  threshold of a just-noticeable difference; 2-3 is visible side by side.
- **chroma share**: the share of the perturbation's energy that is colour, i.e. delta
  minus its per-pixel mean over R, G and B. 0 for a luminance-only perturbation.
- **within-identity cosine**: the mean cosine between the perturbations of two photos of
  the same identity. Near 1, the perturbation is one pattern per identity, and averaging
  a few protected photos estimates it (the ``estimate-remove`` attack).

sRGB -> CIELAB (D65) and CIEDE2000 follow Sharma, Wu and Dalal (2005), the formulas
scikit-image implements; a test compares the two.
"""

from __future__ import annotations

import math

import torch

from ..nn.distortions import gaussian_blur

TINT_SIGMA = 4.0  # px at 224
_D65 = (0.95047, 1.0, 1.08883)
_RGB_TO_XYZ = torch.tensor([[0.412453, 0.357580, 0.180423],
                            [0.212671, 0.715160, 0.072169],
                            [0.019334, 0.119193, 0.950227]], dtype=torch.float64)


def srgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] sRGB in [0, 1] -> CIELAB (L in 0-100), D65 white."""
    rgb = rgb.to(torch.float64)
    linear = torch.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    xyz = torch.einsum("ij,bjhw->bihw", _RGB_TO_XYZ, linear)
    xyz = xyz / torch.tensor(_D65, dtype=torch.float64).view(1, 3, 1, 1)
    f = torch.where(xyz > 0.008856, xyz.clamp_min(1e-12) ** (1 / 3), 7.787 * xyz + 16 / 116)
    lightness = torch.where(xyz[:, 1] > 0.008856, 116 * f[:, 1] - 16, 903.3 * xyz[:, 1])
    return torch.stack([lightness, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], dim=1)


def ciede2000(lab1: torch.Tensor, lab2: torch.Tensor) -> torch.Tensor:
    """CIEDE2000 difference per pixel of two [B, 3, H, W] Lab images (kL = kC = kH = 1)."""
    l1, a1, b1 = lab1.unbind(1)
    l2, a2, b2 = lab2.unbind(1)
    c_mean = (torch.hypot(a1, b1) + torch.hypot(a2, b2)) / 2
    g = 0.5 * (1 - torch.sqrt(c_mean**7 / (c_mean**7 + 25.0**7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = torch.hypot(a1p, b1), torch.hypot(a2p, b2)
    h1p = torch.atan2(b1, a1p).remainder(2 * math.pi)
    h2p = torch.atan2(b2, a2p).remainder(2 * math.pi)
    dl, dc = l2 - l1, c2p - c1p
    dh = h2p - h1p
    dh = torch.where(dh > math.pi, dh - 2 * math.pi, torch.where(dh < -math.pi, dh + 2 * math.pi, dh))
    dh = torch.where(c1p * c2p == 0, torch.zeros_like(dh), dh)
    dhh = 2 * torch.sqrt(c1p * c2p) * torch.sin(dh / 2)
    l_mean, cp_mean = (l1 + l2) / 2, (c1p + c2p) / 2
    h_sum = h1p + h2p
    h_mean = torch.where(torch.abs(h1p - h2p) > math.pi,
                         torch.where(h_sum < 2 * math.pi, h_sum + 2 * math.pi, h_sum - 2 * math.pi), h_sum) / 2
    h_mean = torch.where(c1p * c2p == 0, h_sum, h_mean)
    t = (1 - 0.17 * torch.cos(h_mean - math.radians(30)) + 0.24 * torch.cos(2 * h_mean)
         + 0.32 * torch.cos(3 * h_mean + math.radians(6)) - 0.20 * torch.cos(4 * h_mean - math.radians(63)))
    d_theta = math.radians(30) * torch.exp(-(((torch.rad2deg(h_mean) - 275) / 25) ** 2))
    r_c = 2 * torch.sqrt(cp_mean**7 / (cp_mean**7 + 25.0**7))
    s_l = 1 + 0.015 * (l_mean - 50) ** 2 / torch.sqrt(20 + (l_mean - 50) ** 2)
    s_c = 1 + 0.045 * cp_mean
    s_h = 1 + 0.015 * cp_mean * t
    r_t = -torch.sin(2 * d_theta) * r_c
    return torch.sqrt((dl / s_l) ** 2 + (dc / s_c) ** 2 + (dhh / s_h) ** 2 + r_t * (dc / s_c) * (dhh / s_h))


def tint(clean: torch.Tensor, protected: torch.Tensor, sigma: float = TINT_SIGMA) -> torch.Tensor:
    """Per image: mean CIEDE2000 of the two images after a Gaussian blur of ``sigma`` px."""
    kernel = 2 * math.ceil(3 * sigma) + 1  # +-3 sigma
    blurred = [gaussian_blur(x.float(), kernel, sigma).clamp(0, 1) for x in (clean, protected)]
    return ciede2000(srgb_to_lab(blurred[0]), srgb_to_lab(blurred[1])).flatten(1).mean(dim=1)


def chroma_energy(delta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image: (energy of the colour part, total energy) of a [B, 3, H, W] perturbation."""
    colour = delta - delta.mean(dim=1, keepdim=True)
    return colour.pow(2).flatten(1).sum(1), delta.pow(2).flatten(1).sum(1)


class WithinIdentityCosine:
    """Mean pairwise cosine of perturbations within each identity, accumulated batch by
    batch: for n unit vectors u_i, mean over pairs of u_i . u_j = (|sum u_i|^2 - n) / (n (n - 1))."""

    def __init__(self) -> None:
        self._sums: dict[str, torch.Tensor] = {}
        self._counts: dict[str, int] = {}

    def add(self, identities: list[str], delta: torch.Tensor) -> None:
        units = delta.flatten(1).to(torch.float64)
        units = units / units.norm(dim=1, keepdim=True).clamp_min(1e-12)
        for identity, unit in zip(identities, units):
            self._sums[identity] = self._sums.get(identity, torch.zeros_like(unit)) + unit
            self._counts[identity] = self._counts.get(identity, 0) + 1

    def value(self) -> float | None:
        per_identity = [(float(self._sums[k].pow(2).sum()) - n) / (n * (n - 1))
                        for k, n in self._counts.items() if n >= 2]
        return sum(per_identity) / len(per_identity) if per_identity else None
