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
from segue_cli.nn.generator import count_parameters  # noqa: E402

CHANCE_ACCURACY = 10.0  # WebFace10: 10 identities
# A clean-vs-clean run: the attacker trained on the clean train split (the --baseline folders).
BASELINE_COMMAND = ("segue evaluate --train-protected ../shared/data/WebFace10/train "
                    "--train-clean ../shared/data/WebFace10/train --test ../shared/data/WebFace10/test "
                    "--protocol p112 --arch {arch} --skip-baseline --threads 1")

# (scenario, variant, arch, attack, target: max clean-test accuracy % or None where no
# target is set, how it is made). Targets are those of issue 15 ("Protection v3").
TARGETS = [
    ("ResNet18, identities as labels", "labels", "resnet18", "none", 15.0,
     "python research/p112.py --variant labels --skip-baseline --threads 1"),
    ("ResNet18, identities as hashed names (`--identity`, codes never seen)", "hashed", "resnet18", "none", 15.0,
     "python research/p112.py --variant hashed --skip-baseline --threads 1"),
    *[(f"{arch} attacker", "labels", arch, "none", 20.0, f"python research/p112.py --variant labels --arch {arch} --skip-baseline")
      for arch in ("resnet50", "mobilenet_v2", "efficientnet_b0", "densenet121", "inception_v3", "vit_tiny", "swin_t")],
    ("attacker re-encodes as JPEG quality 75", "labels", "resnet18", "jpeg-75", 20.0,
     "python research/p112.py --variant labels --attack jpeg-75 --skip-baseline"),
    ("attacker re-encodes as JPEG quality 30", "labels", "resnet18", "jpeg-30", 30.0,
     "python research/p112.py --variant labels --attack jpeg-30 --skip-baseline --threads 1"),
    ("attacker blurs (Gaussian, kernel 5, sigma 1)", "labels", "resnet18", "blur", 25.0,
     "python research/p112.py --variant labels --attack blur --skip-baseline --threads 1"),
    ("attacker converts to grayscale", "labels", "resnet18", "gray", 20.0,
     "python research/p112.py --variant labels --attack gray --skip-baseline"),
    ("attacker uses PGD adversarial training, 4/255", "labels", "resnet18", "at-4", 30.0,
     "python research/p112.py --variant labels --attack at-4 --skip-baseline"),
    ("attacker estimates each identity's pattern and subtracts it (`estimate-remove`)", "labels", "resnet18",
     "estimate-remove", None, "python research/p112.py --variant labels --attack estimate-remove --skip-baseline --threads 1"),
    ("attacker trains at 64 px instead of 112 (`--image-size 64`, a departure)", "labels-64", "resnet18", "none", None,
     "python research/p112.py --variant labels --image-size 64 --skip-baseline --threads 1"),
]

# The pretrained face-recognition attacker (docs/benchmark-protocol.md): enrolled set -> variant.
EMBEDDING_MATCHERS = {"ncm": "nearest class mean", "1nn": "nearest enrolled photo", "linear": "linear probe"}
EMBEDDING_COMMAND = "python research/p112.py --variant {variant} --arch embedding-dlib --threads 1"


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


def baseline_command(arch: str, attack: str) -> str:
    return BASELINE_COMMAND.format(arch=arch) + ("" if attack == "none" else f" --attack {attack}")


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
    parser.add_argument("--baseline", type=Path, action="append", default=[],
                        help="folder of a clean-vs-clean `segue evaluate` run (protected = clean train split): the "
                             "measured baseline of each of its attackers (repeatable)")
    parser.add_argument("--train-command", required=True,
                        help="the `segue train` command that made the checkpoint, shown on the card")
    parser.add_argument("--keep-from-card", action="store_true",
                        help="keep the existing card's figures for scenarios not given now (same checkpoint only)")
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
            if row["protected"]:
                runs.setdefault((row["variant"], row["arch"], row["attack"], "protected"), row["protected"])
            if row["baseline"]:
                measured_baselines.setdefault((row["arch"], row["attack"]), row["baseline"])
        if previous.get("clean_baseline_measured"):
            measured_baselines.setdefault(("resnet18", "none"), previous["clean_baseline_measured"])
    meta = read_metadata(args.model)
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
            "met": None if protected is None or inconclusive or target is None else protected["final"] <= target,
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
        "clean_baseline_reference": args.reference_baseline,
        "clean_baseline_measured": measured_baselines.get(("resnet18", "none")),
        "chance_accuracy": CHANCE_ACCURACY,
        "quality": quality,
        "evaluations": rows,
        "embedding_attacker": embedding_rows,
        "cloak": cloak_figures(evals, runs, previous),
    }
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    (ROOT / "docs" / "model-card.md").write_text(render(card, args.strip, args.portrait))
    print(json.dumps({"written": [f"models/{args.model.stem}.json", "docs/model-card.md"]}))


def embedding_table(runs: dict[tuple[str, str, str, str], dict[str, Any]],
                    previous: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (counter-measure, matcher) of the embedding-dlib attacker that was run:
    clean photos enrolled, protected with labels, with hashed names, and with hashed names
    and ``segue protect --cloak`` (variant ``hashed-cloak``). Cells not given now keep the
    previous card's figure (``--keep-from-card``)."""
    kept = {(row["attack"], row["matcher"]): row for row in previous}
    attacks = sorted({key[2] for key in runs if key[1].startswith("embedding-dlib/")} | {a for a, _ in kept},
                     key=lambda a: (a != "none", a))
    rows = []
    for attack in attacks:
        for matcher, name in EMBEDDING_MATCHERS.items():
            arch = f"embedding-dlib/{matcher}"
            old = kept.get((attack, matcher), {})
            rows.append({
                "attack": attack, "matcher": matcher, "matcher_name": name,
                "clean": (runs.get(("labels", arch, attack, "clean")) or runs.get(("hashed", arch, attack, "clean"))
                          or runs.get(("hashed-cloak", arch, attack, "clean")) or old.get("clean")),
                **{column: runs.get((column, arch, attack, "protected")) or old.get(column)
                   for column in ("labels", "hashed", "hashed-cloak")},
            })
    return rows


def cloak_figures(evals: list[tuple[str, Path]], runs: dict[tuple[str, str, str, str], dict[str, Any]],
                  previous: dict[str, Any] | None) -> dict[str, Any] | None:
    """``segue protect --cloak`` on this model (variant ``hashed-cloak``): its image quality and
    the from-scratch attacker's figures, beside the embedding table's column."""
    folders = [folder for variant, folder in evals if variant == "hashed-cloak"]
    kept = (previous or {}).get("cloak") or {}
    quality = next((q for q in (json.loads((f / "results.json").read_text()).get("quality") for f in folders) if q),
                   kept.get("quality"))
    from_scratch = {attack: run for (variant, arch, attack, train_set), run in runs.items()
                    if variant == "hashed-cloak" and arch == "resnet18" and train_set == "protected"}
    from_scratch = {**kept.get("from_scratch", {}), **from_scratch}
    return {"quality": quality, "from_scratch": from_scratch} if quality or from_scratch else None


def render_threat_model(card: dict[str, Any]) -> list[str]:
    """What segue protects against and what it does not, with the measured figures."""
    rows = card.get("embedding_attacker") or []

    def cell(entry: dict[str, Any] | None) -> str:
        return "not measured" if entry is None else f"{entry['final']:.1f}"

    lines = [
        "## Threat model: what this protects against, and what it does not", "",
        "**Protects against (partly, see the table above):** someone who collects the protected photos and",
        "trains a face classifier *from scratch* on them (protocol P112's attacker), including with the",
        "counter-measures measured above.", "",
        "**Does not protect against, on its own:** matching with a face-recognition network trained elsewhere (how most",
        "deployed face recognition works). The protected photos are enrolled with dlib's pretrained 128-d",
        "face network (`segue evaluate --arch embedding-dlib`) and the person's clean test photos are",
        "matched against them (clean-test accuracy %, chance 10%):", "",
        "| counter-measure | matcher | clean photos enrolled | protected, labels | protected, hashed names "
        "| protected with `--cloak`, hashed names |",
        "|---|---|---|---|---|---|",
    ]
    if not rows:
        lines.append("| - | - | not measured | not measured | not measured | not measured |")
    for row in rows:
        lines.append(f"| {row['attack']} | {row['matcher_name']} | {cell(row['clean'])} | {cell(row['labels'])} | "
                     f"{cell(row['hashed'])} | {cell(row.get('hashed-cloak'))} |")
    lines += ["", f"Commands: `{EMBEDDING_COMMAND.format(variant='labels')}` (with the clean baseline), "
                  f"`{EMBEDDING_COMMAND.format(variant='hashed')} --skip-baseline` and, for the last column, "
                  f"`{CLOAK_COMMAND}`.", ""]
    without = next((row["protected"] for row in card["evaluations"]
                    if (row["variant"], row["arch"], row["attack"]) == ("hashed", "resnet18", "none")), None)
    return lines + render_cloak(card.get("cloak"), without)


CLOAK_COMMAND = ("python research/p112.py --variant hashed --cloak 10 --out runs/p112-cloak10 --arch embedding-dlib "
                 "--attack none --attack jpeg-75 --attack gray --skip-baseline --threads 1")


def render_cloak(cloak: dict[str, Any] | None, without: dict[str, Any] | None) -> list[str]:
    """``without``: the from-scratch figure of the same model and names without ``--cloak``."""
    lines = ["**What a user can do about it:** `segue protect --cloak` (docs/protect.md) adds to this model's",
             "perturbation a cloak made for each photo against dlib's network, within the same 8/255: the last",
             "column above. It is a per-photo optimisation, Fawkes' route, about 0.6 s a photo on one CPU thread,",
             "and it is **white box**: made against the very network that attacks here. Other face networks could",
             "not be measured offline; cloaks of this kind are known to fall to newer or robust face networks, so",
             "no protection against every existing network should be expected."]
    if cloak and cloak.get("quality"):
        q = cloak["quality"]
        lines += ["", f"Image quality with `--cloak` (protected train photos at {q['size']} px): PSNR {q['psnr_db']:.2f} dB, "
                      f"SSIM {q['ssim']:.3f}, tint {q['tint_ciede2000']:.2f}, chroma share {q['chroma_share']:.3f}."]
    for attack, run in sorted((cloak or {}).get("from_scratch", {}).items()):
        compared = (f", against {without['final']:.1f}% without `--cloak` (the first table): the two perturbations "
                    "share the 8/255, and the cloak costs part of this protection"
                    if attack == "none" and without else "")
        lines += ["", f"The from-scratch attacker (ResNet18, P112{', ' + attack if attack != 'none' else ''}) on the "
                      f"photos protected with `--cloak` and hashed names: {run['final']:.1f}% (`{run['results']}`)"
                      f"{compared}."]
    return lines + [""]


def previous_card(card_path: Path, model: Path) -> dict[str, Any] | None:
    if not card_path.is_file():
        return None
    card = json.loads(card_path.read_text())
    if card.get("file_sha256") != file_sha256(model):
        sys.exit(f"{card_path} describes another checkpoint than {model}: its figures cannot be kept; "
                 "drop --keep-from-card and give every --eval and --baseline")
    return card


# setting: (the paper's value, how to say it)
PAPER_SETTINGS = {"epochs": ("20-30", "20-30"), "pgd_steps": (5, "5"), "surrogate_period": (5, "5"),
                  "photo_scale": (1.0, "1: no protect/resize round trip"), "pattern_grid": (0, "0: no code pattern")}


def settings_summary(settings: dict[str, Any]) -> str:
    """Where the run departs from the paper's Algorithm 1 (docs/training.md says why)."""
    departures = [f"{key} {settings[key]} (paper {said})" for key, (paper, said) in PAPER_SETTINGS.items()
                  if key in settings and str(settings[key]) != str(paper)]
    return "the paper's except " + ", ".join(departures) if departures else "the paper's"


def _figure(value: float | None, spec: str) -> str:
    return "not measured" if value is None else format(value, spec)


def _learned_nothing(protected: dict[str, Any], baseline: dict[str, Any] | None) -> bool:
    """An attacker at chance in every epoch, with no baseline showing it can learn at all,
    proves nothing about protection (Swin-T from scratch on 1,300 photos: 10.0% throughout)."""

    def at_chance(run: dict[str, Any]) -> bool:
        return run["peak"] <= CHANCE_ACCURACY + 0.5

    return at_chance(protected) and (baseline is None or at_chance(baseline))


def _met_cell(row: dict[str, Any]) -> str:
    if row["inconclusive"]:
        return "inconclusive (at chance in every epoch; no baseline shows this attacker can learn)"
    if row["met"] is None:
        return "-" if row["protected"] is None or row["target_max_accuracy"] is not None else "measured (no target)"
    if row["met"]:
        return "yes"
    return f"**no** (by {row['protected']['final'] - row['target_max_accuracy']:.1f} points)"


def render(card: dict[str, Any], strip: Path | None, portrait: Path | None = None) -> str:
    q = card["quality"]
    measured = [row for row in card["evaluations"] if row["met"] is not None]
    missed = [row for row in measured if not row["met"]]
    if not measured:
        verdict = "**Status: protection not measured yet.**"
    elif missed:
        worst = max(row["protected"]["final"] - row["target_max_accuracy"] for row in missed)
        verdict = (f"**Status: this model misses {len(missed)} of the {len(measured)} protection targets measured "
                   f"below** (by up to {worst:.1f} points of attacker accuracy); see the table before relying on it.")
    else:
        verdict = f"**Status: meets all {len(measured)} protection targets measured below.**"
    lines = [
        f"# Model card: `{card['name']}`", "", verdict, "",
        "The generator `segue protect` uses when no `--model` is given. Every figure below is read from",
        f"a file by `research/model_card.py`; the machine-readable card is `models/{card['name']}.json`.", "",
        "## What it is", "",
        f"- Segue generator ({card['parameters']:,} parameters; architecture {json.dumps(card['architecture'])}), epsilon {card['epsilon'] * 255:.0f}/255 (L-inf), working size "
        f"{card['image_size']} px, {card['code_bits']}-bit side-information codes.",
        f"- Files: `models/{card['file']}` (sha256 `{card['file_sha256']}`)"
        + (f", ONNX export `models/{card['onnx']['file']}` (sha256 `{card['onnx']['file_sha256']}`)." if card["onnx"] else "."),
        f"- Trained on {card['training']['data']} for {card['training']['epochs_run']} epochs "
        f"({card['training']['seconds'] / 60:.0f} min wall on the 2-core CPU, shared with other jobs).",
        f"  Settings: {settings_summary(card['training']['settings'] or {})}; the full",
        f"  config and the per-epoch log are in `{card['training']['log']}`. Command:",
        f"  `{card['training']['command']}`", "",
        "## Protection under protocol P112", "",
        "Clean-test accuracy (%) of an attacker trained from scratch on the protected WebFace10 train split",
        "(protected at 224 px by `segue protect`, PNG, then resized to 112 px by the attacker). Lower is better;",
        f"chance is {card['chance_accuracy']:.0f}%. Clean baseline (same attacker, clean photos): "
        f"{card['clean_baseline_reference']}% (protocol reference, this machine)"
        + (f"; measured in this evaluation: {card['clean_baseline_measured']['final']:.1f}% final "
           f"({card['clean_baseline_measured']['peak']:.1f}% peak)." if card["clean_baseline_measured"] else ".")
        + " Other attackers' baselines are in the baseline column where measured: architectures that learn "
          "little from 1,300 clean photos say little about protection.", "",
        "| scenario | target | protected final (peak) | clean baseline final | met | command |",
        "|---|---|---|---|---|---|",
    ]
    for row in card["evaluations"]:
        protected = row["protected"]
        figure = "not measured" if protected is None else f"{protected['final']:.1f} ({protected['peak']:.1f})"
        baseline = "-" if row["baseline"] is None else f"{row['baseline']['final']:.1f}"
        target = "none set" if row["target_max_accuracy"] is None else f"<= {row['target_max_accuracy']:.0f}"
        lines.append(f"| {row['scenario']} | {target} | {figure} | {baseline} | "
                     f"{_met_cell(row)} | `{row['command']}` |")
    lines += ["", f"A clean baseline is the same attacker trained on the clean train split: "
                  f"`{baseline_command('ARCH', 'none')}` (with `--attack ATTACK` for a counter-measure's row)."]
    lines += ["", *render_threat_model(card)]
    lines += ["", "## Image quality (protected vs clean train photos at 224 px)", ""]
    if q:
        lines += [
            "| PSNR | SSIM | MS-SSIM | max L-inf | mean L2 | LPIPS |", "|---|---|---|---|---|---|",
            f"| {q['psnr_db']:.2f} dB (target >= 33) | {q['ssim']:.3f} (target >= 0.95) | {q['ms_ssim']:.3f} | "
            f"{q['linf_max_255']:.1f}/255 | {q['l2_mean']:.2f} | not computed |", "",
            f"LPIPS: {q.get('lpips_note', 'not computed')}", "",
            "| tint (CIEDE2000 after a sigma-4 blur) | chroma share of the perturbation | within-identity cosine |",
            "|---|---|---|",
            f"| {_figure(q.get('tint_ciede2000'), '.2f')} (target <= 1.5) | {_figure(q.get('chroma_share'), '.3f')} "
            f"(target <= 0.25) | {_figure(q.get('within_identity_cosine'), '.3f')} |", "",
            "Tint is the colour cast a viewer sees side by side (about 1: just noticeable); chroma share is the part",
            "of the perturbation that is colour; a within-identity cosine near 1 means one pattern per identity,",
            "which averaging a few protected photos estimates (`estimate-remove` above).",
        ]
    else:
        lines.append("not measured")
    if strip:
        lines += ["", f"![clean, protected and residual x30]({strip})"]
    if portrait:
        lines += ["", "A full portrait protected face by face (`segue protect --faces`; made by",
                  "`python research/portrait_strip.py --out docs/img/default-model-portrait.png`): clean, protected,",
                  "residual x30. The colour cast on the face (the tint above) is visible side by side.", "",
                  f"![a portrait: clean, protected, residual x30]({portrait})"]
    lines += ["", "## How it got here", "",
              "The first default model (the paper's generator without the code pattern, trained at the working",
              "size only) left the attacker at 84% under P112. What changed, and the class-wise controls that",
              "guided it, are in docs/training.md and docs/evaluation.md (with the commands). The class-wise",
              "code pattern makes the perturbation separable by identity on purpose: an attacker who knows",
              "segue is in use can look for it (docs/evaluation.md, 'Noise separability of the current model').", ""]
    lines += ["## What was tried for the missed targets", "",
              "Each a screen of one trained variant under P112; figures and commands are in docs/evaluation.md",
              "('The default model under P112' and the sections after it). None beat this model, so it stays:", "",
              "- Hashed names: training on fresh random codes only (`--code-assignment random`), and training",
              "  longer (14 and 20 epochs): each let the attacker learn more with hashed names.",
              "- Grayscale: a brightness code pattern (fixed class-wise brightness patterns are not learned by the",
              "  attacker at all, so it was not trained), and showing half the photos to the surrogate in grayscale",
              "  (`--gray-p 0.5`): the grayscale attacker still learned the faces.",
              "- Grayscale and tint, a luminance perturbation (issue 15, 'Protection v3' in docs/evaluation.md):",
              "  generators with a luminance output (`--luma`, code patterns of 8 x 8 and 28 x 28) meet the colour",
              "  targets (chroma share 0.002-0.003, tint 1.25-1.53) but leave 61-65.5% on the 8-epoch screen",
              "  (this model: 17.0% there); fixed keyed luminance textures are not learned as a shortcut at all.",
              "  A luminance targeted poison (`--luma --objective targeted`) leaves 24.5% with labels and 28.0% under",
              "  grayscale on the screen, tint 1.44, but 73.0% with hashed names; kept as a candidate, not measured",
              "  under full P112 (models/candidates/). A decoy codebook (`--decoys K`) brings hashed names to",
              "  38.5-41% (40.0% under grayscale). None of these went lower: a surrogate trained to convergence",
              "  first, a generator four times larger, per-photo targeted PGD with no generator (41.0% with labels),",
              "  and one optimised luminance map per identity with no generator (29.0-30.5% with labels, 25.5%",
              "  under grayscale). In this recipe 8/255 of luminance stops at about 25-30% with labels.",
              "- Adversarial training (4/255): REM-style training, an adversarially trained surrogate and defensive",
              "  noise at the attacker's 4/255 (`--surrogate-rho`, `--rho-d`): the attacker learned more, sooner.",
              "- The 15% label target: the hashed-name screens measured labels too; none beat this model by more",
              "  than run-to-run noise (a re-run of its training command measures within a point of it). No",
              "  screen targeted the other architectures on their own.", ""]
    lines += ["", "Figures come from `segue evaluate` runs; the JSON card names each one's results.json. Those under",
              f"`models/{card['name']}-evaluations/` are copies kept in the repository; a path outside it is a run",
              "folder of an earlier session that was not kept (re-run the command to check it). Scenarios marked",
              "'not measured' were not run in the session that made this card: each full P112 attacker run takes",
              "20-40 minutes on the 2-core CPU. Run the command beside it, then re-run this script.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
