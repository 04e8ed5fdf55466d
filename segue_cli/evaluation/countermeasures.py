"""The attacker's counter-measures, as P112 defines them.

A scenario is one or more counter-measures joined by ``+`` (``jpeg-10+gray``); ``none``
is the plain attack. They apply to the TRAINING images of the run (protected, or clean
for the baseline), except ``gray``, which the protocol applies to train and test alike.

Three kinds, applied in a fixed order whatever the spelling:
- full resolution, while decoding, before the resize to the attacker's size:
  ``gray`` then ``jpeg-Q`` (P112: "re-encode as JPEG quality Q before resizing");
- on the whole resized training set, once: ``estimate-remove[-R]`` (pattern estimation:
  an attacker who knows segue exists estimates what each identity's photos share and
  subtracts it, see :func:`estimate_remove`);
- per batch, on the resized float images: ``blur[-S]``, ``down-P``, ``cutout``, then
  ``mixup`` or ``cutmix``, then ``at-R[-S]`` (PGD on the augmented batch).

Random draws take an explicit ``torch.Generator`` so a run repeats exactly.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..choices import COUNTERMEASURE_HELP
from ..errors import ConfigError
from ..nn.distortions import gaussian_blur, resize_down_up
from ..nn.surrogate import pgd_noise

CUTOUT_HOLES = 2  # paper: 2 patches of half the image size
AT_DEFAULT_STEPS = 5
ESTIMATE_DEFAULT_BUDGET = 8  # segue's documented epsilon, 8/255: what an informed attacker assumes


@dataclass(frozen=True)
class Scenario:
    """One attacker set-up; ``name`` is the canonical spelling used in reports."""

    name: str = "none"
    gray: bool = False
    jpeg_quality: int | None = None
    blur_sigma: float | None = None
    down_percent: int | None = None
    cutout: bool = False
    mix: str | None = None  # "mixup" or "cutmix"
    at_budget: int | None = None  # R, in 1/255 units
    at_steps: int = AT_DEFAULT_STEPS
    estimate_budget: int | None = None  # R of estimate-remove-R, in 1/255 units

    @property
    def per_batch(self) -> bool:
        """Whether the scenario changes training batches (so it needs a trained attacker)."""
        return (self.blur_sigma is not None or self.down_percent is not None or self.cutout or self.mix is not None
                or self.at_budget is not None)

    @property
    def changes_decoding(self) -> bool:
        return self.gray or self.jpeg_quality is not None

    @property
    def at_step_size(self) -> float:
        """P112: 5 steps of R/4 / 255; other step counts keep the same total travel (1.25 R)."""
        assert self.at_budget is not None
        return 1.25 * self.at_budget / 255 / self.at_steps


def _number(text: str, spec: str) -> float:
    try:
        return float(text)
    except ValueError as exc:
        raise ConfigError(f"counter-measure {spec!r}: {text!r} is not a number", COUNTERMEASURE_HELP) from exc


def parse_scenario(spec: str) -> Scenario:
    """``jpeg-75+gray`` -> Scenario; raises ConfigError naming the bad part."""
    values: dict[str, object] = {}
    parts = [p.strip().lower() for p in spec.split("+") if p.strip()]
    if not parts:
        raise ConfigError("empty counter-measure", COUNTERMEASURE_HELP)
    for part in parts:
        head, _, rest = part.partition("-")
        key = {"jpeg": "jpeg_quality", "blur": "blur_sigma", "down": "down_percent", "at": "at_budget",
               "estimate": "estimate_budget"}.get(head, head)
        if key in values or (head in ("mixup", "cutmix") and "mix" in values):
            raise ConfigError(f"counter-measure {spec!r} names {head} twice (or mixup with cutmix)", COUNTERMEASURE_HELP)
        if part == "none":
            if len(parts) > 1:
                raise ConfigError(f"counter-measure {spec!r}: 'none' cannot be combined", COUNTERMEASURE_HELP)
        elif part in ("gray", "cutout"):
            values[part] = True
        elif part in ("mixup", "cutmix"):
            values["mix"] = part
        elif head == "jpeg" and re.fullmatch(r"\d+", rest) and 1 <= int(rest) <= 100:
            values[key] = int(rest)
        elif head == "blur" and (not rest or _number(rest, spec) > 0):
            values[key] = _number(rest, spec) if rest else 1.0
        elif head == "down" and re.fullmatch(r"\d+", rest) and 1 <= int(rest) < 100:
            values[key] = int(rest)
        elif head == "at" and re.fullmatch(r"\d+(-\d+)?", rest):
            budget, _, steps = rest.partition("-")
            if int(budget) < 1 or (steps and int(steps) < 1):
                raise ConfigError(f"counter-measure {spec!r}: budget and steps must be at least 1", COUNTERMEASURE_HELP)
            values[key] = int(budget)
            values["at_steps"] = int(steps) if steps else AT_DEFAULT_STEPS
        elif head == "estimate" and re.fullmatch(r"remove(-\d+)?", rest):
            estimate_budget = int(rest.partition("-")[2] or ESTIMATE_DEFAULT_BUDGET)
            if not 1 <= estimate_budget <= 255:
                raise ConfigError(f"counter-measure {spec!r}: the budget must be 1-255 (in 1/255)", COUNTERMEASURE_HELP)
            values[key] = estimate_budget
        else:
            raise ConfigError(f"unknown counter-measure {part!r} in {spec!r}", COUNTERMEASURE_HELP)
    return Scenario(name=_canonical_name(values), **values)  # type: ignore[arg-type]


def _canonical_name(values: dict[str, object]) -> str:
    names = []
    if values.get("gray"):
        names.append("gray")
    if values.get("jpeg_quality") is not None:
        names.append(f"jpeg-{values['jpeg_quality']}")
    if values.get("blur_sigma") is not None:
        sigma = float(values["blur_sigma"])  # type: ignore[arg-type]
        names.append("blur" if sigma == 1.0 else f"blur-{sigma:g}")
    if values.get("estimate_budget") is not None:
        budget = values["estimate_budget"]
        names.append("estimate-remove" + ("" if budget == ESTIMATE_DEFAULT_BUDGET else f"-{budget}"))
    if values.get("down_percent") is not None:
        names.append(f"down-{values['down_percent']}")
    if values.get("cutout"):
        names.append("cutout")
    if values.get("mix"):
        names.append(str(values["mix"]))
    if values.get("at_budget") is not None:
        steps = values.get("at_steps", AT_DEFAULT_STEPS)
        names.append(f"at-{values['at_budget']}" + ("" if steps == AT_DEFAULT_STEPS else f"-{steps}"))
    return "+".join(names) or "none"


# --- full resolution, while decoding -----------------------------------------------------


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """PIL's ITU-R 601-2 luma ("L"), copied back to 3 channels (torchvision Grayscale(3))."""
    luma = np.asarray(Image.fromarray(rgb).convert("L"))
    return np.repeat(luma[:, :, None], 3, axis=2)


def jpeg_reencode(rgb: np.ndarray, quality: int) -> np.ndarray:
    """Encode with PIL at ``quality`` (its default 4:2:0 subsampling) and decode again."""
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB")).copy()


def decode_transform(scenario: Scenario, *, test_set: bool) -> Callable[[np.ndarray], np.ndarray] | None:
    """What to do to each full-resolution photo before resizing (None: nothing)."""
    gray = scenario.gray
    quality = None if test_set else scenario.jpeg_quality
    if not gray and quality is None:
        return None

    def transform(rgb: np.ndarray) -> np.ndarray:
        if gray:
            rgb = to_gray(rgb)
        if quality is not None:
            rgb = jpeg_reencode(rgb, quality)
        return rgb

    return transform


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
    x = images.float() / 255.0
    classes = targets.unique()
    means = torch.stack([x[targets == c].mean(dim=0) for c in classes])
    overall = means.mean(dim=0)
    cleaned = x.clone()
    for c, mean in zip(classes.tolist(), means):
        pattern = (mean - overall).clamp(-budget / 255.0, budget / 255.0)
        cleaned[targets == c] -= pattern
    return (cleaned.clamp(0, 1) * 255.0).round().to(torch.uint8)


def prepare_train_set(images: torch.Tensor, targets: torch.Tensor, scenario: Scenario) -> torch.Tensor:
    """The scenario's whole-set counter-measures on a decoded training set (None: as is)."""
    if scenario.estimate_budget is not None:
        return estimate_remove(images, targets, scenario.estimate_budget)
    return images


# --- per batch, on resized float images ---------------------------------------------------


def blur_kernel(sigma: float) -> int:
    """Odd kernel covering +-2 sigma: sigma 1 -> 5, the protocol's kernel."""
    return 2 * math.ceil(2 * sigma) + 1


def cutout(x: torch.Tensor, rng: torch.Generator, holes: int = CUTOUT_HOLES) -> torch.Tensor:
    """DeVries & Taylor's Cutout: ``holes`` squares of half the side, centres uniform, clipped."""
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
    lam = float(torch.rand((), generator=rng))
    order = torch.randperm(len(x), generator=rng).to(x.device)
    return lam * x + (1 - lam) * x[order], lam * targets + (1 - lam) * targets[order]


def cutmix(x: torch.Tensor, targets: torch.Tensor, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Yun et al.'s CutMix, lambda ~ Beta(1, 1): a box of area (1 - lambda) from a shuffled
    partner; the label weight is the box's actual (clipped) area."""
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


def adversarial_examples(model: nn.Module, x: torch.Tensor, targets: torch.Tensor, scenario: Scenario) -> torch.Tensor:
    """PGD (random start, sign steps) within the L-inf budget R/255, clamped to [0, 1].

    The noise is computed with the model in eval mode so the extra forward passes do not
    move BatchNorm's running statistics; training then resumes on the returned batch.
    """
    assert scenario.at_budget is not None
    was_training = model.training
    model.eval()
    try:
        noise = pgd_noise(model, x, targets, scenario.at_budget / 255, scenario.at_steps, step_size=scenario.at_step_size)
    finally:
        model.train(was_training)
    return (x + noise).clamp(0, 1)


def augment_batch(
    x: torch.Tensor, targets: torch.Tensor, scenario: Scenario, rng: torch.Generator, model: nn.Module | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply the scenario's per-batch counter-measures. ``targets`` soft [B, K] in and out."""
    if scenario.blur_sigma is not None:
        x = gaussian_blur(x, blur_kernel(scenario.blur_sigma), scenario.blur_sigma)
    if scenario.down_percent is not None:
        x = resize_down_up(x, scenario.down_percent / 100).clamp(0, 1)
    if scenario.cutout:
        x = cutout(x, rng)
    if scenario.mix == "mixup":
        x, targets = mixup(x, targets, rng)
    elif scenario.mix == "cutmix":
        x, targets = cutmix(x, targets, rng)
    if scenario.at_budget is not None:
        if model is None:
            raise ValueError("adversarial training needs the model")
        x = adversarial_examples(model, x, targets, scenario)
    return x, targets
