"""The attacker's counter-measures, as P112 defines them: one registry, one spec each.

A scenario is one or more counter-measures joined by ``+`` (``jpeg-10+gray``); ``none``
is the plain attack. They apply to the TRAINING images of the run (protected, or clean
for the baseline), except ``gray``, which the protocol applies to train and test alike.

Each :class:`Countermeasure` in :data:`COUNTERMEASURES` says how it is spelled and
parsed, where it acts (its stage), what it does, how the report describes it and the
``--help`` text; the registry's order is the order they apply and are spelled in, whatever
the order given. Adding one is one entry here. The stages:

- ``decode``: full resolution, while decoding, before the resize to the attacker's size
  (``gray`` then ``jpeg-Q``: P112 re-encodes as JPEG before resizing); the decoded-set
  cache is keyed by these;
- ``train-set``: on the whole resized training set, once (``estimate-remove[-R]``: an
  attacker who knows segue exists estimates what each identity's photos share and
  subtracts it, see ``countermeasure_ops.estimate_remove``);
- ``batch``: per batch, on the resized float images (``blur[-S]``, ``down-P``, ``flip``, ``crop[-P]``, ``cutout``,
  ``mixup`` or ``cutmix``, then ``at-R[-S]``: PGD on the augmented batch).

Nothing heavy is imported here (``--help`` reads the registry): what each counter-measure
does to the images is its factory in ``countermeasure_ops``, imported when a run applies it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Literal

from ..choices import Spec, registry
from ..errors import ConfigError

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn

CUTOUT_HOLES = 2  # paper: 2 patches of half the image size
CROP_DEFAULT_PERCENT = 12  # 4 px of 32 in CIFAR's recipe; 13 px at P112's 112
AT_DEFAULT_STEPS = 5
ESTIMATE_DEFAULT_BUDGET = 8  # segue's documented epsilon, 8/255: what an informed attacker assumes

Stage = Literal["decode", "train-set", "batch"]
STAGES: tuple[Stage, ...] = ("decode", "train-set", "batch")


@dataclass(frozen=True, kw_only=True)
class Countermeasure(Spec):
    """One counter-measure, named by its head (``jpeg`` in ``jpeg-10``); ``help`` is its
    ``--help`` usage. ``parse`` gets the text after ``name-`` ("" for none) and returns the
    parameter or raises ValueError with the reason. Its factory, in ``countermeasure_ops``,
    applies it, taking by stage: decode ``(rgb uint8 HxWx3, p) -> rgb``; train-set
    ``(images uint8, targets, p) -> images``; batch ``(x float, soft targets, rng, model, p)
    -> (x, soft targets)``."""

    stage: Stage
    parse: Callable[[str], Any]
    spell: Callable[[Any], str]
    describe: Callable[[Any], str]
    on_test_set: bool = False  # the protocol applies it to the test photos too
    exclusive: str = ""  # at most one counter-measure of the same group per scenario (default: the head)


def _flag(head: str) -> Callable[[str], bool]:
    def parse(rest: str) -> bool:
        if rest:
            raise ValueError(f"{head} takes no value")
        return True
    return parse


def _integer(low: int, high: int, what: str) -> Callable[[str], int]:
    def parse(rest: str) -> int:
        if not re.fullmatch(r"\d+", rest) or not low <= int(rest) <= high:
            raise ValueError(f"{what} must be a whole number {low}-{high}")
        return int(rest)
    return parse


def _sigma(rest: str) -> float:
    if not rest:
        return 1.0
    try:
        sigma = float(rest)
    except ValueError:
        raise ValueError(f"{rest!r} is not a number") from None
    if not sigma > 0:
        raise ValueError("sigma must be > 0")
    return sigma


def _at(rest: str) -> tuple[int, int]:
    if not re.fullmatch(r"\d+(-\d+)?", rest):
        raise ValueError("give at-R or at-R-S (budget R/255, S steps)")
    budget, _, steps = rest.partition("-")
    if int(budget) < 1 or (steps and int(steps) < 1):
        raise ValueError("budget and steps must be at least 1")
    return int(budget), int(steps) if steps else AT_DEFAULT_STEPS


def _estimate(rest: str) -> int:
    if not re.fullmatch(r"remove(-\d+)?", rest):
        raise ValueError("give estimate-remove or estimate-remove-R")
    budget = int(rest.partition("-")[2] or ESTIMATE_DEFAULT_BUDGET)
    if not 1 <= budget <= 255:
        raise ValueError("the budget must be 1-255 (in 1/255)")
    return budget


def at_step_size(budget: int, steps: int) -> float:
    """P112: 5 steps of R/4 / 255; other step counts keep the same total travel (1.25 R)."""
    return 1.25 * budget / 255 / steps


def blur_kernel(sigma: float) -> int:
    """Odd kernel covering +-2 sigma: sigma 1 -> 5, the protocol's kernel."""
    return 2 * math.ceil(2 * sigma) + 1


_OPS = "segue_cli.evaluation.countermeasure_ops:"

#: The one registry of counter-measures, in the order they apply and are spelled.
COUNTERMEASURES: dict[str, Countermeasure] = registry(
    Countermeasure(name="gray", stage="decode", help="gray", parse=_flag("gray"), spell=lambda _: "gray",
                   describe=lambda _: "grayscale (ITU-R 601-2 luma, 3 channels), train and test",
                   factory=_OPS + "gray", on_test_set=True),
    Countermeasure(name="jpeg", stage="decode", help="jpeg-Q (quality 1-100)", parse=_integer(1, 100, "the JPEG quality"),
                   spell=lambda q: f"jpeg-{q}",
                   describe=lambda q: f"JPEG re-encoding (PIL, quality {q}) at full resolution before resizing, train only",
                   factory=_OPS + "jpeg_reencode"),
    Countermeasure(name="estimate", stage="train-set", help="estimate-remove or estimate-remove-R (subtract each identity's "
                   "mean deviation from the all-identity mean, clipped to R/255, default 8: the attacker estimates a "
                   "class-wise pattern)", parse=_estimate,
                   spell=lambda r: "estimate-remove" + ("" if r == ESTIMATE_DEFAULT_BUDGET else f"-{r}"),
                   describe=lambda r: "pattern estimation: each identity's mean minus the mean of all identities' means, "
                                      f"clipped to {r}/255, subtracted from that identity's train photos",
                   factory=_OPS + "estimate_remove"),
    Countermeasure(name="blur", stage="batch", help="blur (kernel 5, sigma 1) or blur-S (sigma S)", parse=_sigma,
                   spell=lambda s: "blur" if s == 1.0 else f"blur-{s:g}",
                   describe=lambda s: f"Gaussian blur, kernel {blur_kernel(s)}, sigma {s:g}", factory=_OPS + "blur_batch"),
    Countermeasure(name="down", stage="batch", help="down-P (downscale to P% then back)",
                   parse=_integer(1, 99, "the percentage"), spell=lambda p: f"down-{p}",
                   describe=lambda p: f"downscale to {p}% (bilinear, antialias) and back up (bilinear)",
                   factory=_OPS + "down_batch"),
    Countermeasure(name="flip", stage="batch", help="flip (mirror half the photos)", parse=_flag("flip"),
                   spell=lambda _: "flip", describe=lambda _: "random horizontal flip, probability 1/2",
                   factory=_OPS + "flip_batch"),
    Countermeasure(name="crop", stage="batch", help=f"crop or crop-P (random crop after reflect-padding P% a side, "
                   f"default {CROP_DEFAULT_PERCENT})",
                   parse=lambda rest: _integer(1, 50, "the padding percentage")(rest) if rest else CROP_DEFAULT_PERCENT,
                   spell=lambda p: "crop" if p == CROP_DEFAULT_PERCENT else f"crop-{p}",
                   describe=lambda p: f"random crop after reflect-padding {p}% of the side", factory=_OPS + "crop_batch"),
    Countermeasure(name="cutout", stage="batch", help="cutout", parse=_flag("cutout"), spell=lambda _: "cutout",
                   describe=lambda _: "Cutout, 2 patches of half the image side", factory=_OPS + "cutout_batch"),
    Countermeasure(name="mixup", stage="batch", help="mixup", parse=_flag("mixup"), spell=lambda _: "mixup",
                   describe=lambda _: "Mixup, lambda ~ Beta(1, 1)", factory=_OPS + "mixup_batch", exclusive="mix"),
    Countermeasure(name="cutmix", stage="batch", help="cutmix", parse=_flag("cutmix"), spell=lambda _: "cutmix",
                   describe=lambda _: "CutMix, lambda ~ Beta(1, 1)", factory=_OPS + "cutmix_batch", exclusive="mix"),
    Countermeasure(name="at", stage="batch", help="at-R or at-R-S (PGD adversarial training, budget R/255, S steps, "
                   "default 5)", parse=_at, spell=lambda p: f"at-{p[0]}" + ("" if p[1] == AT_DEFAULT_STEPS else f"-{p[1]}"),
                   describe=lambda p: f"PGD adversarial training, L-inf budget {p[0]}/255, {p[1]} steps of "
                                      f"{at_step_size(*p) * 255:.3g}/255, random start", factory=_OPS + "at_batch"),
)
COUNTERMEASURE_HELP = (", ".join(["none", *(spec.help for spec in COUNTERMEASURES.values())])
                       + "; join several with '+', e.g. jpeg-10+gray")


@dataclass(frozen=True)
class Scenario:
    """One attacker set-up: counter-measures with their parameters, in registry order."""

    steps: tuple[tuple[str, Any], ...] = ()

    @property
    def name(self) -> str:
        """The canonical spelling used in reports (``none`` for the plain attack)."""
        return "+".join(COUNTERMEASURES[head].spell(p) for head, p in self.steps) or "none"

    def get(self, head: str) -> Any:
        """The parameter of counter-measure ``head``, or None when the scenario has none."""
        return next((p for h, p in self.steps if h == head), None)

    def at_stage(self, stage: Stage) -> list[tuple[Countermeasure, Any]]:
        return [(COUNTERMEASURES[h], p) for h, p in self.steps if COUNTERMEASURES[h].stage == stage]

    @property
    def decode_only(self) -> bool:
        """Whether every counter-measure acts while decoding (an embedding attacker trains nothing else)."""
        return not self.at_stage("train-set") and not self.at_stage("batch")

    def describe(self) -> str:
        return "; ".join(COUNTERMEASURES[h].describe(p) for h, p in self.steps) or "no counter-measure"

    def decode_key(self, test_set: bool) -> str:
        """What the decode stage does to this set: the decoded-set cache's key."""
        return "+".join(spec.spell(p) for spec, p in self.at_stage("decode") if spec.on_test_set or not test_set) or "plain"


def parse_scenario(spec: str) -> Scenario:
    """``jpeg-75+gray`` -> Scenario; raises ConfigError naming the bad part."""
    parts = [p.strip().lower() for p in spec.split("+") if p.strip()]
    if not parts:
        raise ConfigError("empty counter-measure", COUNTERMEASURE_HELP)
    if "none" in parts:
        if len(parts) > 1:
            raise ConfigError(f"counter-measure {spec!r}: 'none' cannot be combined", COUNTERMEASURE_HELP)
        return Scenario()
    found: dict[str, Any] = {}
    groups: set[str] = set()
    for part in parts:
        head, _, rest = part.partition("-")
        chosen = COUNTERMEASURES.get(head)
        if chosen is None:
            raise ConfigError(f"unknown counter-measure {part!r} in {spec!r}", COUNTERMEASURE_HELP)
        group = chosen.exclusive or head
        if group in groups:
            raise ConfigError(f"counter-measure {spec!r} names {head} twice (or mixup with cutmix)", COUNTERMEASURE_HELP)
        groups.add(group)
        try:
            found[head] = chosen.parse(rest)
        except ValueError as exc:
            raise ConfigError(f"counter-measure {part!r} in {spec!r}: {exc}", COUNTERMEASURE_HELP) from exc
    return Scenario(tuple((head, found[head]) for head in COUNTERMEASURES if head in found))


def decode_transform(scenario: Scenario, *, test_set: bool) -> Callable[[np.ndarray], np.ndarray] | None:
    """What to do to each full-resolution photo before resizing (None: nothing)."""
    steps = [(spec, p) for spec, p in scenario.at_stage("decode") if spec.on_test_set or not test_set]
    if not steps:
        return None

    applied = [(spec.load(), parameter) for spec, parameter in steps]

    def transform(rgb: np.ndarray) -> np.ndarray:
        for apply, parameter in applied:
            rgb = apply(rgb, parameter)
        return rgb

    return transform


def prepare_train_set(images: torch.Tensor, targets: torch.Tensor, scenario: Scenario) -> torch.Tensor:
    """The scenario's whole-set counter-measures on a decoded training set."""
    for spec, parameter in scenario.at_stage("train-set"):
        images = spec.load()(images, targets, parameter)
    return images


def augment_batch(
    x: torch.Tensor, targets: torch.Tensor, scenario: Scenario, rng: torch.Generator, model: nn.Module | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply the scenario's per-batch counter-measures. ``targets`` soft [B, K] in and out."""
    for spec, parameter in scenario.at_stage("batch"):
        x, targets = spec.load()(x, targets, rng, model, parameter)
    return x, targets
