"""``segue train``: the generator trained against a surrogate (Algorithm 1 of the paper).

* ``config``: :class:`TrainConfig` and the run folder's file names;
* ``objectives``: the registry of ``--objective`` classes (what the generator learns);
* ``views``: what the surrogate sees of a protected photo (the attacker's view);
* ``state``: :class:`TrainState`, its checkpoint and ``--resume``;
* ``loop``: :func:`train`, one flat loop over the epochs;
* ``identity``: the identity-moving term (``--identity-weight``, dlib's twin).
"""

from __future__ import annotations

from .config import TrainConfig
from .loop import TrainResult, epoch_stage, identity_codes, train
from .state import EpochRecord
from .views import attacker_view

__all__ = ["EpochRecord", "TrainConfig", "TrainResult", "attacker_view", "epoch_stage", "identity_codes", "train"]
