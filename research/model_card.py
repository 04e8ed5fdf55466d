"""Write the model card of a shipped generator from files, never from typed-in numbers.

Reads the checkpoint's own metadata (training summary), file hashes, and the
``results.json`` of each ``segue evaluate`` run given with ``--eval NAME=DIR``, and
writes ``models/<name>.json`` (machine-readable) and ``docs/model-card.md``. Scenarios
without a results file are listed as not measured, never filled in.

Every results file read is copied into ``models/<name>-evaluations/`` and the card points
there, so the figures' sources travel with the repository. ``--keep-from-card`` keeps the
figures of the existing card (made by this script from files, with their sources) for
scenarios not given this time, but only while the card describes the same checkpoint
(same sha256): a new model starts from an empty card.

  python research/model_card.py --model models/segue-webface10-112.safetensors \
      --eval labels=runs/p112/labels/eval --eval hashed=runs/p112/hashed/eval
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from segue_cli.artifacts import load_generator, read_metadata  # noqa: E402

from segue_cli.storage import file_sha256  # noqa: E402
from segue_cli.choices import DEFAULT_STRENGTH, STRENGTHS  # noqa: E402
from segue_cli.nn.generator import count_parameters  # noqa: E402
from research.model_card_render import (CHANCE_ACCURACY, EMBEDDING_MATCHERS, EMBEDDING_NETWORKS,  # noqa: E402
                                        TARGETS, _learned_nothing, baseline_command, render)

def archive(folder: Path, runs: list[dict[str, Any]], archive_dir: Path, prefix: str) -> str:
    """Copy ``folder``'s results.json into the repository, named by prefix, attackers and
    counter-measures (e.g. ``labels-resnet18-at-4.json``); returns the repo-relative path."""
    archive_dir.mkdir(parents=True, exist_ok=True)
    # Embedding attackers are one run per matcher (embedding-dlib/ncm, ...): named once.
    archs = sorted({run["arch"].split("/")[0] for run in runs})
    name = "-".join([prefix, *archs, *sorted({run["attack"] for run in runs})])
    target = archive_dir / f"{name}.json"
    shutil.copyfile(folder / "results.json", target)
    return str(target.relative_to(ROOT))


def load_runs(evals: list[tuple[str, Path]], archive_dir: Path) -> tuple[dict[tuple[str, str, str, str], dict[str, Any]], dict[str, Any]]:
    runs: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    quality: dict[str, Any] = {}
    for variant, folder in evals:
        results = json.loads((folder / "results.json").read_text())
        source = archive(folder, results["runs"], archive_dir, variant)
        if variant == "labels" and results.get("quality"):
            quality = results["quality"]
        for run in results["runs"]:
            runs[(variant, run["arch"], run["attack"], run["train_set"])] = {
                "final": round(run["final_accuracy"], 1), "peak": round(run["peak_accuracy"], 1),
                "results": source, "status": results.get("status"),
                "departures": results.get("departures", []),
            }
    return runs, quality


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--eval", action="append", default=[], help="VARIANT=DIR of a segue evaluate run (repeatable, also for one variant)")
    parser.add_argument("--strip", type=Path, default=None, help="clean/protected/residual strip PNG to show")
    parser.add_argument("--portrait", type=Path, default=None,
                        help="a full portrait protected with --faces (research/portrait_strip.py), relative to docs/")
    parser.add_argument("--preset-portrait", action="append", default=[], metavar="STRENGTH=PATH",
                        help="the portrait at a --strength preset (research/portrait_strip.py --strength), relative to docs/")
    parser.add_argument("--baseline", type=Path, action="append", default=[],
                        help="folder of a clean-vs-clean `segue evaluate` run (protected = clean train split): the "
                             "measured baseline of each of its attackers (repeatable)")
    parser.add_argument("--train-command", required=True,
                        help="the `segue train` command that made the checkpoint, shown on the card")
    parser.add_argument("--keep-from-card", action="store_true",
                        help="keep the existing card's figures for scenarios not given now (same checkpoint only)")
    parser.add_argument("--stale", action="append", default=[], metavar="VARIANT",
                        help="with --keep-from-card: the previous card's rows of VARIANT not given now are marked stale "
                             "(measured on a protected set that today's segue protect does not reproduce) and count "
                             "toward no target (repeatable)")
    parser.add_argument("--stale-reason", default="", help="with --stale: why, shown under the table")
    parser.add_argument("--reference-baseline", type=float, default=81.5,
                        help="P112 clean baseline from docs/benchmark-protocol.md, used when no baseline run is given")
    args = parser.parse_args()
    evals = [(item.split("=", 1)[0], Path(item.split("=", 1)[1])) for item in args.eval]
    archive_dir = ROOT / "models" / f"{args.model.stem}-evaluations"
    card_path = ROOT / "models" / f"{args.model.stem}.json"
    previous = previous_card(card_path, args.model) if args.keep_from_card else None
    runs, quality = load_runs(evals, archive_dir)
    measured_baselines: dict[tuple[str, str], dict[str, Any]] = {}
    for folder in args.baseline:
        clean_runs = json.loads((folder / "results.json").read_text())["runs"]
        source = archive(folder, clean_runs, archive_dir, "baseline")
        for clean in clean_runs:
            measured_baselines[(clean["arch"], clean["attack"])] = {
                "final": round(clean["final_accuracy"], 1), "peak": round(clean["peak_accuracy"], 1),
                "results": source, "command": baseline_command(clean["arch"], clean["attack"]),
            }
    if previous:
        quality = quality or previous["quality"]
        for row in previous["evaluations"]:
            key = (row["variant"], row["arch"], row["attack"], "protected")
            if row["protected"] and key not in runs:
                stale = row["variant"] in args.stale or row["protected"].get("stale")
                runs[key] = {**row["protected"], **({"stale": True} if stale else {})}
            if row["baseline"]:
                measured_baselines.setdefault((row["arch"], row["attack"]), row["baseline"])
        if previous.get("clean_baseline_measured"):
            measured_baselines.setdefault(("resnet18", "none"), previous["clean_baseline_measured"])
    meta = read_metadata(args.model)
    portraits = dict(item.split("=", 1) for item in args.preset_portrait)
    if args.portrait:
        portraits.setdefault("high", str(args.portrait))
    onnx_path = args.model.with_suffix(".onnx")
    training = meta.training
    rows = []
    for scenario, variant, arch, attack, target, command in TARGETS:
        protected = runs.get((variant, arch, attack, "protected"))
        baseline = runs.get((variant, arch, attack, "clean"))
        same_attacker = variant in ("labels", "hashed")  # a departure (labels-64) has no 112 px baseline
        if baseline is None and same_attacker:
            baseline = runs.get(("labels", arch, attack, "clean")) or measured_baselines.get((arch, attack))
        inconclusive = protected is not None and _learned_nothing(protected, baseline)
        rows.append({
            "scenario": scenario, "variant": variant, "arch": arch, "attack": attack, "target_max_accuracy": target,
            "protected": protected, "baseline": baseline,
            "met": (None if protected is None or inconclusive or target is None or protected.get("stale")
                    else protected["final"] <= target),
            "inconclusive": inconclusive, "command": command,
        })
    embedding_rows = embedding_table(runs, previous.get("embedding_attacker", []) if previous else [])
    card = {
        "name": args.model.stem,
        "file": args.model.name,
        "file_sha256": file_sha256(args.model),
        "content_sha256": meta.content_sha256,
        "onnx": {"file": onnx_path.name, "file_sha256": file_sha256(onnx_path)} if onnx_path.is_file() else None,
        "epsilon": meta.epsilon, "image_size": meta.image_size, "code_bits": meta.code_bits,
        "parameters": count_parameters(load_generator(args.model).model),
        "architecture": meta.architecture,
        "training": {
            "data": "WebFace10 train (1,300 images, 10 identities, 224 px face crops)",
            "epochs_run": training.get("epochs_run"), "seconds": training.get("seconds"),
            "settings": training.get("config"), "last_epoch": training.get("last_epoch"),
            "command": args.train_command,
            "log": "models/segue-webface10-112-training/metrics.jsonl",
        },
        "protocol": "P112 (docs/benchmark-protocol.md); final = accuracy after the last epoch",
        "stale_reason": args.stale_reason or (previous or {}).get("stale_reason"),
        "clean_baseline_reference": args.reference_baseline,
        "clean_baseline_measured": measured_baselines.get(("resnet18", "none")),
        "chance_accuracy": CHANCE_ACCURACY,
        "quality": quality,
        "evaluations": rows,
        "embedding_attacker": embedding_rows,
        "cloak": cloak_figures(evals, runs, previous),
        "ensemble_cloak": (previous or {}).get("ensemble_cloak"),  # research/ensemble_cloak_figures.py writes it
        "people_never_seen": unseen_figures(evals, previous),
        "strength_presets": preset_figures(evals, runs, previous, meta.epsilon, portraits),
    }
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    (ROOT / "docs" / "model-card.md").write_text(render(card, args.strip, args.portrait))
    print(json.dumps({"written": [f"models/{args.model.stem}.json", "docs/model-card.md"]}))


def embedding_table(runs: dict[tuple[str, str, str, str], dict[str, Any]],
                    previous: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (network, counter-measure, matcher) of the embedding attackers that were
    run (dlib's, and SFace, which nothing in segue is optimised against): clean photos
    enrolled, protected with labels, with hashed names, and with hashed names and ``segue
    protect --cloak`` (variant ``hashed-cloak``). Cells not given now keep the previous
    card's figure (``--keep-from-card``; rows of older cards are dlib's)."""
    kept = {(row.get("network", "dlib"), row["attack"], row["matcher"]): row for row in previous}
    rows = []
    for network in EMBEDDING_NETWORKS:
        attacks = sorted({key[2] for key in runs if key[1].startswith(f"embedding-{network}/")}
                         | {a for n, a, _ in kept if n == network}, key=lambda a: (a != "none", a))
        for attack in attacks:
            for matcher, name in EMBEDDING_MATCHERS.items():
                arch = f"embedding-{network}/{matcher}"
                old = kept.get((network, attack, matcher), {})
                rows.append({
                    "network": network, "attack": attack, "matcher": matcher, "matcher_name": name,
                    "clean": (runs.get(("labels", arch, attack, "clean")) or runs.get(("hashed", arch, attack, "clean"))
                              or runs.get(("hashed-cloak", arch, attack, "clean")) or old.get("clean")),
                    **{column: runs.get((column, arch, attack, "protected")) or old.get(column)
                       for column in ("labels", "hashed", "hashed-cloak")},
                })
    return rows


def unseen_figures(evals: list[tuple[str, Path]], previous: dict[str, Any] | None) -> dict[str, Any]:
    """The protocols for people the model never saw (docs/benchmark-protocol.md), from runs
    named ``unseen`` (p112-unseen), ``few-lfw48`` and ``few-webface10`` (p112-few): each one's
    figures as ``segue evaluate`` reports them (ResNet18, no counter-measure)."""
    from segue_cli.evaluation.report import summary_rows

    figures = dict((previous or {}).get("people_never_seen") or {})
    for variant, folder in evals:
        if variant not in ("unseen", "few-lfw48", "few-webface10"):
            continue
        results = json.loads((folder / "results.json").read_text())
        row = next(r for r in summary_rows(results) if (r["arch"], r["attack"]) == ("resnet18", "none"))
        figures[variant] = {"chance": round(results["chance_accuracy"], 1), "protected": round(row["protected"]["final"], 1),
                            "clean": round(row["clean"]["final"], 1), "margin_share": row.get("margin_share"),
                            "protected_people": row.get("protected_people"),
                            "results": str(folder / "results.json")}
    return figures


def cloak_figures(evals: list[tuple[str, Path]], runs: dict[tuple[str, str, str, str], dict[str, Any]],
                  previous: dict[str, Any] | None) -> dict[str, Any] | None:
    """``segue protect --cloak`` on this model (variant ``hashed-cloak``): its image quality and
    the from-scratch attacker's figures, beside the embedding table's column."""
    kept = (previous or {}).get("cloak") or {}
    quality = given_quality(evals, "hashed-cloak") or kept.get("quality")
    from_scratch = {attack: run for (variant, arch, attack, train_set), run in runs.items()
                    if variant == "hashed-cloak" and arch == "resnet18" and train_set == "protected"}
    from_scratch = {**kept.get("from_scratch", {}), **from_scratch}
    return {"quality": quality, "from_scratch": from_scratch} if quality or from_scratch else None


def preset_figures(evals: list[tuple[str, Path]], runs: dict[tuple[str, str, str, str], dict[str, Any]],
                   previous: dict[str, Any] | None, epsilon: float, portraits: dict[str, str]) -> dict[str, Any]:
    """Each ``--strength`` preset: its bound and cloak steps, its portrait, and, where measured,
    the from-scratch attacker on WebFace10 with hashed names (variant ``hashed-PRESET``;
    ``hashed`` for high, the default) with that set's image quality."""
    kept = (previous or {}).get("strength_presets") or {}
    presets = {}
    for name, (scale, steps) in STRENGTHS.items():
        variant = "hashed" if name == DEFAULT_STRENGTH else f"hashed-{name}"
        old = kept.get(name) or {}
        quality = given_quality(evals, variant) or old.get("quality")
        presets[name] = {"share_of_epsilon": scale, "epsilon_255": round(epsilon * scale * 255, 2), "cloak_steps": steps,
                         "portrait": portraits.get(name) or old.get("portrait"),
                         "hashed": runs.get((variant, "resnet18", "none", "protected")) or old.get("hashed"),
                         "quality": {key: quality[key] for key in PRESET_QUALITY if key in quality} if quality else None}
    return presets


def given_quality(evals: list[tuple[str, Path]], variant: str) -> dict[str, Any] | None:
    """The image quality of the first run given for ``variant`` that measured it (``--eval VARIANT=DIR``)."""
    for given, folder in evals:
        if given == variant:
            quality = json.loads((folder / "results.json").read_text()).get("quality")
            if quality:
                return quality
    return None


PRESET_QUALITY = ("psnr_db", "ssim", "ms_ssim", "linf_max_255", "tint_ciede2000", "chroma_share")  # a preset's row


def previous_card(card_path: Path, model: Path) -> dict[str, Any] | None:
    if not card_path.is_file():
        return None
    card = json.loads(card_path.read_text())
    if card.get("file_sha256") != file_sha256(model):
        sys.exit(f"{card_path} describes another checkpoint than {model}: its figures cannot be kept; "
                 "drop --keep-from-card and give every --eval and --baseline")
    return card


# setting: (the paper's value, how to say it)

if __name__ == "__main__":
    main()
