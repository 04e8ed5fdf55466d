"""``segue train``: Algorithm 1 of the paper, two-stage alternating training, as one flat loop.

Epoch e (1-based) trains the surrogate f for one pass on perturbed images when
``(e - 1) % surrogate_period == 0``, otherwise the generator G for one pass with
L_G = alpha * term + beta * mean ||delta||_2, f frozen, where the objective's term
(``objectives.py``) is, for the paper's, CE(f(T(x + delta + rho)), y) with T the
distortion layer and rho adversarial noise of budget rho_d. With ``surrogate_rho`` > 0
the surrogate's own pass is adversarial training of that budget (as in REM).

With ``surrogate_warmup`` W > 0 the run starts with W epochs that train the surrogate on
CLEAN photos (the attacker's view of them), so that a targeted poison aims at what a
fully trained classifier finds in a face rather than at a half-trained one; ``epochs``
then counts the epochs after them, and the alternation starts with the generator.
``surrogate_from`` starts the surrogate from another run's ``state.pt`` instead, also
generator first.

Side information: each surrogate period (f pass + the G passes after it) gives every
training identity a code. Even periods use the identity's own code (label or hashed
folder name, see side_info); odd periods draw fresh random codes, so G learns to make
separable perturbations for codes it never saw, which ``--identity NAME`` needs at
protect time (``code_assignment`` switches this off). What f sees is what an attacker
sees (``views.py``).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..artifacts import save_generator
from ..datasets import LabelledSet, batch_order, decode_images, load_labelled, require_identities
from ..backends import resolve_device
from ..nn import distortions
from ..nn.generator import GeneratorConfig, SegueGenerator
from ..nn.surrogate import build_surrogate, pgd_noise
from ..progress import ProgressCallback, ProgressEvent, ignore, say, start_task, step
from ..nn.codes import folder_code, random_codes
from ..storage import prepare_run_dir
from . import OBJECTIVES
from .config import GENERATOR_FILE, TrainConfig
from .identity import IdentityObjective
from .objectives import Objective
from .state import EpochRecord, TrainState, load_surrogate, resumed_config, training_summary, write_run_record
from .views import attacker_view, photo_size, protected_photo, resize, seen_by_attacker


@dataclass
class TrainResult:
    run_dir: Path
    generator_path: Path
    epochs_run: int
    stopped_early: bool
    history: list[EpochRecord]
    seconds: float


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
    run_dir = config.out if config.resume else prepare_run_dir(config.out)
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
    for problem in problems:
        emit(say("skipped_image", f"skipped: {problem}", {"problem": problem}, warning=True))

    identity = None
    if config.identity_weight > 0:
        from .identity import prepare as prepare_identity

        emit(start_task("identity_start", "identity", "locating faces (identity term)", len(targets)))
        identity = prepare_identity(images, targets, len(dataset.identities), on_photo=lambda: emit(step("identity_photo", "identity")))
    objective: Objective = OBJECTIVES[config.objective].load()(config, generator, surrogate, len(dataset.identities))
    opt_f = torch.optim.Adam(surrogate.parameters(), lr=config.lr_surrogate)
    total_epochs = config.surrogate_warmup + config.epochs
    surrogate_epochs = sum(1 for epoch in range(1, total_epochs + 1) if epoch_stage(config, epoch)[0] == "surrogate")
    state = TrainState(generator, surrogate, torch.optim.Adam(generator.parameters(), lr=config.lr_generator), opt_f,
                       torch.optim.lr_scheduler.CosineAnnealingLR(opt_f, T_max=max(1, surrogate_epochs)),
                       torch.Generator().manual_seed(config.seed + 1))
    if config.resume:
        state.restore(run_dir, device, config.seed)
    else:
        write_run_record(run_dir, config, dataset, problems)

    stopped_early = False
    generator_path = run_dir / GENERATOR_FILE
    for epoch in range(state.epoch + 1, total_epochs + 1):
        stage, period = epoch_stage(config, epoch)
        codes, assigned = identity_codes(dataset, config.code_assignment, period, config.code_bits, config.seed)
        warmup = epoch <= config.surrogate_warmup
        code_kind = "clean" if warmup else objective.code_kind(assigned)
        batches = batch_order(len(targets), config.batch_size, state.rng, config.max_steps_per_epoch)
        emit(start_task("epoch_start", "epoch", f"epoch {epoch}/{total_epochs} {stage:9}", len(batches),
                        {"epoch": epoch, "epochs": total_epochs, "stage": stage, "steps": len(batches)}))
        epoch_started = time.perf_counter()
        totals = {"loss": 0.0, "ce": 0.0, "correct": 0.0, "seen": 0.0, "l2": 0.0, "linf": 0.0, "identity": 0.0}
        for index in batches:
            x = images[index].to(device).float().div_(255.0)
            y = targets[index].to(device)
            signs = objective.batch_signs(codes, targets[index], y, state.rng).to(device)
            if stage == "surrogate":
                stats = surrogate_step(config, objective, state, x, y, signs, clean=warmup)
            else:
                stats = generator_step(config, objective, state, x, y, signs, identity, index)
            for key in ("loss", "ce", "l2", "identity"):
                totals[key] += stats.get(key, 0.0) * len(y)
            totals["correct"] += stats["correct"]
            totals["seen"] += len(y)
            totals["linf"] = max(totals["linf"], stats["linf"])
            emit(step("step", "epoch", f"loss {stats['loss']:.4f} ce {stats['ce']:.4f}",
                      {"epoch": epoch, "stage": stage, "loss": stats["loss"], "ce": stats["ce"]}))
        if stage == "surrogate":
            state.sched_f.step()
        seen = max(totals["seen"], 1)
        record = EpochRecord(
            epoch=epoch, stage=stage, loss=totals["loss"] / seen, ce=totals["ce"] / seen,
            accuracy=totals["correct"] / seen, delta_l2=totals["l2"] / seen, delta_linf=totals["linf"],
            seconds=time.perf_counter() - epoch_started, codes=code_kind,
            identity_similarity=totals["identity"] / seen if identity is not None and stage == "generator" else None,
        )
        state.history.append(record)
        summary = training_summary(config, dataset, state.history, time.perf_counter() - started, len(targets))
        save_generator(generator_path, generator, epsilon=config.epsilon, image_size=config.image_size, training=summary)
        state.save(run_dir, record)
        emit(epoch_end(record))
        # Never stop before the generator has trained once: its checkpoint would be random.
        # With --alpha 0 there is no surrogate loss to stop on.
        if config.alpha > 0 and record.ce < config.stop_loss and any(r.stage == "generator" for r in state.history):
            stopped_early = True
            emit(say("early_stop", f"early stop at epoch {epoch}: surrogate loss {record.ce:.5f}", {"epoch": epoch, "ce": record.ce}))
            break
    return TrainResult(run_dir, generator_path, len(state.history), stopped_early, state.history, time.perf_counter() - started)


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


def identity_codes(dataset: LabelledSet, assignment: str, period: int, code_bits: int, seed: int) -> tuple[list[int], str]:
    """Codes for each identity in this surrogate period (see module docstring)."""
    use_random = assignment == "random" or (assignment == "mixed" and period % 2 == 1)
    if not use_random:
        return [folder_code(name, code_bits) for name in dataset.identities], "labels"
    rng = torch.Generator().manual_seed(seed * 1_000_003 + period)
    return random_codes(len(dataset.identities), code_bits, rng), "random"


def surrogate_step(config: TrainConfig, objective: Objective, state: TrainState, x: torch.Tensor, y: torch.Tensor,
                   signs: torch.Tensor, clean: bool = False) -> dict[str, float]:
    state.generator.eval()
    state.surrogate.train()
    with torch.no_grad():
        delta, view = attacker_view(config, state.generator, x, signs, state.rng)  # type: ignore[arg-type]
        if clean or objective.surrogate_learns_clean:
            view = resize(x, config.image_size)  # the surrogate stands for a model trained on clean photos
    if config.surrogate_rho > 0:
        # Robust error-minimizing noise (REM): the surrogate is trained adversarially, as an
        # attacker who uses adversarial training would be, so only noise that survives it helps.
        view = (view + pgd_noise(state.surrogate, view, y, config.surrogate_rho, max(1, config.pgd_steps))).clamp(0, 1)
    logits = state.surrogate(view)
    loss = F.cross_entropy(logits, y)
    state.opt_f.zero_grad(set_to_none=True)
    loss.backward()
    state.opt_f.step()
    return _stats(loss, loss, logits, y, delta)


def generator_step(config: TrainConfig, objective: Objective, state: TrainState, x: torch.Tensor, y: torch.Tensor,
                   signs: torch.Tensor, identity: IdentityObjective | None, index: torch.Tensor) -> dict[str, float]:
    state.generator.train()
    state.surrogate.eval()
    state.surrogate.requires_grad_(False)
    try:
        delta, protected = protected_photo(config, state.generator, x, signs)  # type: ignore[arg-type]
        perturbed = seen_by_attacker(config, protected, state.rng)
        params = distortions.sample(len(y), config.distortion, state.rng)

        def distort(batch: torch.Tensor) -> torch.Tensor:
            return distortions.apply(batch, params, config.distortion)

        ce, logits = objective.term(perturbed, x, y, signs, distort)
        # beta * mean L2 norm of delta, in [0, 1] pixel units, as in the paper.
        loss = config.alpha * ce + config.beta * delta.flatten(1).norm(dim=1).mean()
        if identity is not None:
            # Through the same distortions, but not the flips: the chip's place is the clean photo's.
            similarity = identity.similarity(distortions.apply(protected, params.without_flips(), config.distortion), index, y)
            loss = loss + config.identity_weight * similarity
        state.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        state.opt_g.step()
    finally:
        state.surrogate.requires_grad_(True)
    stats = _stats(loss, ce, logits, y, delta)
    if identity is not None:
        stats["identity"] = float(similarity.detach())
    return stats


def epoch_end(record: EpochRecord) -> ProgressEvent:
    figures = (f"ce {record.ce:.4f} acc {record.accuracy:.2f} |d|2 {record.delta_l2:.3f} "
               + (f"identity cos {record.identity_similarity:.3f} " if record.identity_similarity is not None else "")
               + f"{record.seconds:.0f}s")
    # One permanent line per epoch, so logs of unattended runs show progress too.
    return ProgressEvent("epoch_end", asdict(record), task="epoch", text=figures,
                         line=f"epoch {record.epoch} {record.stage} ({record.codes} codes): {figures}")


def _stats(loss: torch.Tensor, ce: torch.Tensor, logits: torch.Tensor | None, y: torch.Tensor,
           delta: torch.Tensor) -> dict[str, float]:
    return {
        "loss": float(loss.detach()),
        "ce": float(ce.detach()),
        "correct": float((logits.argmax(1) == y).sum()) if logits is not None else 0.0,
        "l2": float(delta.detach().flatten(1).norm(dim=1).mean()),
        "linf": float(delta.detach().abs().max()),
    }
