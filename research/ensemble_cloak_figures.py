"""The ensemble cloak's figures on the model card (issue 40): read the `segue evaluate` runs
of the cloaked sets and of the clean sets, put them into models/segue-webface10-112.json
under "ensemble_cloak" and re-render docs/model-card.md from that card.

    python research/ensemble_cloak_figures.py \\
        --set "webface10=WebFace10, hashed names=runs/p112-ens/hashed/eval=runs/clean-embed-WebFace10" \\
        --set "lfw48=LFW48 (people no model saw), hashed names=runs/lfw-ens/hashed/eval=runs/clean-embed-LFW48" \\
        --loo "faceplugin=runs/loo-faceplugin-eval" --speed runs/cloak-bench.jsonl

Per-person targets and the crops' jitter (session 18, docs/research/2026-12-07-cloak-targets.md):
each --targeted KEY=LABEL=RUN is a research/identity_cloak.py tree judged by every network
(the recall of the people it cloaked); without --set the card's other figures are kept:

    python research/ensemble_cloak_figures.py --targeted "all48-j05=LABEL=runs/pp/all48-j05-eval" ...
    python research/ensemble_cloak_figures.py --add-targeted "all48-j05-s20=LABEL=runs/s19/all48-j05-s20-eval"

Each --set is KEY=LABEL=CLOAKED_RUN=CLEAN_RUN: the cloaked run enrols the photos `segue protect
--cloak` made (research/p112.py --cloak 10 with the embedding attackers), the clean run the
originals (`segue evaluate --train-protected DATA/train --train-clean DATA/train ...`). Each
--loo is LEFT_OUT=RUN: a set cloaked without that network (research/identity_cloak.py
--networks), judged by it. --speed: the lines benchmarks/cloak_bench.py printed.
The card's other sections are not touched (research/model_card.py keeps this entry).
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

from research.model_card_render import render  # noqa: E402

CARD = ROOT / "models" / "segue-webface10-112.json"
EVIDENCE = ROOT / "models" / "segue-webface10-112-evaluations"  # copies of the runs' results.json, committed
JUDGE = "sface"
# Issue 40's targets: recall (%) when enrolled on cloaked photos and matched on clean ones.
TARGETS = {"judge": 30.0, "surrogate": 10.0, "ssim": 0.95, "photos_per_second": 0.5}


def recalls(run: Path, people: list[str] | None = None) -> dict[tuple[str, str, str], float]:
    """{(network, attack, matcher): accuracy %} of a run's embedding attackers (over ``people`` only, if given)."""
    results = json.loads((run / "results.json").read_text())
    figures = {}
    for row in results["runs"]:
        if row.get("kind") != "embedding":
            continue
        network, matcher = row["arch"].removeprefix("embedding-").split("/")
        if people:
            values = [row["per_identity"][p] for p in people if p in row["per_identity"]]
            figures[(network, row["attack"], matcher)] = round(sum(values) / len(values), 1)
        else:
            figures[(network, row["attack"], matcher)] = round(row["final_accuracy"], 1)
    return figures


def kept(run: Path, name: str) -> str:
    """Copy a run's results.json beside the card's other evidence; its path from the repository root."""
    target = EVIDENCE / f"ensemble-cloak-{name}.json"
    shutil.copyfile(run / "results.json", target)
    return str(target.relative_to(ROOT))


def set_figures(key: str, label: str, cloaked: Path, clean: Path) -> dict[str, Any]:
    protected, originals = recalls(cloaked), recalls(clean)
    quality = json.loads((cloaked / "results.json").read_text()).get("quality") or {}
    rows = [{"network": network, "attack": attack, "matcher": matcher, "cloaked": value,
             "clean": originals.get((network, attack, matcher)),
             "target": TARGETS["judge"] if network == JUDGE else TARGETS["surrogate"]}
            for (network, attack, matcher), value in sorted(protected.items(), key=lambda kv: (
                kv[0][0] != JUDGE, kv[0][0], kv[0][1] != "none", kv[0][1], kv[0][2]))]
    return {"label": label, "results": kept(cloaked, key), "clean_results": kept(clean, f"{key}-clean"),
            "rows": rows, "quality": {k: quality.get(k) for k in ("psnr_db", "ssim", "tint_ciede2000", "size")}}


def targeted_figures(key: str, label: str, run: str) -> dict[str, Any]:
    """One identity_cloak.py tree: each network's recall of the people it cloaked, and its quality."""
    quality = json.loads((Path(run) / "results.json").read_text())["quality"]
    people = quality["protected_identities"]
    judged = recalls(Path(run), people)
    return {"key": key, "label": label, "results": kept(Path(run), f"targeted-{key}"), "people": len(people),
            "rows": [{"network": n, "attack": a, "matcher": m, "cloaked": v} for (n, a, m), v in sorted(judged.items())],
            "quality": {k: quality.get(k) for k in ("psnr_db", "ssim", "size")}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", action="append", default=[], dest="sets",
                        help="KEY=LABEL=CLOAKED_RUN=CLEAN_RUN; none: keep the card's sets, leave-one-out and speed")
    parser.add_argument("--targeted", action="append", default=[], help="KEY=LABEL=RUN (replaces the card's list)")
    parser.add_argument("--add-targeted", action="append", default=[], metavar="KEY=LABEL=RUN",
                        help="add a row to the card's list (or replace the row of the same KEY)")
    parser.add_argument("--loo", action="append", default=[], help="LEFT_OUT=RUN[=PEOPLE,...]")
    parser.add_argument("--speed", type=Path, default=None)
    args = parser.parse_args()
    card = json.loads(CARD.read_text())
    if args.sets:
        figures: dict[str, Any] = {"judge": JUDGE, "targets": TARGETS, "sets": {}, "leave_one_out": [], "speed": []}
    else:
        figures = dict(card["ensemble_cloak"])
    if args.targeted:
        figures["targeted"] = [targeted_figures(*item.split("=")) for item in args.targeted]
    for item in args.add_targeted:
        row = targeted_figures(*item.split("="))
        figures["targeted"] = [entry for entry in figures.get("targeted", []) if entry["key"] != row["key"]] + [row]
    for item in args.sets:
        key, label, cloaked, clean = item.split("=")
        figures["sets"][key] = set_figures(key, label, Path(cloaked), Path(clean))
    for item in args.loo:
        left_out, run, *people = item.split("=")
        chosen = people[0].split(",") if people else None
        judged = recalls(Path(run), chosen)
        figures["leave_one_out"].append({
            "left_out": left_out, "results": kept(Path(run), f"without-{left_out}"), "people": chosen,
            "rows": [{"network": n, "matcher": m, "cloaked": v} for (n, a, m), v in sorted(judged.items()) if a == "none"]})
    if args.sets and args.speed and args.speed.is_file():
        figures["speed"] = [json.loads(line) for line in args.speed.read_text().splitlines() if line.startswith("{")]
    card["ensemble_cloak"] = figures
    CARD.write_text(json.dumps(card, indent=2) + "\n")
    (ROOT / "docs" / "model-card.md").write_text(render(card, Path("img/default-model-strip.png"),
                                                        Path("img/default-model-portrait.png")))
    print(json.dumps({"written": [str(CARD.relative_to(ROOT)), "docs/model-card.md"]}))


if __name__ == "__main__":
    main()
