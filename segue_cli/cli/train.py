"""Train a Segue generator on labelled face photos (two-stage alternating training).

DATA is an ImageFolder tree (<identity>/<images>; the folder name is the identity) or a
labels CSV written by `segue cluster`. Writes a run folder with config.json,
metrics.jsonl (one line per epoch), state.pt (to --resume) and generator.safetensors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..train import OBJECTIVE_HELP
from .options import DeviceOption, JsonOption, SeedOption
from .render import ProgressRenderer, print_json, progress, stderr_console


def train(
    data: Annotated[Path, typer.Argument(metavar="DATA", help="ImageFolder tree (<identity>/<images>) or labels .csv from `segue cluster`.")],
    out: Annotated[Path, typer.Option("--out", help="Run folder. If it exists a new one is made beside it (out-2, ...), unless --resume.")] = Path("runs/train"),
    labels: Annotated[Optional[Path], typer.Option("--labels", help="Labels CSV (path,label) instead of folder names; same as passing the CSV as DATA.")] = None,
    image_size: Annotated[int, typer.Option("--image-size", help="Working size in pixels; also the size protect computes at. 112 = face-recognition standard.")] = 112,
    epochs: Annotated[int, typer.Option("--epochs", help="Total epochs E (paper: 20-30). Every --surrogate-period-th epoch trains the surrogate.")] = 20,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Batch size (paper: 16).")] = 16,
    lr_generator: Annotated[float, typer.Option("--lr-generator", help="Adam learning rate of the generator (paper: 5e-4).")] = 5e-4,
    lr_surrogate: Annotated[float, typer.Option("--lr-surrogate", help="Adam learning rate of the surrogate, cosine schedule (paper: 5e-4).")] = 5e-4,
    alpha: Annotated[float, typer.Option("--alpha", help="Weight of the surrogate's cross-entropy in the generator loss (paper: 1). 0 with --identity-weight > 0: the identity term alone, and no surrogate is trained (its ce and acc then read 0).")] = 1.0,
    beta: Annotated[float, typer.Option("--beta", help="Weight of the mean L2 norm of the perturbation (paper: 0.001).")] = 0.001,
    epsilon: Annotated[float, typer.Option("--epsilon", help="L-inf bound of the perturbation in [0,1] units (paper: 8/255 = 0.0314).")] = 8 / 255,
    surrogate_period: Annotated[int, typer.Option("--surrogate-period", help="Train the surrogate when (epoch-1) % period == 0 (paper: 5).")] = 5,
    surrogate_from: Annotated[Optional[Path], typer.Option("--surrogate-from", metavar="<path>", help="Start the surrogate from the state.pt of another segue train run on the same identities (e.g. one made with --surrogate-warmup), instead of from scratch; the generator then goes first. Reuses one warm-up for many runs.")] = None,
    surrogate_warmup: Annotated[int, typer.Option("--surrogate-warmup", help="Epochs that train the surrogate on clean photos before the alternating ones (0: none, as the paper). --epochs then counts the epochs after them, and the generator goes first. For --objective targeted: aim at a fully trained classifier.")] = 0,
    stop_loss: Annotated[float, typer.Option("--stop-loss", help="Stop early once the surrogate's loss on perturbed data is below this (paper: 0.001).")] = 0.001,
    rho_d: Annotated[float, typer.Option("--rho-d", help="Budget of the adversarial noise in the distortion layer (paper: 1/255).")] = 1 / 255,
    pgd_steps: Annotated[int, typer.Option("--pgd-steps", help="PGD steps for that noise (paper: 5; 0 disables it).")] = 5,
    surrogate_rho: Annotated[float, typer.Option("--surrogate-rho", help="Train the surrogate adversarially (PGD of this L-inf budget, --pgd-steps steps, at least 1) in its passes, as an attacker who uses adversarial training (REM); 0: plain training as in the paper.")] = 0.0,
    blur_sigma: Annotated[float, typer.Option("--blur-sigma", help="Gaussian blur sigma of the distortion layer, kernel 3 (paper: 0.2).")] = 0.2,
    sharpness: Annotated[float, typer.Option("--sharpness", help="Sharpness factor of the distortion layer (paper: 2).")] = 2.0,
    flip_p: Annotated[float, typer.Option("--flip-p", help="Probability of each of horizontal and vertical flips (paper: 0.1).")] = 0.1,
    jpeg_p: Annotated[float, typer.Option("--jpeg-p", help="Probability of differentiable JPEG (quality 50-95) per batch (not in the paper's code).")] = 0.5,
    resize_p: Annotated[float, typer.Option("--resize-p", help="Probability of a down-then-up resize (scale 0.5-1) per batch (an attacker's resize).")] = 0.5,
    surrogate_stem: Annotated[str, typer.Option("--surrogate-stem", help="ResNet18 stem: standard (torchvision, as the P112 attacker) or small (official code for <= 112 px; 16x slower).")] = "standard",
    code_assignment: Annotated[str, typer.Option("--code-assignment", help="Codes seen in training: mixed (own codes and random codes, alternating by period), labels, or random.")] = "mixed",
    pattern_grid: Annotated[int, typer.Option("--pattern-grid", help="Cells per side of the smooth code pattern the generator stretches over the image (0: the paper's generator without it; see docs/training.md).")] = 4,
    objective: Annotated[str, typer.Option("--objective", help=f"What the generator learns: {OBJECTIVE_HELP}")] = "error-minimizing",
    generator_width: Annotated[int, typer.Option("--generator-width", help="Channels of the generator's first layer (its deeper layers have 2x and 4x): 8 is the paper's (about 0.1 M parameters); 16 has about 4x the parameters and compute. Protect time grows with it.")] = 8,
    decoys: Annotated[int, typer.Option("--decoys", help="With --objective targeted: train on K decoy codes only, each photo with a fresh one every step, code d aiming at training identity (d + 1) mod the number of identities (never the photo's own; more decoys than identities give several patterns per aim, so fewer people share one). segue protect then maps every name and label into those K codes, so a name never seen in training is as familiar as a label. People who share a decoy share their shortcut. 0 (default): off.")] = 0,
    identity_weight: Annotated[float, typer.Option("--identity-weight", help="Weight of a second term that moves each protected face's embedding in dlib's face-recognition network (its PyTorch twin) away from the identity's clean photos, against attackers who match with a pretrained network; 0 (default): off. Needs dlib (the train extra).")] = 0.0,
    luma: Annotated[bool, typer.Option("--luma", help="Luminance perturbation: the generator makes one channel added to R, G and B alike, so it survives an attacker's grayscale conversion, keeps black-and-white photos black and white and cannot tint (default: colour, as the paper).")] = False,
    photo_scale: Annotated[float, typer.Option("--photo-scale", help="Train against the attacker's view: photos at this many times --image-size, perturbation upsampled to them as protect does, rounded to 8 bits and resized back (1: no round trip; 2 matches 224 px crops and protocol P112).")] = 2.0,
    gray_p: Annotated[float, typer.Option("--gray-p", help="Share of photos the surrogate and the generator's loss see in grayscale (ITU-R 601-2 luma), as an attacker who drops colour; 0: never.")] = 0.0,
    skip_bad_images: Annotated[bool, typer.Option("--skip-bad-images", help="Leave out unreadable or tiny images (listed in config.json) instead of stopping.")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out from its last finished epoch (its saved settings are used; --epochs may extend it).")] = False,
    max_steps: Annotated[Optional[int], typer.Option("--max-steps", help="Cap the batches per epoch (quick smoke runs).")] = None,
    workers: Annotated[int, typer.Option("--workers", help="Threads for decoding images.")] = 2,
    seed: SeedOption = 0,
    device: DeviceOption = "auto",
    json_output: JsonOption = False,
) -> None:
    from ..extras import require

    require("train")
    from ..nn.distortions import DistortionConfig
    from ..train import TrainConfig, train as run_training

    config = TrainConfig(
        data=labels or data, out=out, image_size=image_size, epochs=epochs, batch_size=batch_size,
        lr_generator=lr_generator, lr_surrogate=lr_surrogate, alpha=alpha, beta=beta, epsilon=epsilon,
        surrogate_period=surrogate_period, surrogate_warmup=surrogate_warmup, surrogate_from=surrogate_from, stop_loss=stop_loss, rho_d=rho_d, pgd_steps=pgd_steps, surrogate_rho=surrogate_rho,
        surrogate_stem=surrogate_stem, code_assignment=code_assignment, pattern_grid=pattern_grid, luma=luma, objective=objective, identity_weight=identity_weight, decoys=decoys, generator_width=generator_width, photo_scale=photo_scale, gray_p=gray_p,
        distortion=DistortionConfig(blur_sigma=blur_sigma, sharpness=sharpness, flip_p=flip_p, jpeg_p=jpeg_p, resize_p=resize_p),
        seed=seed, device=device, workers=workers, skip_bad_images=skip_bad_images, resume=resume,
        max_steps_per_epoch=max_steps,
    )
    with progress(transient=False) as bar:
        result = run_training(config, ProgressRenderer(bar))
    summary = {
        "run_dir": str(result.run_dir), "generator": str(result.generator_path), "epochs_run": result.epochs_run,
        "stopped_early": result.stopped_early, "seconds": round(result.seconds, 1),
        "last_epoch": result.history[-1].__dict__ if result.history else None,
    }
    if json_output:
        print_json(summary)
    else:
        stderr_console.print(f"trained {result.epochs_run} epochs in {result.seconds:.0f} s; generator: {result.generator_path}",
                             highlight=False, soft_wrap=True)
