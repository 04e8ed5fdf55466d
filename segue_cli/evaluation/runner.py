"""``segue evaluate``: play the attacker against a protected training set.

For every counter-measure scenario and every architecture: train on the protected train
set and (unless skipped) on the clean one, test both on the clean test set after every
epoch. With ``attacker_pipeline="detect-align"`` every train and test photo is first
reduced to its largest face, aligned (``alignment.py``), as a scraper would. An embedding
attacker (``--arch embedding-dlib``) trains nothing: it embeds the train and test photos
with a pretrained face network and matches them (``embedding_attack.py``). Measure the
protected set's image quality against the clean originals. Write
``results.json`` (rewritten after every finished run, so an interrupted evaluation keeps
what it measured), ``report.md`` and PNG figures into a new run folder.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..progress import ProgressCallback, ProgressEvent, ignore, say, start_task, step
from .. import __version__
from ..choices import EMBEDDING_ATTACKER_NAMES
from ..datasets import decode_images
from ..backends import resolve_device
from ..faces.detectors import open_detector
from ..faces.geometry import FaceDetector
from ..storage import prepare_run_dir
from . import figures
from .alignment import ALIGN_SIZE, ALIGN_TEMPLATE, NO_FACE_FALLBACK
from .config import EvaluateConfig
from .countermeasures import Scenario, decode_transform, prepare_train_set
from .data import EvaluationData, load_evaluation_data
from .embedding_attack import open_embedder, score_embeddings
from .quality import measure_quality
from .report import FIGURES, write_report, write_results
from .trainer import AttackRun, TrainSettings, train_attacker

PACKAGES = ("torch", "torchvision", "numpy", "pillow", "pytorch-msssim", "matplotlib")
SCHEMA_VERSION = 1


@dataclass
class EvaluationResult:
    run_dir: Path
    results: dict[str, Any]


def environment(device: torch.device, threads: int) -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "segue": __version__, "python": platform.python_version(), "packages": versions,
        "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(), "torch_threads": threads, "device": str(device),
        "cuda": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
    }


def _set_tensors(data: EvaluationData, name: str, scenario: Scenario, size: int, emit: ProgressCallback,
                 detector: FaceDetector | None):
    test_set = name == "test"
    return data.tensors(name, size, decode_transform(scenario, test_set=test_set), scenario.decode_key(test_set), emit,
                        detector=detector)


def _pipeline_record(config: EvaluateConfig, detector: FaceDetector | None) -> dict[str, Any]:
    if detector is None:
        return {"name": "none", "note": "each photo resized whole to the attacker's size"}
    return {
        "name": config.attacker_pipeline, "detector_option": config.detector, "detector": detector.name,
        "align_size": ALIGN_SIZE, "template": ALIGN_TEMPLATE, "face": "largest face of each photo",
        "no_face_fallback": NO_FACE_FALLBACK, "sets": {},
    }


def _strip(config: EvaluateConfig, data: EvaluationData, run_dir: Path) -> None:
    """One pair per identity (first image), up to ``strip_images``, at the quality size."""
    chosen: list[tuple[Path, Path]] = []
    captions: list[str] = []
    seen: set[str] = set()
    for protected, clean in data.pairs:
        identity = protected.parent.name
        if identity not in seen and len(chosen) < config.strip_images:
            seen.add(identity)
            chosen.append((protected, clean))
            captions.append(f"{identity}/{protected.stem}")
    size = config.quality_size
    protected_images, _, _ = decode_images([p for p, _ in chosen], size, workers=config.workers)
    clean_images, _, _ = decode_images([c for _, c in chosen], size, workers=config.workers)

    def hwc(t: torch.Tensor) -> np.ndarray:
        return t.permute(0, 2, 3, 1).numpy()

    figures.residual_strip(hwc(clean_images), hwc(protected_images), run_dir / FIGURES["strip"], captions)


def _embedding_runs(config: EvaluateConfig, data: EvaluationData, arch: str, scenario: Scenario,
                    train_sets: tuple[str, ...], embedder: Any, emit: ProgressCallback) -> list[dict[str, Any]]:
    """Embed (once, cached) and match: one record per matcher and train set."""
    pipeline = config.attacker_pipeline

    def embedded(name: str) -> tuple[np.ndarray, np.ndarray]:
        test_set = name == "test"
        return data.embeddings(name, embedder, decode_transform(scenario, test_set=test_set),
                               scenario.decode_key(test_set), emit, pipeline=pipeline)

    started = time.perf_counter()
    test = embedded("test")
    records = []
    for train_set in train_sets:
        train = embedded(train_set)
        for run in score_embeddings(arch, scenario.name, train_set, train, test, data.identities, config.seed,
                                    seconds=time.perf_counter() - started):
            emit(say("embedding_result", f"{run.arch} {run.attack} {run.train_set}: {run.final_accuracy:.1f}%", run.to_dict()))
            records.append(run.to_dict())
    return records


def run_evaluation(config: EvaluateConfig, progress: ProgressCallback | None = None) -> EvaluationResult:
    emit = progress or ignore
    started = time.perf_counter()
    device = resolve_device(config.device)
    threads = config.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    scenarios = config.scenarios
    data = load_evaluation_data(config.train_protected, config.train_clean, config.test,
                                limit_per_identity=config.limit_per_identity, workers=config.workers)
    detector = open_detector(config.detector) if config.attacker_pipeline == "detect-align" else None
    run_dir = prepare_run_dir(config.out)
    emit(say("run_dir", f"run folder: {run_dir}", {"path": str(run_dir)}))

    results: dict[str, Any] = {
        "schema": "segue-evaluation", "schema_version": SCHEMA_VERSION, "status": "running",
        "protocol": config.protocol, "departures": config.departures(), "config": config.to_dict(),
        "command": config.as_command(),
        "data": {
            "identities": data.identities, "num_classes": data.num_classes, "images": data.counts(),
            "paths": {"train_protected": str(config.train_protected), "train_clean": str(config.train_clean),
                      "test": str(config.test)},
        },
        "chance_accuracy": 100.0 / data.num_classes,
        "seeds": {"seed": config.seed, "note": "torch.manual_seed(seed) before each model; batch order and "
                  "augmentation from torch.Generator().manual_seed(seed)"},
        "environment": environment(device, threads),
        "attacker_pipeline": _pipeline_record(config, detector),
        "quality": None, "runs": [], "timing": {},
    }

    quality_started = time.perf_counter()
    emit(start_task("quality_start", "quality", f"image quality at {config.quality_size} px (pairs)", len(data.pairs),
                    {"pairs": len(data.pairs), "size": config.quality_size}))
    quality = measure_quality(data.pairs, config.quality_size, workers=config.workers,
                              on_done=lambda: emit(step("quality_step", "quality")))
    results["quality"] = quality.to_dict()
    _strip(config, data, run_dir)
    results["timing"]["quality_s"] = round(time.perf_counter() - quality_started, 2)
    write_results(run_dir, results)

    settings = TrainSettings(epochs=config.epochs, batch_size=config.batch_size, lr=config.lr, seed=config.seed,
                             device=device, channels_last=config.channels_last, eval_batch_size=config.eval_batch_size,
                             bf16=config.bf16)
    train_sets = ("protected", "clean") if config.baseline else ("protected",)
    embedders: dict[str, Any] = {}
    for scenario in scenarios:
        for arch in config.archs:
            if arch in EMBEDDING_ATTACKER_NAMES:
                if arch not in embedders:  # dlib's models are loaded once per evaluation
                    embedders[arch] = open_embedder(arch, detector)
                results["runs"].extend(_embedding_runs(config, data, arch, scenario, train_sets, embedders[arch], emit))
                results["embedding_faces"] = data.embedding_faces
                write_results(run_dir, results)
                continue
            test = _set_tensors(data, "test", scenario, config.image_size, emit, detector)
            for train_set in train_sets:
                images, targets = _set_tensors(data, train_set, scenario, config.image_size, emit, detector)
                train = (prepare_train_set(images, targets, scenario), targets)
                if detector is not None:
                    results["attacker_pipeline"]["sets"] = {k: v.to_dict() for k, v in data.alignment.items()}
                run: AttackRun = train_attacker(arch, scenario, train_set, train, test, data.identities, settings, emit)
                results["runs"].append(run.to_dict())
                write_results(run_dir, results)

    results["status"] = "complete"
    results["timing"]["total_s"] = round(time.perf_counter() - started, 1)
    write_report(run_dir, results)
    emit(ProgressEvent("done", {"path": str(run_dir)}))
    return EvaluationResult(run_dir=run_dir, results=results)
