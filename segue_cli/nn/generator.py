"""The Segue perturbation generator G(x, code) (about 0.1 M parameters).

Follows the official architecture (encoder, side-information code concatenated in
feature space, channel squeeze, 4 residual blocks, decoder, tanh) with four changes a
tool needs, each for a stated reason:

* Any input size works: the input is padded (replicate) to a multiple of 4 and the
  output cropped back, so G returns exactly the input's height and width.
* The squeeze after the code concatenation has no InstanceNorm: the code is spatially
  constant, so a per-channel instance mean subtraction would erase it.
* delta = eps * tanh(raw) instead of clip(tanh(raw), -eps, eps): hard clipping
  saturates (the authors' released noise sits at +/-eps on 43% of sub-pixels) and stops
  gradients; scaling keeps every parameter trainable and lets the L2 term shape energy.
* A code pattern (``pattern_grid`` > 0): fixed random features of the code and one
  trained linear layer give a 3 x g x g map, scaled to a fixed strength, bilinearly
  stretched over the whole image and added before the tanh. Concatenating a spatially
  constant code in feature space (the paper's only code pathway) gives the code no
  direct say in *where* the perturbation goes, and a generator trained that way on CPU
  budgets learned one shared, image-dependent pattern that protected nothing. The map is
  coarse on purpose: the attacker's resize keeps it, while fine per-pixel texture is
  averaged away and not learned (docs/training.md, docs/evaluation.md "Class-wise
  controls"); any code, seen in training or not, maps to its own map.
* Luminance output (``luma``): the decoder and the code pattern make one channel that is
  added to R, G and B alike, so grayscale(x + delta) = grayscale(x) + delta: an attacker
  who converts to grayscale keeps the whole perturbation (a colour-carried one goes back
  to clean accuracy under grayscale), a black-and-white photo stays black and white, and
  no tint is possible.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..nn.codes import DEFAULT_CODE_BITS, code_to_signs
from .delta import upsample

_SIZE_MULTIPLE = 4  # two stride-2 convolutions in the encoder


@dataclass(frozen=True)
class GeneratorConfig:
    code_bits: int = DEFAULT_CODE_BITS
    base_channels: int = 8
    residual_blocks: int = 4
    pattern_grid: int = 4  # the code pattern is a pattern_grid^2 map stretched over the image; 0: none
    pattern_hidden: int = 64
    pattern_strength: float = 2.0  # RMS of the code pattern before the tanh
    luma: bool = False  # one channel, the same on R, G and B (see module docstring)
    decoys: int = 0  # > 0: trained on codes 0..decoys-1 only; side_info maps every identity into them

    @property
    def out_channels(self) -> int:
        return 1 if self.luma else 3

    def to_dict(self) -> dict[str, int | float | bool]:
        return asdict(self)

    @classmethod
    def from_dict(cls, record: dict[str, int | float | bool]) -> "GeneratorConfig":
        # Checkpoints written before the code pattern (or luma output) existed have no such key.
        return cls(**{"pattern_grid": 0, "luma": False, "decoys": 0, **record})  # type: ignore[arg-type]


def _conv_norm_relu(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, padding_mode="reflect"),
        nn.InstanceNorm2d(cout, affine=True),
        nn.ReLU(inplace=True),
    )


def _up_norm_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1),
        nn.InstanceNorm2d(cout, affine=True),
        nn.ReLU(inplace=True),
    )


class ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class CodeFeatures(nn.Module):
    """Fixed random Fourier features of a +/-1 code: cos(code @ W + b), W ~ N(0, 3^2).

    Codes of integer labels share most bits (0..9 differ only in the low 4 of 16), so
    any smooth function of the bits gives them nearly the same pattern (correlation
    0.6-0.9 with a plain MLP). A large random frequency makes codes one bit apart look
    unrelated. W and b are buffers: saved with the weights, never trained."""

    frequencies: torch.Tensor
    phases: torch.Tensor

    def __init__(self, code_bits: int, features: int, scale: float = 3.0) -> None:
        super().__init__()
        rng = torch.Generator().manual_seed(0x5E6E)
        self.register_buffer("frequencies", torch.randn(code_bits, features, generator=rng) * scale)
        self.register_buffer("phases", torch.rand(features, generator=rng) * 2 * torch.pi)

    def forward(self, code_signs: torch.Tensor) -> torch.Tensor:
        return torch.cos(code_signs @ self.frequencies + self.phases)


class SegueGenerator(nn.Module):
    """``forward(images, code_signs)`` returns the raw map in (-1, 1); use
    :meth:`perturbation` for delta and :meth:`protect` for the protected image."""

    def __init__(self, config: GeneratorConfig = GeneratorConfig()) -> None:
        super().__init__()
        self.config = config
        c = config.base_channels
        self.encoder = nn.Sequential(
            _conv_norm_relu(3, c, 1), _conv_norm_relu(c, 2 * c, 2), _conv_norm_relu(2 * c, 4 * c, 2)
        )
        self.squeeze = nn.Sequential(
            nn.Conv2d(4 * c + config.code_bits, 4 * c, 3, padding=1, padding_mode="reflect"),
            nn.ReLU(inplace=True),
        )
        self.bottleneck = nn.Sequential(*[ResidualBlock(4 * c) for _ in range(config.residual_blocks)])
        self.decoder = nn.Sequential(
            _up_norm_relu(4 * c, 2 * c),
            _up_norm_relu(2 * c, c),
            nn.Conv2d(c, config.out_channels, 3, padding=1, padding_mode="reflect"),
        )
        self.code_pattern = None
        if config.pattern_grid > 0:
            self.code_pattern = nn.Sequential(
                CodeFeatures(config.code_bits, config.pattern_hidden),
                nn.Linear(config.pattern_hidden, config.out_channels * config.pattern_grid**2),
            )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(module.weight, 0.0, 0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, (nn.InstanceNorm2d, nn.BatchNorm2d)):
                nn.init.normal_(module.weight, 1.0, 0.02)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                module.reset_parameters()  # Kaiming-uniform: distinct codes give distinct patterns

    def forward(self, images: torch.Tensor, code_signs: torch.Tensor) -> torch.Tensor:
        height, width = images.shape[-2:]
        # Always padded (by 0 when already a multiple): no Python branch on the size, which
        # ONNX export would trace once and freeze.
        x = F.pad(images, (0, (-width) % _SIZE_MULTIPLE, 0, (-height) % _SIZE_MULTIPLE), mode="replicate")
        features = self.encoder(x)
        code_map = code_signs[:, :, None, None].expand(-1, -1, *features.shape[-2:])
        features = self.squeeze(torch.cat([features, code_map.to(features.dtype)], dim=1))
        raw = self.decoder(self.bottleneck(features))[..., :height, :width]
        if self.code_pattern is not None:
            raw = raw + self._code_pattern(code_signs.to(raw.dtype), height, width)
        return torch.tanh(raw).expand(-1, 3, -1, -1)  # luma: one channel on R, G and B

    def _code_pattern(self, code_signs: torch.Tensor, height: int, width: int) -> torch.Tensor:
        grid = self.config.pattern_grid
        assert self.code_pattern is not None
        cells = self.code_pattern(code_signs).view(-1, self.config.out_channels, grid, grid)
        # Every code, seen in training or not, gets a pattern of the same strength: with
        # RMS 2 before the tanh most cells sit near +/-epsilon. A pattern left free to
        # train stayed weak and the attacker ignored it (docs/training.md), and nothing in
        # training would keep an unseen code's pattern strong.
        cells = self.config.pattern_strength * cells / cells.pow(2).mean(dim=(1, 2, 3), keepdim=True).add(1e-6).sqrt()
        return upsample(cells, (height, width))

    def perturbation(self, images: torch.Tensor, codes: torch.Tensor | list[int], epsilon: float) -> torch.Tensor:
        """delta with |delta| < epsilon everywhere, same shape as ``images``."""
        signs = code_to_signs(codes, self.config.code_bits).to(images.device)
        if signs.shape[0] == 1 and images.shape[0] > 1:
            signs = signs.expand(images.shape[0], -1)
        return epsilon * self(images, signs)

    def protect(self, images: torch.Tensor, codes: torch.Tensor | list[int], epsilon: float) -> torch.Tensor:
        """Protected images in [0, 1]."""
        return (images + self.perturbation(images, codes, epsilon)).clamp(0.0, 1.0)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
