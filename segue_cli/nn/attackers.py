"""Face-recognition classifiers an attacker trains from scratch (torchvision, no weights).

One builder for every architecture ``segue evaluate`` plays, also used by training for
the ResNet18 surrogate. Nothing here downloads anything: ``weights=None`` throughout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torchvision
from torch import nn

from ..choices import ATTACKER_NAMES
from ..errors import ConfigError


@dataclass(frozen=True)
class AttackerSpec:
    name: str
    build: Callable[[int, int], nn.Module]  # (num_classes, image_size) -> model
    min_size: int  # smallest input side the architecture accepts
    note: str


def _inception_v3(num_classes: int, image_size: int) -> nn.Module:
    # The auxiliary head needs 299 px inputs (its 5x5 pool + conv5 on a 17x17 map);
    # below that only the main head can run. init_weights=True keeps torchvision's
    # truncated-normal init instead of the warning-triggering default.
    return torchvision.models.inception_v3(
        weights=None, num_classes=num_classes, aux_logits=False, init_weights=True, transform_input=False
    )


def _vit_tiny(num_classes: int, image_size: int) -> nn.Module:
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


def _torchvision(name: str) -> Callable[[int, int], nn.Module]:
    def build(num_classes: int, image_size: int) -> nn.Module:
        return getattr(torchvision.models, name)(weights=None, num_classes=num_classes)

    return build


ATTACKERS: dict[str, AttackerSpec] = {
    spec.name: spec
    for spec in (
        AttackerSpec("resnet18", _torchvision("resnet18"), 16, "torchvision standard stem (P112's attacker)"),
        AttackerSpec("resnet50", _torchvision("resnet50"), 16, "torchvision standard stem"),
        AttackerSpec("mobilenet_v2", _torchvision("mobilenet_v2"), 16, "width 1.0"),
        AttackerSpec("efficientnet_b0", _torchvision("efficientnet_b0"), 16, "stochastic depth 0.2 as torchvision"),
        AttackerSpec("densenet121", _torchvision("densenet121"), 32, "growth 32"),
        AttackerSpec("inception_v3", _inception_v3, 75, "no auxiliary head (needs 299 px), no input transform"),
        AttackerSpec("vit_tiny", _vit_tiny, 16, "ViT-Ti/16: 12 layers, 3 heads, width 192"),
        AttackerSpec("swin_t", _torchvision("swin_t"), 32, "Swin-T as in the paper's transfer table; slow on a CPU"),
    )
}


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
    return spec.build(num_classes, image_size)
