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
    ObjectiveSpec(name="error-minimizing", factory="segue_cli.train.objectives:ErrorMinimizing",
                  help="the paper's: the surrogate learns the protected photos, the generator makes them easy to learn"),
    ObjectiveSpec(name="targeted", factory="segue_cli.train.objectives:Targeted",
                  help="an adversarial poison: the surrogate learns the clean photos and the generator makes each "
                       "protected photo look like the next identity to it"),
    ObjectiveSpec(name="keyed-targeted", factory="segue_cli.train.objectives:KeyedTargeted", keyed=True,
                  help="targeted, aimed at a decoy identity derived from the code and trained on fresh random codes, "
                       "so names never seen in training are protected alike"),
    ObjectiveSpec(name="keyed-feature", factory="segue_cli.train.objectives:KeyedFeature", keyed=True,
                  help="moves the surrogate's features along a direction derived from the code"),
)

#: ``segue train --objective``'s help, one line per entry of the registry.
OBJECTIVE_HELP = ("; ".join(f"{spec.name} ({spec.help})" for spec in OBJECTIVES.values())
                  + f". The keyed ones ({', '.join(n for n, s in OBJECTIVES.items() if s.keyed)}) need --pattern-grid > 0.")


_EXPORTS = {"TrainConfig": ".config", "TrainResult": ".loop", "epoch_stage": ".loop", "identity_codes": ".loop",
            "train": ".loop", "EpochRecord": ".state", "attacker_view": ".views"}
__all__ = ["OBJECTIVES", "OBJECTIVE_HELP", "EpochRecord", "TrainConfig", "TrainResult", "attacker_view", "epoch_stage", "identity_codes", "train"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
