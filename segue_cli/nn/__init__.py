"""Neural networks: the Segue generator, the surrogate/attacker builders, distortions.

:data:`ATTACKERS` is the registry of the classifiers ``segue evaluate`` trains from scratch
(``--arch``; built by ``nn.attackers``). This module imports nothing heavy, so ``--help``
and option checks read the names without torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..choices import Spec, registry


@dataclass(frozen=True, kw_only=True)
class AttackerSpec(Spec):
    """An attacker architecture: its factory builds it, ``(name, num_classes, image_size) -> nn.Module``."""

    min_size: int  # smallest input side the architecture accepts


_TORCHVISION = "segue_cli.nn.attackers:torchvision_classifier"

#: The one registry of from-scratch attackers, in the order ``segue evaluate --help`` lists them.
ATTACKERS: dict[str, AttackerSpec] = registry(
    AttackerSpec(name="resnet18", help="torchvision standard stem (P112's attacker)", factory=_TORCHVISION, min_size=16),
    AttackerSpec(name="resnet50", help="torchvision standard stem", factory=_TORCHVISION, min_size=16),
    AttackerSpec(name="mobilenet_v2", help="width 1.0", factory=_TORCHVISION, min_size=16),
    AttackerSpec(name="efficientnet_b0", help="stochastic depth 0.2 as torchvision", factory=_TORCHVISION, min_size=16),
    AttackerSpec(name="densenet121", help="growth 32", factory=_TORCHVISION, min_size=32),
    AttackerSpec(name="inception_v3", help="no auxiliary head (needs 299 px), no input transform",
                 factory="segue_cli.nn.attackers:inception_v3", min_size=75),
    AttackerSpec(name="vit_tiny", help="ViT-Ti/16: 12 layers, 3 heads, width 192", factory="segue_cli.nn.attackers:vit_tiny",
                 min_size=16),
    AttackerSpec(name="swin_t", help="Swin-T as in the paper's transfer table; slow on a CPU", factory=_TORCHVISION,
                 min_size=32),
)
ATTACKER_NAMES = tuple(ATTACKERS)
