"""Targets of the keyed objectives: what each code asks the surrogate to see.

The targeted objective (TAP) aims every protected photo of identity y at identity
y + 1. That needs the label, which a user who protects their own photos never has: a
code the generator never saw (``--identity NAME``) got no useful target (hashed names
73% against 24.5% for labels, docs/evaluation.md). The keyed objectives derive the
target from the code alone, so every code, seen in training or not, has one:

* ``keyed-targeted``: a decoy identity among the surrogate's classes, the argmax of a
  fixed random projection of the generator's own code features;
* ``keyed-feature``: a direction in the surrogate's penultimate features, a fixed random
  projection of the same code features.

Both targets are linear in the code features that also drive the generator's code
pattern (``CodeFeatures``), so one linear map serves every code, and training draws
fresh random codes every step: no code at protect time is out of distribution.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .generator import CodeFeatures, SegueGenerator

_PROJECTION_SEED = 0x7A56


class KeyedTargets:
    def __init__(self, generator: SegueGenerator, num_classes: int, feature_dim: int) -> None:
        if generator.code_pattern is None:
            raise ValueError("keyed objectives need the code pattern (pattern_grid > 0)")
        features = generator.code_pattern[0]
        assert isinstance(features, CodeFeatures)
        self._features = features  # fixed buffers, never trained
        hidden = generator.config.pattern_hidden
        rng = torch.Generator().manual_seed(_PROJECTION_SEED)
        device = self._features.frequencies.device
        self.class_projection = torch.randn(hidden, num_classes, generator=rng).to(device)
        self.feature_projection = torch.randn(hidden, feature_dim, generator=rng).to(device)

    def decoys(self, code_signs: torch.Tensor, exclude: torch.Tensor | None = None) -> torch.Tensor:
        """Decoy class per code; ``exclude`` (the true labels in training) is never chosen."""
        scores = self._features(code_signs) @ self.class_projection
        if exclude is not None:
            scores = scores.scatter(1, exclude[:, None], float("-inf"))
        return scores.argmax(dim=1)

    def directions(self, code_signs: torch.Tensor) -> torch.Tensor:
        """Unit feature direction per code."""
        return F.normalize(self._features(code_signs) @ self.feature_projection, dim=1)


def penultimate(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """A torchvision ResNet's pooled features (the input of ``fc``)."""
    net: Any = model  # torchvision's ResNet: its parts are attributes
    x = net.maxpool(net.relu(net.bn1(net.conv1(images))))
    for layer in (net.layer1, net.layer2, net.layer3, net.layer4):
        x = layer(x)
    return torch.flatten(net.avgpool(x), 1)


def random_code_signs(count: int, code_bits: int, rng: torch.Generator) -> torch.Tensor:
    """+/-1 signs of ``count`` uniformly random codes (repeats allowed)."""
    bits = torch.randint(0, 2, (count, code_bits), generator=rng)
    return bits.float() * 2.0 - 1.0
