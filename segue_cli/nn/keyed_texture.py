"""A luminance texture expanded deterministically from an identity's code (its key).

Why a texture, in luminance, in this band:

* Luminance: with the same delta on R, G and B, grayscale(x + delta) = grayscale(x) +
  delta exactly, so an attacker who squeezes colour out keeps the whole perturbation.
* Band-pass, wavelengths of about 8-24 px at 224 px: the attacker's antialiased resize to
  112 px keeps them, JPEG keeps luminance at these frequencies best, and a face photo's
  own luminance energy falls with frequency (about 1/f), so a texture here stands out
  against the face far more than a coarse brightness map of the same amplitude (the
  4 x 4 and 14 x 14 maps of docs/evaluation.md "Class-wise controls" were not learned).
* Keyed: every code, a label or a hashed name, expands the same way into its own texture
  (a seeded random spectrum), so no identity at protect time differs from those seen in
  training.
* Shifted per image: each photo gets the texture circularly shifted by its own offset.
  A convolutional network sees the same local patterns wherever they sit, so the texture
  still works as a shortcut, but the average of an identity's photos no longer contains
  it (the shifted copies cancel), so the mean-estimation attack does not recover it.
"""

from __future__ import annotations

import torch

TEXTURE_SIZE = 224  # textures are drawn at this size and resized for other photo sizes
DEFAULT_BAND = (8.0, 24.0)  # shortest and longest wavelength, in px at TEXTURE_SIZE
_KEY_SALT = 0x5E6E_7E47


def keyed_texture(code: int, size: int = TEXTURE_SIZE, band: tuple[float, float] = DEFAULT_BAND,
                  orientation_power: float = 2.0) -> torch.Tensor:
    """A size x size texture with unit RMS, the same for the same code on every machine.

    White noise from a generator seeded by the code, kept in the frequency band whose
    wavelengths lie in ``band`` (px), so its look (grain size, orientation mix) belongs to
    the code and its placement does not matter. A larger ``orientation_power`` concentrates
    the texture on fewer orientations (more distinct between codes, more visible)."""
    shortest, longest = band
    rng = torch.Generator().manual_seed(_KEY_SALT ^ int(code))
    noise = torch.randn(size, size, generator=rng, dtype=torch.float64)
    fy = torch.fft.fftfreq(size, dtype=torch.float64)[:, None]
    fx = torch.fft.rfftfreq(size, dtype=torch.float64)[None, :]
    radius = torch.sqrt(fx**2 + fy**2)
    # A random gain per orientation sector makes the textures of two codes differ in
    # their orientation mix too, not only in their phases (which a shift scrambles).
    sectors = 8
    angle = torch.atan2(fy, fx.clamp_min(0) + 1e-12).remainder(torch.pi)
    sector = (angle / torch.pi * sectors).long().clamp_max(sectors - 1)
    gains = torch.rand(sectors, generator=rng, dtype=torch.float64) ** orientation_power
    mask = ((radius >= 1.0 / longest) & (radius <= 1.0 / shortest)).to(torch.float64) * gains[sector]
    texture = torch.fft.irfft2(torch.fft.rfft2(noise) * mask, s=(size, size))
    texture = texture / texture.pow(2).mean().sqrt().clamp_min(1e-12)
    return texture.float()


def shifted(texture: torch.Tensor, offset: tuple[int, int]) -> torch.Tensor:
    """The texture circularly shifted by (dy, dx) px."""
    return torch.roll(texture, shifts=offset, dims=(-2, -1))


def image_offset(seed: int, size: int = TEXTURE_SIZE) -> tuple[int, int]:
    """A per-image offset from a per-image seed (deterministic, so re-runs repeat)."""
    rng = torch.Generator().manual_seed(int(seed) & 0x7FFF_FFFF_FFFF_FFFF)
    dy, dx = torch.randint(0, size, (2,), generator=rng).tolist()
    return int(dy), int(dx)
