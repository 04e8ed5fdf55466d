"""Settings of ``segue evaluate`` and the P112 preset (docs/benchmark-protocol.md).

Every P112 knob is a field; :func:`p112` sets them all to the protocol, and
:meth:`EvaluateConfig.departures` lists any that a run changed, so a report never
claims P112 for a run that was not one.
"""

from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..nn import ATTACKER_NAMES
from ..faces import DETECTOR_CHOICES
from ..choices import ATTACKER_PIPELINES, EMBEDDING_ATTACKER_NAMES, IMAGE_SIZE_RANGE, check_options, check_ranges
from .countermeasures import Scenario, parse_scenario

# p112-screen: P112 with fewer epochs (cosine-annealed over its own, shorter schedule), to
# rank variants before a full run; its shorter schedule is a departure like any other.
# docs/evaluation.md "Screening" measures how its ranking agrees with full P112.
SCREEN_EPOCHS = 8
# p112-unseen and p112-few keep P112's knobs: what differs is the data (LFW48, people the
# model never saw) and who is protected (everyone, or a few); the report gives their
# figures (report.summary_rows). docs/benchmark-protocol.md defines all four.
PROTOCOL_PRESETS: dict[str, dict[str, Any]] = {"p112": {}, "p112-screen": {"epochs": SCREEN_EPOCHS}, "p112-unseen": {},
                                               "p112-few": {}}
PROTOCOLS = tuple(PROTOCOL_PRESETS)

# The protocol's own values. Architecture, counter-measure and the attacker's pipeline
# (with its face detector) are what an evaluation varies, so they are not departures;
# everything else is. (P112's own pipeline is "none": its photos are face crops.)
P112: dict[str, Any] = {
    "image_size": 112,
    "quality_size": 224,
    "epochs": 20,
    "batch_size": 32,
    "lr": 5e-4,
    "seed": 0,
    "baseline": True,
    "limit_per_identity": None,
    "bf16": False,
}


@dataclass(frozen=True)
class EvaluateConfig:
    train_protected: Path
    train_clean: Path
    test: Path
    out: Path = Path("runs/eval")
    protocol: str = "p112"
    archs: tuple[str, ...] = ("resnet18",)
    attacks: tuple[str, ...] = ("none",)
    attacker_pipeline: str = "none"  # "detect-align": the attacker detects and aligns faces first
    detector: str = "auto"  # the attacker's face detector under detect-align
    image_size: int = P112["image_size"]
    quality_size: int = P112["quality_size"]
    epochs: int = P112["epochs"]
    batch_size: int = P112["batch_size"]
    lr: float = P112["lr"]
    seed: int = P112["seed"]
    baseline: bool = P112["baseline"]
    limit_per_identity: int | None = P112["limit_per_identity"]  # first N images per identity in each set
    bf16: bool = P112["bf16"]  # bfloat16 autocast: faster on this CPU, but not the protocol's float32
    device: str = "auto"
    threads: int = 0  # torch threads; 0 = every core
    workers: int = 2  # image decoding threads
    eval_batch_size: int = 100
    channels_last: bool = True  # faster convolutions on CPU (oneDNN); same maths
    strip_images: int = 6

    def __post_init__(self) -> None:
        checks = [
            (self.protocol in PROTOCOLS, f"unknown protocol {self.protocol!r}; known: {', '.join(PROTOCOLS)}"),
            (len(self.archs) > 0, "give at least one --arch"),
            (len(self.attacks) > 0, "give at least one --attack (none is the plain attack)"),
            (self.attacker_pipeline in ATTACKER_PIPELINES,
             f"unknown --attacker-pipeline {self.attacker_pipeline!r}; known: {', '.join(ATTACKER_PIPELINES)}"),
            (self.detector in DETECTOR_CHOICES, f"unknown --detector {self.detector!r}; known: {', '.join(DETECTOR_CHOICES)}"),
            (self.image_size >= IMAGE_SIZE_RANGE[0], f"--image-size must be at least {IMAGE_SIZE_RANGE[0]}"),
            (self.quality_size >= IMAGE_SIZE_RANGE[0], f"--quality-size must be at least {IMAGE_SIZE_RANGE[0]}"),
            (self.epochs >= 1, "--epochs must be at least 1"),
            (self.batch_size >= 2, "--batch-size must be at least 2 (BatchNorm needs two samples)"),
            (self.lr > 0, "--lr must be positive"),
            (self.threads >= 0 and self.workers >= 1, "--threads must be >= 0 and --workers >= 1"),
            (self.eval_batch_size >= 1 and self.strip_images >= 1, "batch and strip sizes must be positive"),
            (self.limit_per_identity is None or self.limit_per_identity >= 2, "--limit-per-identity must be at least 2"),
        ]
        check_options(checks)
        for arch in self.archs:
            if arch not in ATTACKER_NAMES + EMBEDDING_ATTACKER_NAMES:
                raise ConfigError(f"unknown --arch {arch!r}",
                                  f"use one of {', '.join(ATTACKER_NAMES + EMBEDDING_ATTACKER_NAMES)}")
        if any(arch in EMBEDDING_ATTACKER_NAMES for arch in self.archs):
            unfit = [s.name for s in self.scenarios if not s.decode_only]
            if unfit:
                raise ConfigError(
                    f"--attack {', '.join(unfit)} changes training batches, and an embedding attacker trains nothing",
                    "give embedding attackers only none, gray or jpeg-Q (run the others in a separate evaluation)")
        if len(set(self.archs)) != len(self.archs):
            raise ConfigError("an --arch is given twice", "name each architecture once")
        names = [s.name for s in self.scenarios]
        if len(set(names)) != len(names):
            raise ConfigError(f"the same counter-measure is given twice: {', '.join(self.attacks)}",
                              "name each --attack once")
        check_ranges(self, {"image_size": IMAGE_SIZE_RANGE, "quality_size": IMAGE_SIZE_RANGE, "epochs": (1, 10_000),
                            "batch_size": (2, 4096), "lr": (1e-9, 1.0), "seed": (0, 2**32 - 1),
                            "limit_per_identity": (2, 10**7), "threads": (0, 256), "workers": (1, 256),
                            "eval_batch_size": (1, 4096), "strip_images": (1, 100)})
    @property
    def scenarios(self) -> list[Scenario]:
        return [parse_scenario(spec) for spec in self.attacks]

    def departures(self) -> list[str]:
        """Knobs that differ from the protocol, as ``name=value (P112: value)``."""
        return [
            f"{key}={getattr(self, key)} (P112: {value})"
            for key, value in P112.items()
            if getattr(self, key) != value
        ]

    def as_command(self) -> str:
        """An equivalent ``segue evaluate`` command line (every knob spelled out)."""
        words = ["segue", "evaluate", "--train-protected", str(self.train_protected), "--train-clean",
                 str(self.train_clean), "--test", str(self.test), "--out", str(self.out), "--protocol", self.protocol]
        words += [w for arch in self.archs for w in ("--arch", arch)]
        words += [w for s in self.scenarios for w in ("--attack", s.name)]
        if self.attacker_pipeline != "none":
            words += ["--attacker-pipeline", self.attacker_pipeline, "--detector", self.detector]
        words += ["--epochs", str(self.epochs), "--batch-size", str(self.batch_size), "--lr", f"{self.lr:g}",
                  "--image-size", str(self.image_size), "--quality-size", str(self.quality_size), "--seed", str(self.seed)]
        if not self.baseline:
            words.append("--skip-baseline")
        if self.limit_per_identity is not None:
            words += ["--limit-per-identity", str(self.limit_per_identity)]
        if self.bf16:
            words.append("--bf16")
        if self.device != "auto":
            words += ["--device", self.device]
        if self.threads:
            words += ["--threads", str(self.threads)]
        return shlex.join(words)

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        for key in ("train_protected", "train_clean", "test", "out"):
            record[key] = str(record[key])
        record["archs"], record["attacks"] = list(self.archs), [s.name for s in self.scenarios]
        return record


def p112(train_protected: Path, train_clean: Path, test: Path, protocol: str = "p112", **overrides: Any) -> EvaluateConfig:
    """The settings of ``protocol`` (P112 or one of its presets). ``overrides`` may set any
    field; those that change a P112 knob (see ``P112``) are listed by
    :meth:`EvaluateConfig.departures`."""
    if protocol not in PROTOCOL_PRESETS:
        raise ConfigError(f"unknown protocol {protocol!r}", f"use one of {', '.join(PROTOCOLS)}")
    base = EvaluateConfig(train_protected=Path(train_protected), train_clean=Path(train_clean), test=Path(test),
                          protocol=protocol, **{**P112, **PROTOCOL_PRESETS[protocol]})
    return replace(base, **overrides) if overrides else base
