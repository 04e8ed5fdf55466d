"""The p112 figures of a run made with ``--skip-baseline``, beside the clean run of another
results.json made with the same attacker (same protocol, seed, data and code): a clean run
is the same computation whatever the protected set, so screens of many protections share
one. Prints each protection's row (report.summary_rows): final accuracy, margin share and,
for p112-few, the protected people's mean recall and its share of their clean recall.

  python research/with_baseline.py runs/em/few-sample-eval/results.json \\
      runs/em/few-class-eval/results.json --json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from segue_cli.evaluation.report import summary_rows  # noqa: E402

SAME_ATTACKER = ("protocol", "seeds", "chance_accuracy")


def combined(baseline: dict, protected: dict) -> dict:
    """``protected``'s results with ``baseline``'s clean runs added, after checking the two
    were made by the same attacker on the same data."""
    for key in SAME_ATTACKER:
        if baseline.get(key) != protected.get(key):
            raise SystemExit(f"the two runs differ in {key}: {baseline.get(key)!r} against {protected.get(key)!r}")
    if baseline["data"]["num_classes"] != protected["data"]["num_classes"]:
        raise SystemExit("the two runs have different identities")
    clean = [run for run in baseline["runs"] if run["train_set"] == "clean"]
    if not clean:
        raise SystemExit("the baseline results.json has no clean run (it was made with --skip-baseline)")
    mine = [run for run in protected["runs"] if run["train_set"] == "protected"]
    return {**protected, "runs": mine + clean}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("baseline", type=Path, help="a results.json with the clean run")
    parser.add_argument("protected", type=Path, nargs="+", help="results.json files of protected runs")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    baseline = json.loads(args.baseline.read_text())
    rows = []
    for path in args.protected:
        for row in summary_rows(combined(baseline, json.loads(path.read_text()))):
            rows.append({"run": str(path.parent), **row})
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    for row in rows:
        few = row.get("protected_people") or {}
        print(f"{row['run']} {row['attack']}: protected {row['protected']['final']:.1f}%, clean "
              f"{row['clean']['final']:.1f}%, margin share {row['margin_share']:.2f}"
              + (f"; protected people {few['recall_protected']:.1f}% of {few['recall_clean']:.1f}% "
                 f"(share {few['share']:.2f})" if few else ""))


if __name__ == "__main__":
    main()
