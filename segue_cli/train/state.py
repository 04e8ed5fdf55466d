"""A training run's state, its checkpoint and its resume.

:class:`TrainState` is everything an epoch changes: the two networks, their optimisers,
the surrogate's schedule, the run's random generator and the history. It is saved after
every epoch (``state.pt``, loaded with ``weights_only``: a file from elsewhere cannot run
code) beside ``metrics.jsonl`` and the generator checkpoint, so ``--resume`` repeats an
uninterrupted run exactly.
"""

from __future__ import annotations

import json
import platform
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..datasets import LabelledSet
from ..errors import InputError, OutputError
from ..storage import atomic_write
from .config import CONFIG_FILE, METRICS_FILE, STATE_FILE, TrainConfig


@dataclass
class EpochRecord:
    epoch: int
    stage: str  # "surrogate" (clean photos in a warm-up epoch: codes "clean") or "generator"
    loss: float
    ce: float
    accuracy: float  # surrogate accuracy on the perturbed (and distorted) batches
    delta_l2: float
    delta_linf: float
    seconds: float
    codes: str  # "labels", "random" or "decoys"
    identity_similarity: float | None = None  # with --identity-weight: mean cosine to the identity (generator epochs)


@dataclass
class TrainState:
    generator: torch.nn.Module
    surrogate: torch.nn.Module
    opt_g: torch.optim.Optimizer
    opt_f: torch.optim.Optimizer
    sched_f: torch.optim.lr_scheduler.LRScheduler
    # Batch order and distortions draw from rng; PGD's random start from torch's global generator.
    rng: torch.Generator
    epoch: int = 0  # the last finished epoch
    history: list[EpochRecord] = field(default_factory=list)

    def save(self, run_dir: Path, record: EpochRecord) -> None:
        """After epoch ``record.epoch``: the state (both generators' states too) and its metrics line."""
        self.epoch = record.epoch
        state = {
            "epoch": self.epoch, "rng": self.rng.get_state(), "torch_rng": torch.get_rng_state(),
            "generator": self.generator.state_dict(), "surrogate": self.surrogate.state_dict(),
            "opt_g": self.opt_g.state_dict(), "opt_f": self.opt_f.state_dict(), "sched_f": self.sched_f.state_dict(),
        }
        atomic_write(run_dir / STATE_FILE, lambda tmp: torch.save(state, tmp))
        with open(run_dir / METRICS_FILE, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(asdict(record)) + "\n")

    def restore(self, run_dir: Path, device: torch.device, seed: int) -> None:
        """Continue the run in ``run_dir`` where its last finished epoch left it."""
        state_path = run_dir / STATE_FILE
        try:
            state = torch.load(state_path, map_location=device, weights_only=True)
            self.generator.load_state_dict(state["generator"])
            self.surrogate.load_state_dict(state["surrogate"])
            self.opt_g.load_state_dict(state["opt_g"])
            self.opt_f.load_state_dict(state["opt_f"])
            self.sched_f.load_state_dict(state["sched_f"])
            self.epoch = int(state["epoch"])
            if "rng" in state:
                self.rng.set_state(state["rng"])
                torch.set_rng_state(state["torch_rng"])
            else:  # a state.pt of an older segue: the run goes on, but not as it would have
                self.rng.manual_seed(seed + self.epoch + 1)
        except Exception as exc:  # noqa: BLE001 (torch raises many types for damaged or foreign files)
            raise InputError(
                f"cannot resume from {state_path}: it is damaged, not written by segue train, or holds code "
                f"({_first_line(exc)})",
                f"start a new run without --resume (or into another --out); {state_path} is left as it is",
            ) from exc
        self.history = [EpochRecord(**json.loads(line)) for line in (run_dir / METRICS_FILE).read_text().splitlines() if line]


def _first_line(exc: BaseException) -> str:
    return f"{exc.__class__.__name__}: {str(exc).splitlines()[0][:200] if str(exc) else 'no detail'}"


def resumed_config(requested: TrainConfig) -> TrainConfig:
    """The run's own saved settings; only ``epochs`` (to extend a run) and ``device`` may change."""
    for name in (STATE_FILE, CONFIG_FILE):
        if not (requested.out / name).is_file():
            raise OutputError(f"nothing to resume in {requested.out} (no {name})", "drop --resume to start a new run")
    saved_path = requested.out / CONFIG_FILE
    try:
        saved = TrainConfig.from_dict(json.loads(saved_path.read_text(encoding="utf-8"))["config"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:  # not JSON, not a run record, or fields of another kind
        raise InputError(f"cannot resume {requested.out}: {saved_path} is not the config.json of a segue train run "
                         f"({exc.__class__.__name__}: {exc})",
                         f"start a new run without --resume (or into another --out); {saved_path} is left as it is") from exc
    return replace(saved, out=requested.out, resume=True, epochs=requested.epochs, device=requested.device)


def load_surrogate(state_path: Path, surrogate: torch.nn.Module, identities: list[str], device: torch.device) -> None:
    """Load the surrogate of another run's ``state.pt`` (``--surrogate-from``). Its class k
    must be this data's identity k, so the run's config.json beside it is checked too."""
    fix = "give the state.pt of a segue train run on the same identities (and --surrogate-stem), or leave the option out"
    record_path = state_path.parent / CONFIG_FILE
    if record_path.is_file():
        trained_on = json.loads(record_path.read_text()).get("identities")
        if trained_on is not None and trained_on != identities:
            raise InputError(f"--surrogate-from {state_path}: its surrogate was trained on identities {trained_on[:5]}... "
                             f"({len(trained_on)}), this data has {identities[:5]}... ({len(identities)})", fix)
    try:
        state = torch.load(state_path, map_location=device, weights_only=True)
        surrogate.load_state_dict(state["surrogate"])
    except Exception as exc:  # noqa: BLE001 (missing file, foreign pickle, other shapes: all one answer)
        raise InputError(f"--surrogate-from {state_path}: cannot load a surrogate from it ({_first_line(exc)})", fix) from exc


def write_run_record(run_dir: Path, config: TrainConfig, dataset: LabelledSet, problems: list[str]) -> None:
    """config.json: the resolved settings, the identities (class order) and the versions."""
    record = {
        "config": config.to_dict(), "identities": dataset.identities, "images": len(dataset.items),
        "skipped_images": problems, "segue_version": __version__, "torch": torch.__version__,
        "python": platform.python_version(), "machine": platform.machine(),
    }
    atomic_write(run_dir / CONFIG_FILE, lambda tmp: tmp.write_text(json.dumps(record, indent=2)))


def training_summary(config: TrainConfig, dataset: LabelledSet, history: list[EpochRecord], seconds: float,
                     images: int) -> dict[str, Any]:
    """What the generator checkpoint says of its training (``artifacts`` metadata)."""
    return {
        "data": str(config.data), "images": images, "identities": len(dataset.identities), "epochs_run": len(history),
        "generator_epochs": sum(1 for record in history if record.stage == "generator"),
        "surrogate_warmup_epochs": sum(1 for record in history if record.codes == "clean"),
        "last_epoch": asdict(history[-1]), "seconds": round(seconds, 1), "seed": config.seed,
        "config": config.to_dict(), "segue_version": __version__, "torch": torch.__version__,
    }
