"""``segue train``: Algorithm 1 of the paper, two-stage alternating training.

Epoch e (1-based) trains the surrogate f for one pass on perturbed images when
``(e - 1) % surrogate_period == 0``, otherwise the generator G for one pass with
L_G = alpha * CE(f(T(x + delta + rho)), y) + beta * mean ||delta||_2, f frozen, where T
is the distortion layer and rho adversarial noise of budget rho_d. With ``surrogate_rho``
> 0 the surrogate's own pass is adversarial training of that budget (as in REM).

With ``surrogate_warmup`` W > 0 the run starts with W epochs that train the surrogate on
CLEAN photos (the attacker's view of them), so that a targeted poison aims at what a
fully trained classifier finds in a face rather than at a half-trained one; ``epochs``
then counts the epochs after them, and the alternation starts with the generator (the
surrogate passes fall on epochs period, 2 x period, ... after the warm-up).
``surrogate_from`` starts the surrogate from another run's ``state.pt`` instead (its
warm-up done once, reused by every run on the same identities), also generator first.

Side information: each surrogate period (f pass + the G passes after it) gives every
training identity a code. Even periods use the identity's own code (label or hashed
folder name, see side_info); odd periods draw fresh random codes. G therefore learns to
make separable perturbations for codes it never saw, which is what ``--identity NAME``
needs at protect time (``code_assignment`` switches this off).

What f sees is what an attacker sees (``photo_scale``): photos are loaded at
``photo_scale`` x the working size, G runs on them resized to the working size, its
perturbation is upsampled to the photo as ``segue protect`` does, the result is rounded
to 8 bits (straight-through) and resized back to the working size as protocol P112's
attacker does. A perturbation that only works at the working size is not rewarded.
With ``gray_p`` > 0 that share of photos reaches f (in both stages) in grayscale, as an
attacker who squeezes colour out sees them, so a protection carried by colour alone is
not rewarded either.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass, field, fields, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from . import __version__
from .artifacts import atomic_write, save_generator
from .choices import IMAGE_SIZE_RANGE, MAX_EPSILON
from .datasets import LabelledSet, batch_order, decode_images, load_labelled, require_identities
from .devices import resolve_device
from .errors import check_options, InputError, OutputError
from .nn import distortions
from .nn.generator import GeneratorConfig, SegueGenerator
from .nn.keyed_targets import KeyedTargets, penultimate, random_code_signs
from .nn.surrogate import build_surrogate, pgd_noise
from .progress import ProgressCallback, ProgressEvent, ignore, say, start_task, step
from .side_info import DEFAULT_CODE_BITS, code_to_signs, folder_code, random_codes, signs_to_codes

CODE_ASSIGNMENTS = ("mixed", "labels", "random")
# error-minimizing: the paper's unlearnable objective (the surrogate learns the perturbed
# photos, the generator makes them easy). targeted: an adversarial poison (TAP): the
# surrogate learns the CLEAN photos, and the generator makes each protected photo look
# like the next identity ((label + 1) mod K) to it, so a model trained on them learns
# features that point to the wrong person. keyed-targeted and keyed-feature: the same
# with a target derived from the code alone (a decoy identity, or a feature direction;
# nn/keyed_targets.py), trained on fresh random codes every step.
OBJECTIVES = ("error-minimizing", "targeted", "keyed-targeted", "keyed-feature")
KEYED_OBJECTIVES = ("keyed-targeted", "keyed-feature")
GENERATOR_FILE = "generator.safetensors"
STATE_FILE = "state.pt"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"


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
    identity_weight: float = 0.0  # > 0: also move dlib's embedding away from the identity (identity_objective.py)
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
            (self.lr_generator > 0 and self.lr_surrogate > 0, "learning rates must be positive"),
            (self.pattern_grid >= 0, "--pattern-grid must be >= 0 (0: no code pattern)"),
            (self.objective not in KEYED_OBJECTIVES or self.pattern_grid > 0,
             f"--objective {self.objective} derives its target from the code pattern: give --pattern-grid > 0"),
            (1.0 <= self.photo_scale <= 8.0, "--photo-scale must be between 1 (no round trip) and 8"),
            (0.0 <= self.gray_p <= 1.0, "--gray-p must be between 0 and 1"),
            (self.identity_weight >= 0, "--identity-weight must be >= 0 (0: no identity term)"),
            (self.decoys == 0 or (self.objective == "targeted" and 2 <= self.decoys <= 2**self.code_bits),
             "--decoys needs --objective targeted and 2 to 2**code-bits decoys (0: off)"),
        ]
        check_options(checks)

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
class TrainResult:
    run_dir: Path
    generator_path: Path
    epochs_run: int
    stopped_early: bool
    history: list[EpochRecord]
    seconds: float


def prepare_run_dir(out: Path, resume: bool) -> Path:
    """A new run folder, never overwriting one: ``out`` if free, else out-2, out-3, ..."""
    if resume:
        if not (out / STATE_FILE).is_file():
            raise OutputError(f"nothing to resume in {out} (no {STATE_FILE})", "drop --resume to start a new run")
        return out
    candidate, n = out, 1
    while candidate.exists():
        n += 1
        candidate = out.with_name(f"{out.name}-{n}")
    candidate.mkdir(parents=True)
    return candidate


def resumed_config(requested: TrainConfig) -> TrainConfig:
    """The run's own saved settings; only ``epochs`` (to extend a run) and ``device`` may change."""
    saved_path = requested.out / CONFIG_FILE
    if not saved_path.is_file():
        raise OutputError(f"nothing to resume in {requested.out} (no {CONFIG_FILE})", "drop --resume to start a new run")
    saved = TrainConfig.from_dict(json.loads(saved_path.read_text())["config"])
    return replace(saved, out=requested.out, resume=True, epochs=requested.epochs, device=requested.device)


def identity_codes(dataset: LabelledSet, assignment: str, period: int, code_bits: int, seed: int) -> tuple[list[int], str]:
    """Codes for each identity in this surrogate period (see module docstring)."""
    use_random = assignment == "random" or (assignment == "mixed" and period % 2 == 1)
    if not use_random:
        return [folder_code(name, code_bits) for name in dataset.identities], "labels"
    rng = torch.Generator().manual_seed(seed * 1_000_003 + period)
    return random_codes(len(dataset.identities), code_bits, rng), "random"


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


def _code_signs(codes: list[int], targets: torch.Tensor, code_bits: int) -> torch.Tensor:
    return code_to_signs([codes[t] for t in targets.tolist()], code_bits)


def train(config: TrainConfig, progress: ProgressCallback | None = None) -> TrainResult:
    emit = progress or ignore
    started = time.perf_counter()
    if config.resume:
        config = resumed_config(config)
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    dataset = load_labelled(config.data)
    require_identities(dataset)
    # The generator's initial weights draw from torch's generator first, then the surrogate's.
    generator = SegueGenerator(GeneratorConfig(code_bits=config.code_bits, base_channels=config.generator_width,
                                               pattern_grid=config.pattern_grid, luma=config.luma,
                                               decoys=config.decoys)).to(device)
    surrogate = build_surrogate(len(dataset.identities), config.surrogate_stem).to(device)
    if config.surrogate_from is not None and not config.resume:  # checked before any run folder is made
        load_surrogate(config.surrogate_from, surrogate, dataset.identities, device)
    run_dir = prepare_run_dir(config.out, config.resume)
    emit(say("run_dir", f"run folder: {run_dir}" + (f" ({config.out} exists and is never overwritten)"
                                                    if run_dir != config.out else ""),
             {"path": str(run_dir), "requested": str(config.out)}))

    emit(start_task("decode_start", "decode", f"decoding ({len(dataset.identities)} identities)", len(dataset.items),
                    {"images": len(dataset.items), "identities": len(dataset.identities)}))
    images, kept, problems = decode_images(
        [item.path for item in dataset.items], photo_size(config),
        skip_bad=config.skip_bad_images, workers=config.workers, on_done=lambda: emit(step("decoded", "decode")),
    )
    targets = torch.tensor(dataset.targets)[kept]
    if problems:
        for problem in problems:
            emit(say("skipped_image", f"skipped: {problem}", {"problem": problem}, warning=True))

    identity = None
    if config.identity_weight > 0:
        from .identity_objective import prepare as prepare_identity

        emit(start_task("identity_start", "identity", "locating faces (identity term)", len(targets)))
        identity = prepare_identity(images, targets, len(dataset.identities), on_photo=lambda: emit(step("identity_photo", "identity")))
    keyed = (KeyedTargets(generator, len(dataset.identities), int(getattr(surrogate.fc, "in_features")))
             if config.objective in KEYED_OBJECTIVES else None)
    opt_g = torch.optim.Adam(generator.parameters(), lr=config.lr_generator)
    opt_f = torch.optim.Adam(surrogate.parameters(), lr=config.lr_surrogate)
    total_epochs = config.surrogate_warmup + config.epochs
    surrogate_epochs = sum(1 for epoch in range(1, total_epochs + 1) if epoch_stage(config, epoch)[0] == "surrogate")
    sched_f = torch.optim.lr_scheduler.CosineAnnealingLR(opt_f, T_max=max(1, surrogate_epochs))
    history: list[EpochRecord] = []
    start_epoch = 1
    # Batch order and distortions draw from rng; PGD's random start from torch's global
    # generator. Both are saved with every epoch, so a resumed run repeats an uninterrupted one.
    rng = torch.Generator().manual_seed(config.seed + start_epoch)
    if config.resume:
        state_path = run_dir / STATE_FILE
        try:
            # weights_only: a state.pt from elsewhere cannot run code (a pickled payload is refused).
            state = torch.load(state_path, map_location=device, weights_only=True)
            generator.load_state_dict(state["generator"])
            surrogate.load_state_dict(state["surrogate"])
            opt_g.load_state_dict(state["opt_g"])
            opt_f.load_state_dict(state["opt_f"])
            sched_f.load_state_dict(state["sched_f"])
            start_epoch = int(state["epoch"]) + 1
            if "rng" in state:
                rng.set_state(state["rng"])
                torch.set_rng_state(state["torch_rng"])
            else:  # a state.pt of an older segue: the run goes on, but not as it would have
                rng.manual_seed(config.seed + start_epoch)
        except Exception as exc:  # noqa: BLE001 (torch raises many types for damaged or foreign files)
            raise InputError(
                f"cannot resume from {state_path}: it is damaged, not written by segue train, or holds code "
                f"({exc.__class__.__name__}: {str(exc).splitlines()[0][:200] if str(exc) else 'no detail'})",
                f"start a new run without --resume (or into another --out); {state_path} is left as it is",
            ) from exc
        history = [EpochRecord(**json.loads(line)) for line in (run_dir / METRICS_FILE).read_text().splitlines() if line]
    else:
        atomic_write(run_dir / CONFIG_FILE, lambda tmp: tmp.write_text(json.dumps(_run_record(config, dataset, problems), indent=2)))

    stopped_early = False
    generator_path = run_dir / GENERATOR_FILE
    for epoch in range(start_epoch, total_epochs + 1):
        stage, period = epoch_stage(config, epoch)
        codes, code_kind = identity_codes(dataset, config.code_assignment, period, config.code_bits, config.seed)
        if keyed is not None:
            code_kind = "random"
        elif config.decoys:
            code_kind = "decoys"
        warmup = epoch <= config.surrogate_warmup
        if warmup:
            code_kind = "clean"
        batches = batch_order(len(targets), config.batch_size, rng, config.max_steps_per_epoch)
        emit(start_task("epoch_start", "epoch", f"epoch {epoch}/{total_epochs} {stage:9}", len(batches),
                        {"epoch": epoch, "epochs": total_epochs, "stage": stage, "steps": len(batches)}))
        epoch_started = time.perf_counter()
        step_fn = (partial(_surrogate_step, clean=warmup) if stage == "surrogate" else _generator_step)
        totals = {"loss": 0.0, "ce": 0.0, "correct": 0.0, "seen": 0.0, "l2": 0.0, "linf": 0.0, "identity": 0.0}
        for index in batches:
            x = images[index].to(device).float().div_(255.0)
            y = targets[index].to(device)
            if config.decoys:  # a fresh decoy per photo, never one that aims at its own identity
                signs = code_to_signs(decoy_codes(y.cpu(), config.decoys, len(dataset.identities), rng), config.code_bits).to(device)
            elif keyed is None:
                signs = _code_signs(codes, targets[index], config.code_bits).to(device)
            else:  # every code is a key: fresh ones every step, so none at protect time is new
                signs = random_code_signs(len(y), config.code_bits, rng).to(device)
            stats = step_fn(config, generator, surrogate, opt_g, opt_f, x, y, signs, rng, keyed, identity, index)
            for key in ("loss", "ce", "l2", "identity"):
                totals[key] += stats.get(key, 0.0) * len(y)
            totals["correct"] += stats["correct"]
            totals["seen"] += len(y)
            totals["linf"] = max(totals["linf"], stats["linf"])
            emit(step("step", "epoch", f"loss {stats['loss']:.4f} ce {stats['ce']:.4f}",
                      {"epoch": epoch, "stage": stage, "loss": stats["loss"], "ce": stats["ce"]}))
        if stage == "surrogate":
            sched_f.step()
        seen = max(totals["seen"], 1)
        record = EpochRecord(
            epoch=epoch, stage=stage, loss=totals["loss"] / seen, ce=totals["ce"] / seen,
            accuracy=totals["correct"] / seen, delta_l2=totals["l2"] / seen, delta_linf=totals["linf"],
            seconds=time.perf_counter() - epoch_started, codes=code_kind,
            identity_similarity=totals["identity"] / seen if identity is not None and stage == "generator" else None,
        )
        history.append(record)
        summary = _training_summary(config, dataset, history, time.perf_counter() - started, len(targets))
        save_generator(generator_path, generator, epsilon=config.epsilon, image_size=config.image_size, training=summary)
        _save_state(run_dir, epoch, generator, surrogate, opt_g, opt_f, sched_f, record, rng)
        emit(_epoch_end(record))
        # Never stop before the generator has trained once: its checkpoint would be random.
        # With --alpha 0 there is no surrogate loss to stop on.
        if config.alpha > 0 and record.ce < config.stop_loss and any(r.stage == "generator" for r in history):
            stopped_early = True
            emit(say("early_stop", f"early stop at epoch {epoch}: surrogate loss {record.ce:.5f}", {"epoch": epoch, "ce": record.ce}))
            break
    return TrainResult(run_dir, generator_path, len(history), stopped_early, history, time.perf_counter() - started)


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
        raise InputError(f"--surrogate-from {state_path}: cannot load a surrogate from it "
                         f"({exc.__class__.__name__}: {str(exc).splitlines()[0][:200] if str(exc) else 'no detail'})", fix) from exc


def epoch_stage(config: TrainConfig, epoch: int) -> tuple[str, int]:
    """(stage, surrogate period index) of a 1-based epoch, warm-up epochs included."""
    if config.alpha == 0:  # the identity term alone: nothing uses a surrogate, so none is trained
        return "generator", (epoch - 1) // config.surrogate_period
    if epoch <= config.surrogate_warmup:
        return "surrogate", 0
    k = epoch - config.surrogate_warmup
    if config.surrogate_warmup or config.surrogate_from:  # the surrogate is trained already: the generator goes first
        return ("surrogate" if k % config.surrogate_period == 0 else "generator"), k // config.surrogate_period
    return ("surrogate" if (k - 1) % config.surrogate_period == 0 else "generator"), (k - 1) // config.surrogate_period


def photo_size(config: TrainConfig) -> int:
    return round(config.image_size * config.photo_scale)


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    if x.shape[-2:] == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def _round_to_8_bits(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.round(x * 255.0) / 255.0 - x).detach()


def protected_photo(config: TrainConfig, generator: SegueGenerator, photos: torch.Tensor,
                    signs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(delta at the working size, the protected photo at the photos' size, as protect writes it)."""
    delta = config.epsilon * generator(_resize(photos, config.image_size), signs)
    return delta, photo_with_delta(photos, delta)


def photo_with_delta(photos: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """The protected photo as ``segue protect`` writes it: delta (at the working size, one
    or three channels) bilinearly upsampled to the photo, added, and rounded to 8 bits
    (straight-through, so gradients reach delta). No round trip when the sizes match."""
    if photos.shape[-2:] == delta.shape[-2:]:  # --photo-scale 1
        return (photos + delta).clamp(0, 1)
    upsampled = F.interpolate(delta, size=photos.shape[-2:], mode="bilinear", align_corners=False)
    return _round_to_8_bits((photos + upsampled).clamp(0, 1))


def seen_by_attacker(config: TrainConfig, protected: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """A protected photo as the attacker sees it: at the working size, ``gray_p`` of them in grayscale."""
    view = _resize(protected, config.image_size)
    if config.gray_p > 0:
        view = distortions.grayscale(view, torch.rand(len(view), generator=rng) < config.gray_p)
    return view


def attacker_view(config: TrainConfig, generator: SegueGenerator, photos: torch.Tensor,
                  signs: torch.Tensor, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(delta at the working size, the protected photo as the attacker sees it at the working size)."""
    delta, protected = protected_photo(config, generator, photos, signs)
    return delta, seen_by_attacker(config, protected, rng)


def _surrogate_step(config, generator, surrogate, opt_g, opt_f, x, y, signs, rng, keyed=None, identity=None,
                    index=None, clean=False) -> dict[str, float]:
    generator.eval()
    surrogate.train()
    with torch.no_grad():
        delta, view = attacker_view(config, generator, x, signs, rng)
        if clean or config.objective != "error-minimizing":
            # The surrogate stands for a model trained on clean photos: it never sees delta.
            view = _resize(x, config.image_size)
    if config.surrogate_rho > 0:
        # Robust error-minimizing noise (REM): the surrogate is trained adversarially, as an
        # attacker who uses adversarial training would be, so only noise that survives it helps.
        view = (view + pgd_noise(surrogate, view, y, config.surrogate_rho, max(1, config.pgd_steps))).clamp(0, 1)
    logits = surrogate(view)
    loss = F.cross_entropy(logits, y)
    opt_f.zero_grad(set_to_none=True)
    loss.backward()
    opt_f.step()
    return _stats(loss, loss, logits, y, delta)


def _generator_step(config, generator, surrogate, opt_g, opt_f, x, y, signs, rng, keyed=None, identity=None,
                    index=None) -> dict[str, float]:
    generator.train()
    surrogate.eval()
    surrogate.requires_grad_(False)
    try:
        delta, protected = protected_photo(config, generator, x, signs)
        perturbed = seen_by_attacker(config, protected, rng)
        params = distortions.sample(len(y), config.distortion, rng)

        def distort(batch: torch.Tensor) -> torch.Tensor:
            return distortions.apply(batch, params, config.distortion)

        if config.objective == "keyed-feature":
            # Move the surrogate's features of the photo along the code's direction.
            seen = distort(perturbed)
            with torch.no_grad():
                clean = penultimate(surrogate, distort(_resize(x, config.image_size)))
            moved = penultimate(surrogate, seen) - clean
            ce = 1.0 - F.cosine_similarity(moved, keyed.directions(signs), dim=1).mean()
            logits = surrogate.fc(moved + clean)
        elif config.alpha == 0:  # the identity term alone: the surrogate is not used
            ce, logits = torch.zeros(()), None
        else:
            if config.objective == "error-minimizing":
                wanted = y
            elif config.objective == "targeted" and config.decoys:
                wanted = (signs_to_codes(signs) + 1) % surrogate.fc.out_features
            elif config.objective == "targeted":
                wanted = (y + 1) % surrogate.fc.out_features
            else:
                wanted = keyed.decoys(signs, exclude=y)
            noise = pgd_noise(surrogate, perturbed, wanted, config.rho_d, config.pgd_steps, distort)
            logits = surrogate(distort((perturbed + noise).clamp(0, 1)))
            ce = F.cross_entropy(logits, wanted)
        # beta * mean L2 norm of delta, in [0, 1] pixel units, as in the paper.
        loss = config.alpha * ce + config.beta * delta.flatten(1).norm(dim=1).mean()
        if identity is not None:
            # Through the same distortions, but not the flips: the chip's place is the clean photo's.
            similarity = identity.similarity(distortions.apply(protected, params.without_flips(), config.distortion), index, y)
            loss = loss + config.identity_weight * similarity
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        opt_g.step()
    finally:
        surrogate.requires_grad_(True)
    stats = _stats(loss, ce, logits, y, delta)
    if identity is not None:
        stats["identity"] = float(similarity.detach())
    return stats


def _epoch_end(record: EpochRecord) -> ProgressEvent:
    figures = (f"ce {record.ce:.4f} acc {record.accuracy:.2f} |d|2 {record.delta_l2:.3f} "
               + (f"identity cos {record.identity_similarity:.3f} " if record.identity_similarity is not None else "")
               + f"{record.seconds:.0f}s")
    # One permanent line per epoch, so logs of unattended runs show progress too.
    return ProgressEvent("epoch_end", asdict(record), task="epoch", text=figures,
                         line=f"epoch {record.epoch} {record.stage} ({record.codes} codes): {figures}")


def _stats(loss, ce, logits, y, delta) -> dict[str, float]:
    return {
        "loss": float(loss.detach()),
        "ce": float(ce.detach()),
        "correct": float((logits.argmax(1) == y).sum()) if logits is not None else 0.0,
        "l2": float(delta.detach().flatten(1).norm(dim=1).mean()),
        "linf": float(delta.detach().abs().max()),
    }


def _save_state(run_dir: Path, epoch: int, generator, surrogate, opt_g, opt_f, sched_f, record: EpochRecord,
                rng: torch.Generator) -> None:
    state = {
        "epoch": epoch,
        "rng": rng.get_state(),
        "torch_rng": torch.get_rng_state(),
        "generator": generator.state_dict(),
        "surrogate": surrogate.state_dict(),
        "opt_g": opt_g.state_dict(),
        "opt_f": opt_f.state_dict(),
        "sched_f": sched_f.state_dict(),
    }
    atomic_write(run_dir / STATE_FILE, lambda tmp: torch.save(state, tmp))
    with open(run_dir / METRICS_FILE, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(asdict(record)) + "\n")


def _run_record(config: TrainConfig, dataset: LabelledSet, problems: list[str]) -> dict[str, Any]:
    return {
        "config": config.to_dict(),
        "identities": dataset.identities,
        "images": len(dataset.items),
        "skipped_images": problems,
        "segue_version": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def _training_summary(config: TrainConfig, dataset: LabelledSet, history: list[EpochRecord], seconds: float,
                      images: int) -> dict[str, Any]:
    last = history[-1]
    return {
        "data": str(config.data),
        "images": images,
        "identities": len(dataset.identities),
        "epochs_run": len(history),
        "generator_epochs": sum(1 for record in history if record.stage == "generator"),
        "surrogate_warmup_epochs": sum(1 for record in history if record.codes == "clean"),
        "last_epoch": asdict(last),
        "seconds": round(seconds, 1),
        "seed": config.seed,
        "config": config.to_dict(),
        "segue_version": __version__,
        "torch": torch.__version__,
    }
