"""Face-recognition classifiers an attacker trains from scratch (torchvision, no weights).

One builder for every architecture ``segue evaluate`` plays, also used by training for
the ResNet18 surrogate. Nothing here downloads anything: ``weights=None`` throughout.
"""

from __future__ import annotations

import torchvision
from torch import nn

from . import ATTACKER_NAMES, ATTACKERS
from ..errors import ConfigError


def inception_v3(name: str, num_classes: int, image_size: int) -> nn.Module:
    # The auxiliary head needs 299 px inputs (its 5x5 pool + conv5 on a 17x17 map);
    # below that only the main head can run. init_weights=True keeps torchvision's
    # truncated-normal init instead of the warning-triggering default.
    return torchvision.models.inception_v3(
        weights=None, num_classes=num_classes, aux_logits=False, init_weights=True, transform_input=False
    )


def vit_tiny(name: str, num_classes: int, image_size: int) -> nn.Module:
    # ViT-Ti/16 (DeiT-Tiny's shape: 12 layers, 3 heads, width 192, about 5.5 M
    # parameters). At 112 px that is 7 x 7 = 49 patches, cheap enough for this CPU;
    # ViT-B/16 is 86 M parameters and far too slow here.
    if image_size % 16:
        raise ConfigError(
            f"vit_tiny needs an image size divisible by its 16 px patches, got {image_size}",
            "use --image-size 112 (or another multiple of 16)",
        )
    return torchvision.models.VisionTransformer(
        image_size=image_size, patch_size=16, num_layers=12, num_heads=3, hidden_dim=192, mlp_dim=768,
        num_classes=num_classes,
    )


def torchvision_classifier(name: str, num_classes: int, image_size: int) -> nn.Module:
    """torchvision's architecture of this name, as torchvision builds it (no weights)."""
    return getattr(torchvision.models, name)(weights=None, num_classes=num_classes)


def build_attacker(name: str, num_classes: int, image_size: int = 112) -> nn.Module:
    """A freshly initialised classifier with ``num_classes`` outputs for square inputs."""
    spec = ATTACKERS.get(name)
    if spec is None:
        raise ConfigError(f"unknown attacker architecture {name!r}", f"use one of {', '.join(ATTACKER_NAMES)}")
    if num_classes < 2:
        raise ConfigError(f"an attacker needs at least 2 identities, got {num_classes}")
    if image_size < spec.min_size:
        raise ConfigError(
            f"{name} needs inputs of at least {spec.min_size} px, got --image-size {image_size}",
            f"use --image-size {max(spec.min_size, 112)} or another architecture",
        )
    return spec.load()(name, num_classes, image_size)
