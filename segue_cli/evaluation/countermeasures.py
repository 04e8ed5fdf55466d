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
  subtracts it, see :func:`estimate_remove`);
- ``batch``: per batch, on the resized float images (``blur[-S]``, ``down-P``, ``flip``, ``crop[-P]``, ``cutout``,
  ``mixup`` or ``cutmix``, then ``at-R[-S]``: PGD on the augmented batch).

Nothing heavy is imported at module level (``--help`` reads the registry); random draws
take an explicit ``torch.Generator`` so a run repeats exactly.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Literal

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


@dataclass(frozen=True)
class Countermeasure:
    """One counter-measure. ``parse`` gets the text after ``head-`` ("" for none) and
    returns the parameter or raises ValueError with the reason; ``apply`` takes, by stage:
    decode ``(rgb uint8 HxWx3, p) -> rgb``; train-set ``(images uint8, targets, p) -> images``;
    batch ``(x float, soft targets, rng, model, p) -> (x, soft targets)``."""

    head: str
    stage: Stage
    usage: str  # for --help
    parse: Callable[[str], Any]
    spell: Callable[[Any], str]
    describe: Callable[[Any], str]
    apply: Callable[..., Any]
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


# --- full resolution, while decoding -----------------------------------------------------


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """PIL's ITU-R 601-2 luma ("L"), copied back to 3 channels (torchvision Grayscale(3))."""
    import numpy as np
    from PIL import Image

    luma = np.asarray(Image.fromarray(rgb).convert("L"))
    return np.repeat(luma[:, :, None], 3, axis=2)


def jpeg_reencode(rgb: np.ndarray, quality: int) -> np.ndarray:
    """Encode with PIL at ``quality`` (its default 4:2:0 subsampling) and decode again."""
    import numpy as np
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB")).copy()


# --- on the whole resized training set ---------------------------------------------------


def estimate_remove(images: torch.Tensor, targets: torch.Tensor, budget: int) -> torch.Tensor:
    """Estimate each identity's shared perturbation and subtract it (uint8 in, uint8 out).

    The estimate of identity c is mean(photos of c) - mean over identities of their means,
    clipped to +-budget/255. Face crops of different people share their average face, so
    what is left of an identity's mean is its own look plus whatever pattern its photos
    share; clipping to the budget the attacker knows segue uses keeps the subtraction from
    wiping out real appearance (skin tone, hair) beyond that. A class-wise perturbation of
    up to that budget is removed whatever its frequency or colour; a per-image one is not.
    Applied to the protected set and, in the baseline, to the clean set, so its cost to a
    clean attacker is measured too."""
    import torch

    x = images.float() / 255.0
    classes = targets.unique()
    means = torch.stack([x[targets == c].mean(dim=0) for c in classes])
    overall = means.mean(dim=0)
    cleaned = x.clone()
    for c, mean in zip(classes.tolist(), means):
        pattern = (mean - overall).clamp(-budget / 255.0, budget / 255.0)
        cleaned[targets == c] -= pattern
    return (cleaned.clamp(0, 1) * 255.0).round().to(torch.uint8)


# --- per batch, on resized float images ---------------------------------------------------


def blur_kernel(sigma: float) -> int:
    """Odd kernel covering +-2 sigma: sigma 1 -> 5, the protocol's kernel."""
    return 2 * math.ceil(2 * sigma) + 1


def flip(x: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """Each photo mirrored left-right with probability 1/2 (torchvision RandomHorizontalFlip)."""
    import torch

    mirrored = torch.rand(len(x), generator=rng) < 0.5
    out = x.clone()
    out[mirrored.to(x.device)] = x[mirrored.to(x.device)].flip(-1)
    return out


def crop(x: torch.Tensor, rng: torch.Generator, percent: int = CROP_DEFAULT_PERCENT) -> torch.Tensor:
    """A random crop of each photo after reflect-padding PERCENT of its side on every edge
    (torchvision RandomCrop(size, padding, padding_mode="reflect")): shifts of up to that
    much, the augmentation that CIFAR-style training (and a scraper copying it) uses."""
    import torch
    import torch.nn.functional as F

    height, width = x.shape[-2:]
    pad = max(1, round(min(height, width) * percent / 100))
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    tops = torch.randint(0, 2 * pad + 1, (len(x),), generator=rng).tolist()
    lefts = torch.randint(0, 2 * pad + 1, (len(x),), generator=rng).tolist()
    return torch.stack([padded[i, :, top : top + height, left : left + width]
                        for i, (top, left) in enumerate(zip(tops, lefts))])


def cutout(x: torch.Tensor, rng: torch.Generator, holes: int = CUTOUT_HOLES) -> torch.Tensor:
    """DeVries & Taylor's Cutout: ``holes`` squares of half the side, centres uniform, clipped."""
    import torch

    batch, _, height, width = x.shape
    side = max(1, min(height, width) // 2)
    mask = torch.ones(batch, 1, height, width, dtype=x.dtype, device=x.device)
    centres_y = torch.randint(0, height, (batch, holes), generator=rng)
    centres_x = torch.randint(0, width, (batch, holes), generator=rng)
    for i in range(batch):
        for cy, cx in zip(centres_y[i].tolist(), centres_x[i].tolist()):
            top, left = max(0, cy - side // 2), max(0, cx - side // 2)
            mask[i, :, top : min(height, cy + side // 2), left : min(width, cx + side // 2)] = 0
    return x * mask


def mixup(x: torch.Tensor, targets: torch.Tensor, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Zhang et al.'s Mixup with lambda ~ Beta(1, 1), i.e. uniform. ``targets`` are soft [B, K]."""
    import torch

    lam = float(torch.rand((), generator=rng))
    order = torch.randperm(len(x), generator=rng).to(x.device)
    return lam * x + (1 - lam) * x[order], lam * targets + (1 - lam) * targets[order]


def cutmix(x: torch.Tensor, targets: torch.Tensor, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Yun et al.'s CutMix, lambda ~ Beta(1, 1): a box of area (1 - lambda) from a shuffled
    partner; the label weight is the box's actual (clipped) area."""
    import torch

    height, width = x.shape[-2:]
    lam = float(torch.rand((), generator=rng))
    order = torch.randperm(len(x), generator=rng).to(x.device)
    cut = math.sqrt(1.0 - lam)
    cut_h, cut_w = int(height * cut), int(width * cut)
    cy, cx = int(torch.randint(0, height, (), generator=rng)), int(torch.randint(0, width, (), generator=rng))
    top, bottom = max(0, cy - cut_h // 2), min(height, cy + cut_h // 2)
    left, right = max(0, cx - cut_w // 2), min(width, cx + cut_w // 2)
    mixed = x.clone()
    mixed[:, :, top:bottom, left:right] = x[order][:, :, top:bottom, left:right]
    kept = 1.0 - (bottom - top) * (right - left) / (height * width)
    return mixed, kept * targets + (1 - kept) * targets[order]


def adversarial_examples(model: nn.Module, x: torch.Tensor, targets: torch.Tensor, budget: int, steps: int) -> torch.Tensor:
    """PGD (random start, sign steps) within the L-inf budget R/255, clamped to [0, 1].

    The noise is computed with the model in eval mode so the extra forward passes do not
    move BatchNorm's running statistics; training then resumes on the returned batch.
    """
    from ..nn.surrogate import pgd_noise

    was_training = model.training
    model.eval()
    try:
        noise = pgd_noise(model, x, targets, budget / 255, steps, step_size=at_step_size(budget, steps))
    finally:
        model.train(was_training)
    return (x + noise).clamp(0, 1)


def _blur_batch(x, targets, rng, model, sigma):
    from ..nn.distortions import gaussian_blur

    return gaussian_blur(x, blur_kernel(sigma), sigma), targets


def _down_batch(x, targets, rng, model, percent):
    from ..nn.distortions import resize_down_up

    return resize_down_up(x, percent / 100).clamp(0, 1), targets


def _at_batch(x, targets, rng, model, parameter):
    if model is None:
        raise ValueError("adversarial training needs the model")
    return adversarial_examples(model, x, targets, *parameter), targets


#: The one registry of counter-measures, in the order they apply and are spelled.
COUNTERMEASURES: dict[str, Countermeasure] = {spec.head: spec for spec in (
    Countermeasure("gray", "decode", "gray", _flag("gray"), lambda _: "gray",
                   lambda _: "grayscale (ITU-R 601-2 luma, 3 channels), train and test",
                   lambda rgb, _: to_gray(rgb), on_test_set=True),
    Countermeasure("jpeg", "decode", "jpeg-Q (quality 1-100)", _integer(1, 100, "the JPEG quality"), lambda q: f"jpeg-{q}",
                   lambda q: f"JPEG re-encoding (PIL, quality {q}) at full resolution before resizing, train only",
                   jpeg_reencode),
    Countermeasure("estimate", "train-set", "estimate-remove or estimate-remove-R (subtract each identity's mean "
                   "deviation from the all-identity mean, clipped to R/255, default 8: the attacker estimates a "
                   "class-wise pattern)", _estimate,
                   lambda r: "estimate-remove" + ("" if r == ESTIMATE_DEFAULT_BUDGET else f"-{r}"),
                   lambda r: "pattern estimation: each identity's mean minus the mean of all identities' means, "
                             f"clipped to {r}/255, subtracted from that identity's train photos",
                   estimate_remove),
    Countermeasure("blur", "batch", "blur (kernel 5, sigma 1) or blur-S (sigma S)", _sigma,
                   lambda s: "blur" if s == 1.0 else f"blur-{s:g}",
                   lambda s: f"Gaussian blur, kernel {blur_kernel(s)}, sigma {s:g}", _blur_batch),
    Countermeasure("down", "batch", "down-P (downscale to P% then back)", _integer(1, 99, "the percentage"),
                   lambda p: f"down-{p}", lambda p: f"downscale to {p}% (bilinear, antialias) and back up (bilinear)",
                   _down_batch),
    Countermeasure("flip", "batch", "flip (mirror half the photos)", _flag("flip"), lambda _: "flip",
                   lambda _: "random horizontal flip, probability 1/2", lambda x, t, rng, m, _: (flip(x, rng), t)),
    Countermeasure("crop", "batch", f"crop or crop-P (random crop after reflect-padding P% a side, default "
                   f"{CROP_DEFAULT_PERCENT})", lambda rest: _integer(1, 50, "the padding percentage")(rest) if rest
                   else CROP_DEFAULT_PERCENT, lambda p: "crop" if p == CROP_DEFAULT_PERCENT else f"crop-{p}",
                   lambda p: f"random crop after reflect-padding {p}% of the side", lambda x, t, rng, m, p: (crop(x, rng, p), t)),
    Countermeasure("cutout", "batch", "cutout", _flag("cutout"), lambda _: "cutout",
                   lambda _: "Cutout, 2 patches of half the image side", lambda x, t, rng, m, _: (cutout(x, rng), t)),
    Countermeasure("mixup", "batch", "mixup", _flag("mixup"), lambda _: "mixup", lambda _: "Mixup, lambda ~ Beta(1, 1)",
                   lambda x, t, rng, m, _: mixup(x, t, rng), exclusive="mix"),
    Countermeasure("cutmix", "batch", "cutmix", _flag("cutmix"), lambda _: "cutmix", lambda _: "CutMix, lambda ~ Beta(1, 1)",
                   lambda x, t, rng, m, _: cutmix(x, t, rng), exclusive="mix"),
    Countermeasure("at", "batch", "at-R or at-R-S (PGD adversarial training, budget R/255, S steps, default 5)", _at,
                   lambda p: f"at-{p[0]}" + ("" if p[1] == AT_DEFAULT_STEPS else f"-{p[1]}"),
                   lambda p: f"PGD adversarial training, L-inf budget {p[0]}/255, {p[1]} steps of "
                             f"{at_step_size(*p) * 255:.3g}/255, random start", _at_batch),
)}
COUNTERMEASURE_HELP = (", ".join(["none", *(spec.usage for spec in COUNTERMEASURES.values())])
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

    def transform(rgb: np.ndarray) -> np.ndarray:
        for spec, parameter in steps:
            rgb = spec.apply(rgb, parameter)
        return rgb

    return transform


def prepare_train_set(images: torch.Tensor, targets: torch.Tensor, scenario: Scenario) -> torch.Tensor:
    """The scenario's whole-set counter-measures on a decoded training set."""
    for spec, parameter in scenario.at_stage("train-set"):
        images = spec.apply(images, targets, parameter)
    return images


def augment_batch(
    x: torch.Tensor, targets: torch.Tensor, scenario: Scenario, rng: torch.Generator, model: nn.Module | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply the scenario's per-batch counter-measures. ``targets`` soft [B, K] in and out."""
    for spec, parameter in scenario.at_stage("batch"):
        x, targets = spec.apply(x, targets, rng, model, parameter)
    return x, targets
