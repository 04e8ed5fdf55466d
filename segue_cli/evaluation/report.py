"""``results.json`` and ``report.md`` of an evaluation, plus its figures.

The report is drawn from the results record alone, so it can be rebuilt from a
``results.json`` (``write_report(run_dir, json.load(...))``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..storage import atomic_write
from . import figures
from .countermeasures import parse_scenario
from .quality import LPIPS_NOTE

RESULTS_FILE = "results.json"
REPORT_FILE = "report.md"
FIGURES = {
    "accuracy_per_epoch": "accuracy_per_epoch.png",
    "by_attacker": "accuracy_by_attacker.png",
    "by_countermeasure": "accuracy_by_countermeasure.png",
    "strip": "clean_protected_residual.png",
}
def _finite(value: Any) -> Any:
    """NaN and infinities are not JSON: they become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def write_results(run_dir: Path, results: dict[str, Any]) -> None:
    text = json.dumps(_finite(results), indent=2, sort_keys=False, allow_nan=False)
    atomic_write(run_dir / RESULTS_FILE, lambda tmp: tmp.write_text(text + "\n", encoding="utf-8"))


def summary_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (arch, attack): protected and baseline final/peak accuracy and, with a
    baseline, two figures of the protocols for people the model never saw
    (docs/benchmark-protocol.md): ``margin_share``, the protected attacker's lead over
    chance as a share of the clean attacker's (p112-unseen), and, when only some people
    were protected, ``protected_people``: those people's mean recall on their clean test
    photos, protected and clean, and its ratio (p112-few)."""
    chance = results["chance_accuracy"]
    quality = results.get("quality") or {}
    protected = quality.get("protected_identities") or []
    few = 0 < len(protected) < results["data"]["num_classes"]
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for run in results["runs"]:
        row = rows.setdefault((run["arch"], run["attack"]), {"arch": run["arch"], "attack": run["attack"]})
        row[run["train_set"]] = {"final": run["final_accuracy"], "peak": run["peak_accuracy"], "peak_epoch": run["peak_epoch"]}
        if few:
            row[run["train_set"]]["recall_protected_people"] = mean_recall(run["per_identity"], protected)
    for row in rows.values():
        if "clean" in row and "protected" in row:
            row["drop_final"] = row["clean"]["final"] - row["protected"]["final"]
            margin = row["clean"]["final"] - chance
            row["margin_share"] = (row["protected"]["final"] - chance) / margin if margin > 0 else None
            if few:
                clean_recall, protected_recall = (row[name]["recall_protected_people"] for name in ("clean", "protected"))
                row["protected_people"] = {
                    "identities": protected, "recall_protected": protected_recall, "recall_clean": clean_recall,
                    "share": protected_recall / clean_recall if clean_recall else None}
    return list(rows.values())


def mean_recall(per_identity: dict[str, float], identities: list[str]) -> float:
    """Mean recall (per-identity accuracy, %) over ``identities``."""
    values = [per_identity[name] for name in identities if name in per_identity and per_identity[name] == per_identity[name]]
    return sum(values) / len(values) if values else float("nan")


def describe_scenario(name: str) -> str:
    return parse_scenario(name).describe()


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _accuracy_section(results: dict[str, Any]) -> list[str]:
    chance = results["chance_accuracy"]
    lines = [
        "## Attacker accuracy on clean test photos (%)",
        "",
        f"Lower protected accuracy is better protection; chance is {chance:.1f}% (100/{results['data']['num_classes']}). "
        "\"final\" is after the last epoch, \"peak\" the best of all epochs (epoch in brackets). The baseline is the "
        "same attacker, seed and counter-measure trained on the clean train set; drop = baseline final - protected "
        "final, in points.",
        "",
        "| attacker | counter-measure | baseline final | baseline peak | protected final | protected peak | "
        "drop (final) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    if any(run.get("kind") == "embedding" for run in results["runs"]):
        faces = results.get("embedding_faces", {})
        found = ", ".join(f"{name} {c['face_found']}/{c['images']}" for name, c in faces.items())
        lines[4:4] = [
            "Rows `embedding-<network>/<matcher>` are a pretrained face-recognition attacker: nothing is trained on "
            "the train photos; they are enrolled with the network's embeddings and each clean test photo is matched "
            "by nearest class mean (`ncm`), nearest enrolled photo (`1nn`) or a logistic-regression probe (`linear`). "
            "Such an attacker has no epochs, so final and peak are one figure."
            + (f" Faces found by its detector (the rest embedded from a centred box): {found}." if found else ""),
            "",
        ]
    for row in summary_rows(results):
        clean, protected = row.get("clean"), row.get("protected")

        def cells(entry: dict[str, Any] | None) -> str:
            if entry is None:
                return "not run | not run"
            return f"{entry['final']:.1f} | {entry['peak']:.1f} ({entry['peak_epoch']})"

        drop = f"{row['drop_final']:+.1f}" if "drop_final" in row else "-"
        lines.append(f"| {row['arch']} | {row['attack']} | {cells(clean)} | {cells(protected)} | {drop} |")
    lines += ["", *protocol_lines(summary_rows(results))]
    return lines


def protocol_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The figures of p112-unseen and p112-few (docs/benchmark-protocol.md), one line each
    per attacker and counter-measure with a baseline."""
    lines = []
    for row in rows:
        name = f"{row['arch']} {row['attack']}"
        if row.get("margin_share") is not None:
            lines.append(f"- {name}: the protected attacker keeps {row['margin_share']:.0%} of the clean attacker's "
                         "lead over chance (p112-unseen's figure; target <= 25%).")
        people = row.get("protected_people")
        if people:
            share = "-" if people["share"] is None else f"{people['share']:.0%}"
            lines.append(f"- {name}: the {len(people['identities'])} protected people ({', '.join(people['identities'])}) "
                         f"are recognised in {people['recall_protected']:.1f}% of their clean test photos, against "
                         f"{people['recall_clean']:.1f}% when nobody is protected: {share} (p112-few's figure; target <= 25%).")
    return lines


def _identity_section(results: dict[str, Any]) -> list[str]:
    runs = results["runs"]
    header = " | ".join(f"{r['arch']} {r['attack']} {r['train_set']}" for r in runs)
    lines = ["## Per identity (final epoch, % of that identity's clean test photos)", "",
             f"| identity | {header} |", "|---|" + "---:|" * len(runs)]
    for identity in results["data"]["identities"]:
        values = " | ".join(_pct(r["per_identity"].get(identity)) for r in runs)
        lines.append(f"| {identity} | {values} |")
    return lines


def _quality_section(results: dict[str, Any]) -> list[str]:
    q = results["quality"]
    if q is None:
        return ["## Image quality", "", "not measured (the run stopped before it)."]
    if q["psnr_db"] is None:
        psnr = "infinite: every protected image equals its clean original"
    else:
        psnr = f"{q['psnr_db']:.2f} dB" + (f" (mean over {q['pairs'] - q['identical']} pairs; {q['identical']} "
                                           "identical pairs, whose PSNR is infinite, left out)" if q["identical"] else "")
    return [
        f"## Image quality of the protected train set ({q['pairs']} pairs, at {q['size']} x {q['size']} px, RGB, "
        "data range 1)",
        "",
        "| metric | value |",
        "|---|---|",
        f"| PSNR | {psnr} |",
        f"| SSIM (Gaussian window 11, sigma 1.5) | {q['ssim']:.4f} |",
        f"| MS-SSIM | {q['ms_ssim']:.4f} ({q['ms_ssim_note']}) |",
        f"| L-inf of the perturbation, mean over images | {q['linf_mean'] * 255:.2f} / 255 |",
        f"| L-inf of the perturbation, largest | {q['linf_max_255']:.2f} / 255 |",
        f"| L2 of the perturbation, mean over images ([0, 1] units) | {q['l2_mean']:.3f} |",
        *_appearance_rows(q),
        "| LPIPS | not computed (see below) |",
        "",
        LPIPS_NOTE,
    ]


def _appearance_rows(q: dict[str, Any]) -> list[str]:
    """Tint, chroma share and within-identity cosine (results.json before they existed lack them)."""
    rows = []
    if q.get("tint_ciede2000") is not None:
        rows.append(f"| tint: CIEDE2000 after a Gaussian blur of sigma {q['tint_sigma']:g} px, mean | "
                    f"{q['tint_ciede2000']:.2f} |")
    if q.get("chroma_share") is not None:
        rows.append(f"| share of the perturbation's energy in colour (delta minus its RGB mean) | {q['chroma_share']:.3f} |")
    if q.get("within_identity_cosine") is not None:
        rows.append(f"| within-identity cosine of the perturbation (1: one pattern per identity) | "
                    f"{q['within_identity_cosine']:.3f} |")
    return rows


def _details_section(results: dict[str, Any]) -> list[str]:
    c = results["config"]
    env = results["environment"]
    lines = [
        "## How the attackers were trained",
        "",
        f"- {c['epochs']} epochs, batch {c['batch_size']}, Adam lr {c['lr']:g}, cosine annealing over all steps, "
        f"cross-entropy; inputs {c['image_size']} x {c['image_size']} (torchvision Resize, bilinear, antialias), "
        "[0, 1], no normalisation; clean test set evaluated after every epoch.",
        f"- seed {c['seed']}: {results['seeds']['note']}.",
        f"- device {env['device']}, {env['torch_threads']} torch threads, "
        f"{'bfloat16 autocast' if c.get('bf16') else 'float32'}; decoded images cached once per set.",
        "- counter-measures (training images of both the protected run and its baseline):",
    ]
    lines += [f"  - `{name}`: {describe_scenario(name)}" for name in c["attacks"]]
    lines += ["", "| run | seconds | steps |", "|---|---:|---:|"]
    lines += [f"| {r['arch']} {r['attack']} {r['train_set']} | {r['seconds']:.0f} | {r['steps']} |" for r in results["runs"]]
    packages = ", ".join(f"{k} {v}" for k, v in env["packages"].items())
    lines += ["", f"Environment: segue {env['segue']}, Python {env['python']}, {packages}; {env['platform']}, "
              f"{env['cpu_count']} CPUs."]
    return lines


def _pipeline_section(results: dict[str, Any]) -> list[str]:
    pipeline = results.get("attacker_pipeline") or {"name": "none"}
    if pipeline["name"] == "none":
        return ["Attacker pipeline: none (each photo resized whole to the attacker's size)."]
    lines = [
        f"## Attacker pipeline: {pipeline['name']}",
        "",
        f"The attacker detects faces in every train and test photo ({pipeline['detector']} detector), keeps the "
        f"largest and aligns it with its five landmarks to the {pipeline['template']} {pipeline['align_size']} x "
        f"{pipeline['align_size']} crop before resizing to the attacker's size. No face found: "
        f"{pipeline['no_face_fallback']}. Image quality above is still measured on the whole photos.",
        "",
        "| set | photos | face found | no face | several faces |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, counts in pipeline["sets"].items():
        lines.append(f"| {name} | {counts['images']} | {counts['face_found']} | {counts['no_face']} | {counts['multi_face']} |")
    examples = [p for counts in pipeline["sets"].values() for p in counts["no_face_examples"]]
    if examples:
        lines += ["", "Photos with no face found (first few per set): " + ", ".join(f"`{p}`" for p in examples)]
    return lines


def render_markdown(results: dict[str, Any], run_name: str) -> str:
    departures = results["departures"]
    protocol = results["protocol"].upper()
    followed = (f"{protocol}, followed exactly (docs/benchmark-protocol.md)." if not departures else
                f"{protocol} with departures: {', '.join(departures)}. Figures from this run are NOT {protocol} figures.")
    counts = results["data"]["images"]
    lines = [
        f"# segue evaluation: {run_name}",
        "",
        f"Protocol: {followed}",
        "",
        f"Command: `{results['command']}`",
        "",
        f"Status: {results['status']}; {results['timing'].get('total_s', '?')} s in all.",
        "",
        "## Data",
        "",
        f"- {results['data']['num_classes']} identities: {', '.join(results['data']['identities'])}",
        f"- protected train: {counts['protected']} images ({results['data']['paths']['train_protected']})",
        f"- clean train: {counts['clean']} images ({results['data']['paths']['train_clean']})",
        f"- clean test: {counts['test']} images ({results['data']['paths']['test']})",
        "",
        *_pipeline_section(results),
        "",
        *_accuracy_section(results),
        "",
        *_identity_section(results),
        "",
        *_quality_section(results),
        "",
        "## Figures",
        "",
        f"![accuracy per epoch]({FIGURES['accuracy_per_epoch']})",
        "",
        f"![accuracy per attacker]({FIGURES['by_attacker']})",
        "",
        f"![accuracy per counter-measure]({FIGURES['by_countermeasure']})",
        "",
        f"![clean, protected and residual x{figures.RESIDUAL_GAIN}]({FIGURES['strip']})",
        "",
        f"Residual row: 0.5 + {figures.RESIDUAL_GAIN} x (protected - clean), clipped, so mid-grey is no change.",
        "",
        *_details_section(results),
    ]
    return "\n".join(lines) + "\n"


def write_report(run_dir: Path, results: dict[str, Any]) -> None:
    """Figures from the runs, then results.json and report.md (the strip is drawn earlier,
    by the runner, since it needs the images)."""
    if results["runs"]:
        figures.accuracy_per_epoch(results, run_dir / FIGURES["accuracy_per_epoch"])
        figures.accuracy_bars(results, run_dir / FIGURES["by_attacker"], by="arch")
        figures.accuracy_bars(results, run_dir / FIGURES["by_countermeasure"], by="attack")
    results["figures"] = [name for name in FIGURES.values() if (run_dir / name).is_file()]
    results["summary"] = summary_rows(results)
    write_results(run_dir, results)
    text = render_markdown(results, run_dir.name)
    atomic_write(run_dir / REPORT_FILE, lambda tmp: tmp.write_text(text, encoding="utf-8"))
