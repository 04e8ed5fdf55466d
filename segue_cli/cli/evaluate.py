"""Play the attacker: train face classifiers on the protected photos and measure what they learn.

Trains each --arch from scratch on --train-protected and, as the baseline, on
--train-clean (same seed, same counter-measure), and tests both on the clean --test
photos after every epoch. With --attacker-pipeline detect-align the attacker first
reduces every photo to its largest face, aligned to 112 x 112, as a scraper would. All three are ImageFolder trees (<identity>/<images>) with the
same identity folders; protected and clean train images pair up by path without suffix.
Settings follow protocol P112 (docs/benchmark-protocol.md) unless an option changes
them; the report lists every departure. Writes report.md, results.json and PNG figures
into a new run folder (runs/eval, runs/eval-2, ...: never overwritten).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from ..faces import DETECTOR_CHOICES
from ..choices import ATTACKER_PIPELINES, EMBEDDING_ATTACKER_NAMES
from ..nn import ATTACKER_NAMES
from ..evaluation.countermeasures import COUNTERMEASURE_HELP
from .options import DeviceOption, JsonOption
from .render import ProgressRenderer, print_json, progress, stderr_console

def evaluate(
    train_protected: Annotated[Path, typer.Option("--train-protected", help="Protected train set: <identity>/<images> (e.g. `segue protect` output).")],
    train_clean: Annotated[Path, typer.Option("--train-clean", help="The clean originals of --train-protected, same <identity>/<name> paths (suffix may differ).")],
    test: Annotated[Path, typer.Option("--test", help="Clean test set of the same identities: <identity>/<images>.")],
    out: Annotated[Path, typer.Option("--out", help="Run folder to create; if it exists a new one is made beside it (eval-2, eval-3, ...).")] = Path("runs/eval"),
    protocol: Annotated[str, typer.Option("--protocol", help="Preset for every knob below: p112 (the project's benchmark), p112-screen (P112 with 8 epochs instead of 20, to rank variants quickly; recorded as a departure), p112-unseen (P112 on people the model never saw, LFW48, everyone protected under hashed names: the report gives the protected attacker's lead over chance as a share of the clean attacker's) or p112-few (P112 with only a few people protected: the report gives their recall against the same people's when nobody is protected). docs/benchmark-protocol.md defines each. Options given explicitly override it and are reported as departures.")] = "p112",
    arch: Annotated[Optional[list[str]], typer.Option("--arch", help=f"Attacker, repeatable. Trained from scratch on the train set: {', '.join(ATTACKER_NAMES)} (default resnet18). Pretrained face recognition, nothing trained: {', '.join(EMBEDDING_ATTACKER_NAMES)} (dlib's 128-d face network enrols the train photos and matches the test photos by nearest class mean, nearest neighbour and a linear probe; minutes, not the 20-40 of a from-scratch run; takes only the none, gray and jpeg-Q counter-measures).")] = None,
    attack: Annotated[Optional[list[str]], typer.Option("--attack", help=f"Counter-measure scenario, repeatable (each is a separate pair of runs): {COUNTERMEASURE_HELP}. Default none.")] = None,
    attacker_pipeline: Annotated[str, typer.Option("--attacker-pipeline", help=f"What the attacker does to each photo before training: {' | '.join(ATTACKER_PIPELINES)}. none: resize the whole photo (P112's face crops). detect-align: detect faces in every train and test photo, align the largest to the 112 x 112 ArcFace crop (no face: centred square crop, counted in the report).")] = "none",
    detector: Annotated[str, typer.Option("--detector", help=f"The attacker's face detector under detect-align: {', '.join(DETECTOR_CHOICES)} (auto: YuNet, else dlib).")] = "auto",
    epochs: Annotated[Optional[int], typer.Option("--epochs", help="Training epochs per attacker (P112: 20).")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", help="Batch size (P112: 32).")] = None,
    lr: Annotated[Optional[float], typer.Option("--lr", help="Adam learning rate, cosine-annealed over all steps (P112: 5e-4).")] = None,
    image_size: Annotated[Optional[int], typer.Option("--image-size", help="Attacker input size in px, antialiased bilinear resize (P112: 112).")] = None,
    quality_size: Annotated[Optional[int], typer.Option("--quality-size", help="Size in px at which PSNR/SSIM/MS-SSIM are measured (P112: 224).")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Seed of weights, batch order and augmentation (P112: 0).")] = None,
    skip_baseline: Annotated[bool, typer.Option("--skip-baseline", help="Do not train the clean baseline (a departure from P112).")] = False,
    limit_per_identity: Annotated[Optional[int], typer.Option("--limit-per-identity", help="Use only the first N train and test images of each identity (quick runs; a departure from P112).")] = None,
    bf16: Annotated[bool, typer.Option("--bf16", help="Train and test in bfloat16 autocast: faster on CPUs with AVX512-BF16 (2x for a ResNet18 step here, 1.25x for a whole epoch), but a departure from P112 (float32).")] = False,
    threads: Annotated[int, typer.Option("--threads", help="Torch CPU threads; 0 = every core. On a machine shared with other busy jobs use 1 (two threads ran 3x slower than one there).")] = 0,
    workers: Annotated[int, typer.Option("--workers", help="Threads for decoding images.")] = 2,
    channels_last: Annotated[bool, typer.Option("--channels-last/--no-channels-last", help="channels-last memory layout (faster CPU convolutions, same maths up to rounding).")] = True,
    device: DeviceOption = "auto",
    json_output: JsonOption = False,
) -> None:
    from ..extras import require

    require("evaluate")
    overrides: dict[str, Any] = {
        key: value for key, value in {
            "epochs": epochs, "batch_size": batch_size, "lr": lr, "image_size": image_size,
            "quality_size": quality_size, "seed": seed, "limit_per_identity": limit_per_identity,
        }.items() if value is not None
    }
    if skip_baseline:
        overrides["baseline"] = False
    if bf16:
        overrides["bf16"] = True
    if arch:
        overrides["archs"] = tuple(arch)
    if attack:
        overrides["attacks"] = tuple(attack)
    from ..evaluation import p112
    from ..evaluation.report import summary_rows

    config = p112(train_protected, train_clean, test, out=out, protocol=protocol, device=device, threads=threads, workers=workers,
                  channels_last=channels_last, attacker_pipeline=attacker_pipeline, detector=detector, **overrides)
    result = _run_with_progress(config)
    rows = summary_rows(result.results)
    if json_output:
        print_json({
            "run_dir": str(result.run_dir), "protocol": config.protocol, "departures": config.departures(),
            "chance_accuracy": result.results["chance_accuracy"], "summary": rows,
            "attacker_pipeline": result.results["attacker_pipeline"],
            "quality": result.results["quality"], "seconds": result.results["timing"].get("total_s"),
        })
        return
    _print_summary(result.results, rows, result.run_dir)


def _run_with_progress(config):
    from ..evaluation import run_evaluation

    with progress(transient=False) as bar:
        return run_evaluation(config, ProgressRenderer(bar))


def _print_summary(results: dict[str, Any], rows: list[dict[str, Any]], run_dir: Path) -> None:
    table = Table(title=f"clean-test accuracy, % (chance {results['chance_accuracy']:.1f})")
    for column in ("attacker", "counter-measure", "baseline final/peak", "protected final/peak"):
        table.add_column(column, overflow="fold")

    def cell(entry: dict[str, Any] | None) -> str:
        return "-" if entry is None else f"{entry['final']:.1f} / {entry['peak']:.1f}"

    for row in rows:
        table.add_row(row["arch"], row["attack"], cell(row.get("clean")), cell(row.get("protected")))
    stderr_console.print(table)
    from ..evaluation.report import protocol_lines

    for line in protocol_lines(rows):
        stderr_console.print(line, highlight=False, soft_wrap=True)
    pipeline = results["attacker_pipeline"]
    if pipeline["name"] != "none":
        found = ", ".join(f"{name} {c['face_found']}/{c['images']}" for name, c in pipeline["sets"].items())
        stderr_console.print(f"attacker pipeline {pipeline['name']} ({pipeline['detector']}): faces found in {found}; "
                             f"no face: {pipeline['no_face_fallback']}", highlight=False)
    if results["departures"]:
        stderr_console.print(f"departures from {results['protocol'].upper()}: {', '.join(results['departures'])}",
                             highlight=False)
    stderr_console.print(f"report: {run_dir / 'report.md'}", highlight=False)
