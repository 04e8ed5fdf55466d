"""Distortion layer T, used only while training the generator (never exported).

Sampling is split from applying (as in Kornia's augmentation base): :func:`sample`
draws the random parameters for a batch, :func:`apply` is deterministic and
differentiable given them, so tests can replay a distortion exactly.

The paper's layer is Gaussian blur (k=3, sigma=0.2), sharpness (factor 2) and random
flips (p=0.1 each); adversarial input noise (PGD, rho_d) is done by the trainer since it
needs the surrogate. The paper claims JPEG robustness but its code never trains for it,
and an attacker resizes: we add a differentiable JPEG and a down-then-up resize.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class DistortionConfig:
    blur_kernel: int = 3
    blur_sigma: float = 0.2
    sharpness: float = 2.0
    flip_p: float = 0.1
    jpeg_p: float = 0.5
    jpeg_quality: tuple[int, int] = (50, 95)
    resize_p: float = 0.5
    resize_scale: tuple[float, float] = (0.5, 1.0)

    def __post_init__(self) -> None:
        from ..choices import check_options, check_ranges

        checks = [
            (self.blur_kernel >= 1 and self.blur_kernel % 2 == 1, "the blur kernel must be an odd size >= 1"),
            (self.blur_sigma >= 0, "--blur-sigma must be >= 0 (0: no blur)"),
            (self.sharpness >= 0, "--sharpness must be >= 0 (1: unchanged, 2: the paper's)"),
            *[(0.0 <= p <= 1.0, f"--{name} must be a probability between 0 and 1, got {p}")
              for name, p in (("flip-p", self.flip_p), ("jpeg-p", self.jpeg_p), ("resize-p", self.resize_p))],
            (1 <= self.jpeg_quality[0] <= self.jpeg_quality[1] <= 100, "JPEG qualities must be 1 <= low <= high <= 100"),
            (0 < self.resize_scale[0] <= self.resize_scale[1] <= 1, "resize scales must be 0 < low <= high <= 1"),
        ]
        check_options(checks)
        check_ranges(self, {"blur_kernel": (1, 31), "blur_sigma": (0, 10), "sharpness": (0, 10), "flip_p": (0, 1),
                            "jpeg_p": (0, 1), "resize_p": (0, 1)})


@dataclass(frozen=True)
class DistortionParams:
    hflip: torch.Tensor  # bool [B]
    vflip: torch.Tensor  # bool [B]
    jpeg_quality: int | None
    resize_scale: float | None

    def without_flips(self) -> "DistortionParams":
        """The same draw with no flips: for terms that need the face where the clean photo
        has it (the identity term cuts dlib's chip at the clean photo's landmarks)."""
        return replace(self, hflip=torch.zeros_like(self.hflip), vflip=torch.zeros_like(self.vflip))


def sample(batch: int, config: DistortionConfig, rng: torch.Generator) -> DistortionParams:
    def uniform() -> float:
        return float(torch.rand((), generator=rng))

    quality = None
    if uniform() < config.jpeg_p:
        low, high = config.jpeg_quality
        quality = int(torch.randint(low, high + 1, (), generator=rng))
    scale = None
    if uniform() < config.resize_p:
        low_s, high_s = config.resize_scale
        scale = low_s + (high_s - low_s) * uniform()
    return DistortionParams(
        hflip=torch.rand(batch, generator=rng) < config.flip_p,
        vflip=torch.rand(batch, generator=rng) < config.flip_p,
        jpeg_quality=quality,
        resize_scale=scale,
    )


def gaussian_blur(x: torch.Tensor, kernel: int, sigma: float) -> torch.Tensor:
    """Gaussian blur (odd ``kernel``, reflected edges) as two 1-D passes: the same maths as
    the 2-D kernel, and a 25 x 25 kernel (tint's sigma 4) costs 12x less this way."""
    if kernel <= 1 or sigma <= 0:
        return x
    coords = torch.arange(kernel, dtype=x.dtype, device=x.device) - (kernel - 1) / 2
    weights = torch.exp(-(coords**2) / (2 * sigma**2))
    weights = weights / weights.sum()
    channels, radius = x.shape[1], kernel // 2
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="reflect"), weights.view(1, 1, 1, -1).expand(channels, 1, 1, -1),
                 groups=channels)
    return F.conv2d(F.pad(x, (0, 0, radius, radius), mode="reflect"), weights.view(1, 1, -1, 1).expand(channels, 1, -1, 1),
                    groups=channels)


def adjust_sharpness(x: torch.Tensor, factor: float) -> torch.Tensor:
    """PIL's sharpness: blend with a smoothed copy (3x3 kernel, centre weight 5)."""
    if factor == 1.0:
        return x
    kernel = torch.tensor([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]], dtype=x.dtype, device=x.device) / 13
    smoothed = F.conv2d(F.pad(x, [1, 1, 1, 1], mode="replicate"), kernel.expand(x.shape[1], 1, 3, 3), groups=x.shape[1])
    return (smoothed + factor * (x - smoothed)).clamp(0, 1)


def luma(r: torch.Tensor, g: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """ITU-R 601-2 luma: PIL's "L", and JPEG's Y."""
    return 0.299 * r + 0.587 * g + 0.114 * b


def grayscale(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Luma copied to 3 channels where ``mask`` (bool [B]) is set, as an attacker who
    squeezes colour out does (evaluate's ``gray``)."""
    gray = luma(x[:, 0:1], x[:, 1:2], x[:, 2:3]).expand_as(x)
    return torch.where(mask.to(x.device)[:, None, None, None], gray, x)


def resize_down_up(x: torch.Tensor, scale: float) -> torch.Tensor:
    height, width = x.shape[-2:]
    small = (max(8, round(height * scale)), max(8, round(width * scale)))
    down = F.interpolate(x, size=small, mode="bilinear", antialias=True, align_corners=False)
    return F.interpolate(down, size=(height, width), mode="bilinear", align_corners=False)


# --- differentiable JPEG (YCbCr, 8x8 DCT, quantisation with a smooth rounding) ---------

_LUMA_TABLE = torch.tensor([
    [16, 11, 10, 16, 24, 40, 51, 61], [12, 12, 14, 19, 26, 58, 60, 55],
    [14, 13, 16, 24, 40, 57, 69, 56], [14, 17, 22, 29, 51, 87, 80, 62],
    [18, 22, 37, 56, 68, 109, 103, 77], [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101], [72, 92, 95, 98, 112, 100, 103, 99]], dtype=torch.float32)
_CHROMA_TABLE = torch.full((8, 8), 99.0)
_CHROMA_TABLE[:4, :4] = torch.tensor([[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99], [47, 66, 99, 99]])


def _dct_matrix(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    n = torch.arange(8, dtype=torch.float64)
    matrix = torch.cos((2 * n[None, :] + 1) * n[:, None] * math.pi / 16) * math.sqrt(2 / 8)
    matrix[0] /= math.sqrt(2)
    return matrix.to(device=device, dtype=dtype)


def _quality_scale(quality: int) -> float:
    quality = min(max(quality, 1), 100)
    return (5000 / quality if quality < 50 else 200 - 2 * quality) / 100


def smooth_round(x: torch.Tensor) -> torch.Tensor:
    """round(x) + (x - round(x))**3: equals rounding in value, has a useful gradient."""
    rounded = torch.round(x)
    return rounded + (x - rounded) ** 3


def jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    """Differentiable JPEG approximation (4:4:4, standard tables scaled by quality)."""
    height, width = x.shape[-2:]
    pad_h, pad_w = (-height) % 8, (-width) % 8
    x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate") * 255.0
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    y = luma(r, g, b)
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b
    planes = torch.stack([y - 128.0, cb, cr], dim=1)
    batch, channels, ph, pw = planes.shape
    blocks = planes.reshape(batch, channels, ph // 8, 8, pw // 8, 8).permute(0, 1, 2, 4, 3, 5)
    dct = _dct_matrix(x.device, x.dtype)
    coefficients = dct @ blocks @ dct.T
    scale = _quality_scale(quality)
    tables = torch.stack([_LUMA_TABLE, _CHROMA_TABLE, _CHROMA_TABLE]).to(x.device, x.dtype)
    tables = torch.clamp(torch.floor(tables * scale + 0.5), min=1.0)[None, :, None, None]
    restored = dct.T @ (smooth_round(coefficients / tables) * tables) @ dct
    planes = restored.permute(0, 1, 2, 4, 3, 5).reshape(batch, channels, ph, pw)
    y, cb, cr = planes[:, 0] + 128.0, planes[:, 1], planes[:, 2]
    rgb = torch.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], dim=1)
    return (rgb / 255.0).clamp(0, 1)[..., :height, :width]


def apply(x: torch.Tensor, params: DistortionParams, config: DistortionConfig) -> torch.Tensor:
    x = gaussian_blur(x, config.blur_kernel, config.blur_sigma)
    x = adjust_sharpness(x, config.sharpness)
    hflip = params.hflip.to(x.device)[:, None, None, None]
    vflip = params.vflip.to(x.device)[:, None, None, None]
    x = torch.where(hflip, x.flip(-1), x)
    x = torch.where(vflip, x.flip(-2), x)
    if params.resize_scale is not None:
        x = resize_down_up(x, params.resize_scale)
    if params.jpeg_quality is not None:
        x = jpeg(x, params.jpeg_quality)
    return x
