"""What the generator is trained to do: one small class per ``--objective``. Adding one is
a class here and its entry in the registry, ``train.OBJECTIVES`` (which names them
without importing torch).

* ``error-minimizing``: the paper's unlearnable objective: the surrogate learns the
  perturbed photos and the generator makes them easy for it;
* ``targeted``: an adversarial poison (TAP): the surrogate learns the CLEAN photos and the
  generator makes each protected photo look like the next identity ((label + 1) mod K),
  so a model trained on them learns features that point to the wrong person; with
  ``--decoys K`` the codes are K decoys, code d aiming at identity (d + 1) mod K;
* ``keyed-targeted`` and ``keyed-feature``: the same with a target derived from the code
  alone (a decoy identity, or a feature direction; ``nn/keyed_targets.py``), trained on
  fresh random codes every step.

Each objective says which codes a batch carries (:meth:`Objective.batch_signs`), whether
the surrogate learns clean photos, and the generator's term (:meth:`Objective.term`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, ClassVar

import torch
import torch.nn.functional as F

from ..nn.keyed_targets import KeyedTargets, penultimate, random_code_signs
from ..nn.surrogate import pgd_noise
from ..nn.codes import code_to_signs, signs_to_codes
from .views import resize

if TYPE_CHECKING:
    from ..nn.generator import SegueGenerator
    from .config import TrainConfig

Distort = Callable[[torch.Tensor], torch.Tensor]


class Objective:
    surrogate_learns_clean: ClassVar[bool] = True  # the surrogate stands for a model trained on clean photos

    def __init__(self, config: TrainConfig, generator: SegueGenerator, surrogate: torch.nn.Module, num_classes: int) -> None:
        self.config, self.surrogate, self.num_classes = config, surrogate, num_classes

    def code_kind(self, assigned: str) -> str:
        """What metrics.jsonl calls this epoch's codes ("labels" or "random" from the assignment)."""
        return assigned

    def batch_signs(self, codes: list[int], targets: torch.Tensor, y: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        """+/-1 code signs of a batch: each photo's identity's code for this period."""
        return code_to_signs([codes[t] for t in targets.tolist()], self.config.code_bits)

    def wanted(self, y: torch.Tensor, signs: torch.Tensor) -> torch.Tensor:
        """The class the surrogate should see in each protected photo."""
        raise NotImplementedError

    def term(self, perturbed: torch.Tensor, x: torch.Tensor, y: torch.Tensor, signs: torch.Tensor,
             distort: Distort) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(the generator's term before alpha, the surrogate's logits for the stats). The
        surrogate is attacked with PGD of budget rho_d through the distortion layer, as an
        attacker's noise would be. With --alpha 0 the identity term trains alone."""
        if self.config.alpha == 0:
            return torch.zeros(()), None
        wanted = self.wanted(y, signs)
        noise = pgd_noise(self.surrogate, perturbed, wanted, self.config.rho_d, self.config.pgd_steps, distort)
        logits = self.surrogate(distort((perturbed + noise).clamp(0, 1)))
        return F.cross_entropy(logits, wanted), logits


class ErrorMinimizing(Objective):
    surrogate_learns_clean = False

    def wanted(self, y: torch.Tensor, signs: torch.Tensor) -> torch.Tensor:
        return y


class Targeted(Objective):

    def code_kind(self, assigned: str) -> str:
        return "decoys" if self.config.decoys else assigned

    def batch_signs(self, codes: list[int], targets: torch.Tensor, y: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        if not self.config.decoys:
            return super().batch_signs(codes, targets, y, rng)
        # A fresh decoy per photo, never one that aims at its own identity.
        return code_to_signs(decoy_codes(y.cpu(), self.config.decoys, self.num_classes, rng), self.config.code_bits)

    def wanted(self, y: torch.Tensor, signs: torch.Tensor) -> torch.Tensor:
        classes = int(getattr(self.surrogate.fc, "out_features"))
        return (signs_to_codes(signs) + 1) % classes if self.config.decoys else (y + 1) % classes


class _Keyed(Objective):
    def __init__(self, config: TrainConfig, generator: SegueGenerator, surrogate: torch.nn.Module, num_classes: int) -> None:
        super().__init__(config, generator, surrogate, num_classes)
        self.targets = KeyedTargets(generator, num_classes, int(getattr(surrogate.fc, "in_features")))

    def code_kind(self, assigned: str) -> str:
        return "random"

    def batch_signs(self, codes: list[int], targets: torch.Tensor, y: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        # Every code is a key: fresh ones every step, so none at protect time is new.
        return random_code_signs(len(y), self.config.code_bits, rng)


class KeyedTargeted(_Keyed):

    def wanted(self, y: torch.Tensor, signs: torch.Tensor) -> torch.Tensor:
        return self.targets.decoys(signs, exclude=y)


class KeyedFeature(_Keyed):

    def term(self, perturbed: torch.Tensor, x: torch.Tensor, y: torch.Tensor, signs: torch.Tensor,
             distort: Distort) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Move the surrogate's features of the photo along the code's direction."""
        seen = distort(perturbed)
        with torch.no_grad():
            clean = penultimate(self.surrogate, distort(resize(x, self.config.image_size)))
        moved = penultimate(self.surrogate, seen) - clean
        ce = 1.0 - F.cosine_similarity(moved, self.targets.directions(signs), dim=1).mean()
        return ce, self.surrogate.fc(moved + clean)  # type: ignore[operator]


def decoy_codes(labels: torch.Tensor, decoys: int, num_classes: int, rng: torch.Generator) -> torch.Tensor:
    """A random decoy code in 0..decoys-1 per photo, never one that aims at the photo's own
    identity: code d aims at identity (d + 1) mod num_classes (with more decoys than
    identities, several codes share an aim but each has its own pattern)."""
    codes = torch.randint(0, decoys, labels.shape, generator=rng)
    while True:  # redraw the ones aimed at their own identity (at most 1 in `num_classes` a round)
        own = (codes + 1) % num_classes == labels
        if not own.any():
            return codes
        codes[own] = torch.randint(0, decoys, (int(own.sum()),), generator=rng)
