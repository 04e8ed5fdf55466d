"""How visible the protection is: each protected train image against its clean original.

P112 step 5: PSNR and SSIM at 224 px, RGB, data range 1.0, averaged over the split. We
add MS-SSIM, the perturbation's L-inf and L2 norms (in [0, 1] units, at the same
size), and how it looks (``colour.py``): tint (CIEDE2000 after a sigma-4 blur), the share
of its energy in colour, and the within-identity cosine. LPIPS is not computed: it needs ImageNet-trained network weights, which cannot be
downloaded here, and an untrained network would give a number that means nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch

from ..datasets import decode_images
from .colour import TINT_SIGMA, WithinIdentityCosine, chroma_energy, tint

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # Wang et al. 2003, pytorch_msssim's default
WIN_SIZE, WIN_SIGMA = 11, 1.5
CHUNK = 64
LPIPS_NOTE = (
    "LPIPS is not computed: it needs ImageNet-pretrained AlexNet/VGG weights plus the LPIPS linear layers, which "
    "cannot be downloaded on this machine; an untrained network would produce a meaningless number."
)


@dataclass
class QualityReport:
    size: int
    pairs: int
    # Pairs with zero difference (untouched copies, e.g. people who did not protect
    # themselves): left out of every mean below, so a partly protected set reads as its
    # protected photos do.
    identical: int
    psnr_db: float | None  # mean over the non-identical pairs (None: all identical)
    ssim: float
    ms_ssim: float
    ms_ssim_scales: int
    ms_ssim_note: str
    linf_mean: float  # mean over images of max |delta|, [0, 1] units
    linf_max: float
    linf_max_255: float  # the same in 0-255 steps, to compare with epsilon = 8/255
    l2_mean: float  # mean over images of ||delta||_2 over all pixels and channels
    tint_ciede2000: float = float("nan")  # mean over images, after a Gaussian blur of tint_sigma px
    tint_sigma: float = TINT_SIGMA
    chroma_share: float = float("nan")  # energy of delta minus its RGB mean / energy of delta, over the split
    within_identity_cosine: float | None = None  # mean pairwise cosine of deltas of one identity
    lpips: None = None
    lpips_note: str = LPIPS_NOTE
    # Identities with at least one changed photo: the protected people (p112-few protects a few).
    protected_identities: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def ms_ssim_scales(side: int, win_size: int = WIN_SIZE) -> int:
    """Scales that fit: each of the n-1 halvings must leave more than win_size - 1 pixels."""
    scales = len(MS_SSIM_WEIGHTS)
    while scales > 1 and side <= (win_size - 1) * 2 ** (scales - 1):
        scales -= 1
    return scales


def _gaussian_band(size: int, dtype: torch.dtype) -> torch.Tensor:
    """[size - 10, size] matrix whose product is a 'valid' 11-tap Gaussian filter (sigma 1.5)."""
    taps = torch.arange(WIN_SIZE, dtype=torch.float64) - WIN_SIZE // 2
    kernel = torch.exp(-(taps**2) / (2 * WIN_SIGMA**2))
    kernel = kernel / kernel.sum()
    band = torch.zeros(size - WIN_SIZE + 1, size, dtype=torch.float64)
    for row in range(size - WIN_SIZE + 1):
        band[row, row : row + WIN_SIZE] = kernel
    return band.to(dtype)


def ssim_and_cs(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image and channel SSIM and contrast-structure term, data range 1, K = (0.01, 0.03).

    The same maths as pytorch_msssim (tests compare the two), but the separable Gaussian
    filter is two matrix products on all five maps at once instead of five grouped
    convolutions: about 5x faster on a CPU, which matters for 1,300 pairs at 224 px.
    """
    c1, c2 = 0.01**2, 0.03**2
    rows, cols = _gaussian_band(x.shape[-2], x.dtype), _gaussian_band(x.shape[-1], x.dtype)
    maps = torch.stack([x, y, x * x, y * y, x * y])
    mu_x, mu_y, xx, yy, xy = rows @ maps @ cols.T
    sigma_x, sigma_y, sigma_xy = xx - mu_x**2, yy - mu_y**2, xy - mu_x * mu_y
    cs_map = (2 * sigma_xy + c2) / (sigma_x + sigma_y + c2)
    ssim_map = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1) * cs_map
    return ssim_map.flatten(2).mean(-1), cs_map.flatten(2).mean(-1)


def ms_ssim_any_size(x: torch.Tensor, y: torch.Tensor, scales: int) -> torch.Tensor:
    """Per-image MS-SSIM (data range 1) with the first ``scales`` weights, renormalised.

    With 5 scales this is pytorch_msssim.ms_ssim (same loop, window and weights); that
    function refuses images of 160 px or less, so small images get fewer scales here.
    """
    weights = torch.tensor(MS_SSIM_WEIGHTS[:scales], dtype=x.dtype)
    weights = weights / weights.sum()
    levels = []
    for level in range(scales):
        ssim_per_channel, cs = ssim_and_cs(x, y)
        if level < scales - 1:
            levels.append(torch.relu(cs))
            padding = [s % 2 for s in x.shape[2:]]
            x = torch.nn.functional.avg_pool2d(x, kernel_size=2, padding=padding)
            y = torch.nn.functional.avg_pool2d(y, kernel_size=2, padding=padding)
    levels.append(torch.relu(ssim_per_channel))
    stacked = torch.stack(levels, dim=0)  # (level, batch, channel)
    return torch.prod(stacked ** weights.view(-1, 1, 1), dim=0).mean(dim=1)


def measure_quality(
    pairs: list[tuple[Path, Path]], size: int, *, workers: int = 2, on_done: Callable[[], None] | None = None
) -> QualityReport:
    """Decode each (protected, clean) pair at ``size`` px (antialiased bilinear; a no-op
    for photos already that size) and average the metrics over the pairs."""
    scales = ms_ssim_scales(size)
    totals = {"psnr": 0.0, "ssim": 0.0, "ms_ssim": 0.0, "linf": 0.0, "l2": 0.0, "tint": 0.0, "chroma": 0.0,
              "energy": 0.0}
    cosine = WithinIdentityCosine()
    linf_max, identical = 0.0, 0
    touched: set[str] = set()
    for start in range(0, len(pairs), CHUNK):
        chunk = pairs[start : start + CHUNK]
        protected, _, _ = decode_images([p for p, _ in chunk], size, workers=workers)
        clean, _, _ = decode_images([c for _, c in chunk], size, workers=workers, on_done=on_done)  # a step a pair
        # float32: float64 convolutions have no fast CPU kernels and cost 10x for no visible gain.
        x, y = protected.float() / 255, clean.float() / 255
        difference = x - y
        delta = difference.flatten(1)
        mse = delta.pow(2).mean(dim=1)
        zero = mse == 0  # an untouched copy (a person left unprotected): left out of every mean
        identical += int(zero.sum())
        touched.update(p.parent.name for (p, _), same in zip(chunk, zero.tolist()) if not same)
        x, y, difference, delta, mse = x[~zero], y[~zero], difference[~zero], delta[~zero], mse[~zero]
        if not len(x):
            continue
        totals["tint"] += float(tint(y, x, TINT_SIGMA * size / 224).sum())
        chroma, energy = chroma_energy(difference)
        totals["chroma"] += float(chroma.sum())
        totals["energy"] += float(energy.sum())
        cosine.add([p.parent.name for (p, _), same in zip(chunk, zero.tolist()) if not same], difference)
        totals["psnr"] += float((10 * torch.log10(1.0 / mse)).sum())
        totals["ssim"] += float(ssim_and_cs(x, y)[0].mean(dim=1).sum())
        totals["ms_ssim"] += float(ms_ssim_any_size(x, y, scales).sum())
        linf = delta.abs().amax(dim=1)
        totals["linf"] += float(linf.sum())
        totals["l2"] += float(delta.norm(dim=1).sum())
        linf_max = max(linf_max, float(linf.max()))
    count = len(pairs)
    differing = count - identical
    note = (f"{scales} scales (standard weights)" if scales == len(MS_SSIM_WEIGHTS) else
            f"{scales} of 5 scales at {size} px (5 need more than 160 px); weights "
            f"{', '.join(f'{w:g}' for w in MS_SSIM_WEIGHTS[:scales])} renormalised to sum to 1")

    def mean(name: str, if_none: float) -> float:
        return totals[name] / differing if differing else if_none

    return QualityReport(
        size=size, pairs=count, identical=identical,
        psnr_db=totals["psnr"] / differing if differing else None,
        ssim=mean("ssim", 1.0), ms_ssim=mean("ms_ssim", 1.0), ms_ssim_scales=scales, ms_ssim_note=note,
        linf_mean=mean("linf", 0.0), linf_max=linf_max, linf_max_255=round(linf_max * 255, 3),
        l2_mean=mean("l2", 0.0), tint_ciede2000=mean("tint", 0.0),
        tint_sigma=TINT_SIGMA * size / 224,
        chroma_share=totals["chroma"] / totals["energy"] if totals["energy"] else 0.0,
        within_identity_cosine=cosine.value(), protected_identities=sorted(touched),
    )


def psnr_text(report: QualityReport) -> str:
    if report.psnr_db is None:
        return "infinite (every pair identical)"
    suffix = f" ({report.identical} identical pairs left out of every mean)" if report.identical else ""
    return f"{report.psnr_db:.2f} dB{suffix}"


__all__ = ["QualityReport", "measure_quality", "ms_ssim_any_size", "ms_ssim_scales", "psnr_text", "LPIPS_NOTE"]
