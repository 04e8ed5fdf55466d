"""``segue train``: the generator trained against a surrogate (Algorithm 1 of the paper).

* here: :data:`OBJECTIVES`, the registry of ``--objective`` names (their classes are in
  ``objectives``, imported when a run starts);
* ``config``: :class:`TrainConfig` and the run folder's file names;
* ``objectives``: one class per ``--objective`` (what the generator learns);
* ``views``: what the surrogate sees of a protected photo (the attacker's view);
* ``state``: :class:`TrainState`, its checkpoint and ``--resume``;
* ``loop``: :func:`train`, one flat loop over the epochs;
* ``identity``: the identity-moving term (``--identity-weight``, dlib's twin).

This module imports nothing heavy at load (its other names come from their modules when
first asked for), so ``--help`` and option checks read the objectives without torch.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..choices import Spec, registry

if TYPE_CHECKING:
    from .config import TrainConfig
    from .loop import TrainResult, epoch_stage, identity_codes, train
    from .state import EpochRecord
    from .views import attacker_view


@dataclass(frozen=True, kw_only=True)
class ObjectiveSpec(Spec):
    """A training objective: its factory is its class in ``train/objectives.py`` (torch),
    called as ``(config, generator, surrogate, num_classes)``."""

    keyed: bool = False  # the target comes from the code pattern (needs --pattern-grid > 0)


#: The one registry of training objectives: ``--objective NAME`` -> its class, named
#: without importing it (torch).
OBJECTIVES: dict[str, ObjectiveSpec] = registry(
    ObjectiveSpec(name="error-minimizing", help="the paper's unlearnable objective: photos made easy to learn",
                  factory="segue_cli.train.objectives:ErrorMinimizing"),
    ObjectiveSpec(name="targeted", help="an adversarial poison: each photo looks like the next identity",
                  factory="segue_cli.train.objectives:Targeted"),
    ObjectiveSpec(name="keyed-targeted", help="targeted, the target a decoy identity derived from the code",
                  factory="segue_cli.train.objectives:KeyedTargeted", keyed=True),
    ObjectiveSpec(name="keyed-feature", help="the surrogate's features moved along a direction derived from the code",
                  factory="segue_cli.train.objectives:KeyedFeature", keyed=True),
)


_EXPORTS = {"TrainConfig": ".config", "TrainResult": ".loop", "epoch_stage": ".loop", "identity_codes": ".loop",
            "train": ".loop", "EpochRecord": ".state", "attacker_view": ".views"}
__all__ = ["OBJECTIVES", "EpochRecord", "TrainConfig", "TrainResult", "attacker_view", "epoch_stage", "identity_codes", "train"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
