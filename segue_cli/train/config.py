"""Settings of ``segue train`` and what a run reports.

:class:`TrainConfig` holds every knob (checked when made, saved in the run's config.json
and in the checkpoint); :class:`EpochRecord` is one line of metrics.jsonl. What each
knob does is in the loop (``loop.py``), the objectives (``objectives.py``) and
docs/training.md.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..choices import IMAGE_SIZE_RANGE, MAX_EPSILON, check_options, check_ranges
from ..nn import distortions
from ..nn.generator import GeneratorConfig
from ..nn.codes import DEFAULT_CODE_BITS
from . import OBJECTIVES



CODE_ASSIGNMENTS = ("mixed", "labels", "random")
GENERATOR_FILE = "generator.safetensors"
STATE_FILE = "state.pt"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"


# Every numeric option's range (choices.check_ranges): finite, and these bounds, or exit 2.
RANGES = {
    "image_size": IMAGE_SIZE_RANGE, "epochs": (2, 10_000), "batch_size": (2, 4096), "lr_generator": (1e-9, 1.0),
    "lr_surrogate": (1e-9, 1.0), "alpha": (0, 1000), "beta": (0, 1000), "epsilon": (1e-6, MAX_EPSILON),
    "surrogate_period": (2, 1000), "surrogate_warmup": (0, 1000), "stop_loss": (0, 10), "rho_d": (0, MAX_EPSILON),
    "pgd_steps": (0, 100), "surrogate_rho": (0, MAX_EPSILON), "code_bits": (1, 32), "pattern_grid": (0, 64),
    "identity_weight": (0, 1000), "decoys": (0, 2**16), "generator_width": (4, 64), "photo_scale": (1.0, 8.0),
    "gray_p": (0.0, 1.0), "seed": (0, 2**32 - 1), "workers": (1, 256), "max_steps_per_epoch": (1, 10**7),
}


@dataclass(frozen=True)
class TrainConfig:
    data: Path
    out: Path
    image_size: int = 112
    epochs: int = 20
    batch_size: int = 16
    lr_generator: float = 5e-4
    lr_surrogate: float = 5e-4
    alpha: float = 1.0
    beta: float = 0.001
    epsilon: float = 8 / 255
    surrogate_period: int = 5
    surrogate_warmup: int = 0  # epochs of clean surrogate training before the alternating ones
    surrogate_from: Path | None = None  # a run's state.pt: start the surrogate from its weights
    stop_loss: float = 0.001
    rho_d: float = 1 / 255
    pgd_steps: int = 5
    surrogate_rho: float = 0.0
    surrogate_stem: str = "standard"
    code_assignment: str = "mixed"
    code_bits: int = DEFAULT_CODE_BITS
    pattern_grid: int = GeneratorConfig.pattern_grid
    luma: bool = False  # one-channel perturbation on R, G and B (GeneratorConfig.luma)
    objective: str = "error-minimizing"  # or "targeted" (see OBJECTIVES)
    identity_weight: float = 0.0  # > 0: also move dlib's embedding away from the identity (identity.py)
    decoys: int = 0  # > 0 (targeted only): codes 0..decoys-1 only, code d aims at identity (d + 1) mod identities
    generator_width: int = GeneratorConfig.base_channels  # channels of the generator's first layer (x2, x4 deeper)
    photo_scale: float = 2.0
    gray_p: float = 0.0
    distortion: distortions.DistortionConfig = field(default_factory=distortions.DistortionConfig)
    seed: int = 0
    device: str = "auto"
    workers: int = 2
    skip_bad_images: bool = False
    resume: bool = False
    max_steps_per_epoch: int | None = None  # for quick smoke runs and tests

    def __post_init__(self) -> None:
        checks = [
            (self.image_size >= IMAGE_SIZE_RANGE[0], f"--image-size must be at least {IMAGE_SIZE_RANGE[0]}"),
            (self.epochs >= 2, "--epochs must be at least 2: epoch 1 trains the surrogate only, so one epoch "
                               "would leave the generator untrained"),
            (self.batch_size >= 2, "--batch-size must be at least 2 (BatchNorm needs it)"),
            (0 < self.epsilon <= MAX_EPSILON, "--epsilon must be in (0, 16/255 = 0.0627] (8/255 = 0.0314 is the paper's)"),
            (self.surrogate_period >= 2, "--surrogate-period must be at least 2"),
            (self.surrogate_warmup >= 0, "--surrogate-warmup must be >= 0 (0: none)"),
            (self.alpha > 0 or (self.alpha == 0 and self.identity_weight > 0),
             "--alpha must be > 0 (the weight of the unlearnable term), or 0 with --identity-weight > 0 "
             "(the identity term alone)"),
            (self.alpha > 0 or (self.surrogate_warmup == 0 and self.surrogate_from is None),
             "--surrogate-warmup and --surrogate-from need --alpha > 0: with --alpha 0 no surrogate is used"),
            (4 <= self.generator_width <= 64, "--generator-width must be between 4 and 64 (8: the paper's)"),
            (self.beta >= 0, "--beta must be >= 0 (0: no size penalty)"),
            (0 <= self.rho_d <= MAX_EPSILON and self.pgd_steps >= 0,
             "--rho-d must be between 0 and 16/255 = 0.0627 and --pgd-steps >= 0"),
            (0 <= self.surrogate_rho <= MAX_EPSILON, "--surrogate-rho must be between 0 and 16/255 = 0.0627"),
            (self.stop_loss >= 0, "--stop-loss must be >= 0"),
            (self.max_steps_per_epoch is None or self.max_steps_per_epoch >= 1, "--max-steps must be at least 1"),
            (self.workers >= 1, "--workers must be at least 1"),
            (self.code_assignment in CODE_ASSIGNMENTS, f"--code-assignment must be one of {CODE_ASSIGNMENTS}"),
            (self.objective in OBJECTIVES, f"--objective must be one of {', '.join(OBJECTIVES)}"),
            (self.surrogate_stem in ("standard", "small"), "--surrogate-stem must be standard or small"),
            (self.lr_generator > 0 and self.lr_surrogate > 0, "--lr-generator and --lr-surrogate must be positive"),
            (self.pattern_grid >= 0, "--pattern-grid must be >= 0 (0: no code pattern)"),
            (self.objective not in OBJECTIVES or not OBJECTIVES[self.objective].keyed or self.pattern_grid > 0,
             f"--objective {self.objective} derives its target from the code pattern: give --pattern-grid > 0"),
            (1.0 <= self.photo_scale <= 8.0, "--photo-scale must be between 1 (no round trip) and 8"),
            (0.0 <= self.gray_p <= 1.0, "--gray-p must be between 0 and 1"),
            (self.identity_weight >= 0, "--identity-weight must be >= 0 (0: no identity term)"),
            (self.decoys == 0 or (self.objective == "targeted" and 2 <= self.decoys <= 2**self.code_bits),
             "--decoys needs --objective targeted and 2 to 2**code-bits decoys (0: off)"),
        ]
        check_options(checks)
        check_ranges(self, RANGES)
    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["data"], record["out"] = str(self.data), str(self.out)
        record["surrogate_from"] = None if self.surrogate_from is None else str(self.surrogate_from)
        return record

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> "TrainConfig":
        values = {f.name: record[f.name] for f in fields(cls) if f.name in record}
        values["data"], values["out"] = Path(values["data"]), Path(values["out"])
        if values.get("surrogate_from") is not None:
            values["surrogate_from"] = Path(values["surrogate_from"])
        dist = dict(values.get("distortion", {}))
        for key in ("jpeg_quality", "resize_scale"):
            if key in dist:
                dist[key] = tuple(dist[key])
        values["distortion"] = distortions.DistortionConfig(**dist)
        return cls(**values)
