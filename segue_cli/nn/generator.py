"""The Segue perturbation generator G(x, code) (about 0.1 M parameters).

Follows the official architecture (encoder, side-information code concatenated in
feature space, channel squeeze, 4 residual blocks, decoder, tanh) with three changes a
tool needs, each for a stated reason:

* Any input size works: the input is padded (replicate) to a multiple of 4 and the
  output cropped back, so G returns exactly the input's height and width.
* The squeeze after the code concatenation has no InstanceNorm: the code is spatially
  constant, so a per-channel instance mean subtraction would erase it.
* delta = eps * tanh(raw) instead of clip(tanh(raw), -eps, eps): hard clipping
  saturates (the authors' released noise sits at +/-eps on 43% of sub-pixels) and stops
  gradients; scaling keeps every parameter trainable and lets the L2 term shape energy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..side_info import DEFAULT_CODE_BITS, code_to_signs

_SIZE_MULTIPLE = 4  # two stride-2 convolutions in the encoder


@dataclass(frozen=True)
class GeneratorConfig:
    code_bits: int = DEFAULT_CODE_BITS
    base_channels: int = 8
    residual_blocks: int = 4

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


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
            nn.Conv2d(c, 3, 3, padding=1, padding_mode="reflect"),
            nn.Tanh(),
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(module.weight, 0.0, 0.02)
                nn.init.zeros_(module.bias)
            elif isinstance(module, (nn.InstanceNorm2d, nn.BatchNorm2d)):
                nn.init.normal_(module.weight, 1.0, 0.02)
                nn.init.zeros_(module.bias)

    def forward(self, images: torch.Tensor, code_signs: torch.Tensor) -> torch.Tensor:
        height, width = images.shape[-2:]
        pad_h = (-height) % _SIZE_MULTIPLE
        pad_w = (-width) % _SIZE_MULTIPLE
        x = F.pad(images, (0, pad_w, 0, pad_h), mode="replicate") if (pad_h or pad_w) else images
        features = self.encoder(x)
        code_map = code_signs[:, :, None, None].expand(-1, -1, *features.shape[-2:])
        features = self.squeeze(torch.cat([features, code_map.to(features.dtype)], dim=1))
        raw = self.decoder(self.bottleneck(features))
        return raw[..., :height, :width]

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
