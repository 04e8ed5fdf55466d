"""The model card's section on the ensemble cloak (issue 40), from the card's "ensemble_cloak"
entry (research/ensemble_cloak_figures.py writes it)."""

from __future__ import annotations

from typing import Any

MATCHERS = {"ncm": "nearest class mean", "1nn": "nearest enrolled photo", "linear": "linear probe"}
SET_COMMANDS = {
    "webface10": ("python research/p112.py --variant hashed --cloak 10 --out runs/p112-ens --arch embedding-sface "
                  "--arch embedding-dlib --arch embedding-faceplugin --arch embedding-mobilefacenet --attack none "
                  "--attack jpeg-75 --attack gray --skip-baseline --threads 1"),
    "lfw48": ("python research/p112.py --data ../shared/data/LFW48 --prefix lfw48 --variant hashed --protocol p112-unseen "
              "--cloak 10 --out runs/lfw-ens2 (the same --arch and --attack) --skip-baseline --threads 1"),
    "lfw48-example": ("the same with --cloak-target example --out runs/lfw-ens"),
    "webface10-example": ("python research/p112.py --variant hashed --cloak 10 --cloak-target example --out runs/p112-ens "
                          "--arch embedding-sface --arch embedding-dlib --arch embedding-faceplugin --arch "
                          "embedding-mobilefacenet --attack none --attack jpeg-75 --attack gray --skip-baseline --threads 1"),
}


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def render_targeted(figures: dict[str, Any]) -> list[str]:
    """Session 18's table: a target for each person, and the crops' jitter (the cloak alone)."""
    lines = ["**A target for each person, and crops that move** (docs/research/2026-12-07-cloak-targets.md). The cloak",
             "alone (no generator), 8/255, 10 steps, each cloaked person pulled toward the clean mean of the farthest",
             "other person (`python research/identity_cloak.py ... --toward-person data [--jitter 0.05]`), the rest of",
             "LFW48 clean. Recall % of the cloaked people, nearest class mean / nearest enrolled photo / linear probe.",
             "The jitter (0.05) is `--cloak`'s default since then; the tables above were made without it and not re-run.",
             "`--cloak-target PATH` (photos of another person) gives one person their own target; a platform that",
             "protects many people gives each the least similar other person of the run with `segue protect ROOT",
             "--by-folder --cloak --cloak-target others` (the all-48 and WebFace10 rows' setting; the rows named the product",
             "are that command itself, with the generator).", "",
             "| setting | SFace (judge) | SFace, JPEG 75 | SFace, grayscale | dlib | faceplugin | MobileFaceNet | SSIM | results |",
             "|---|---|---|---|---|---|---|---|---|"]
    for entry in figures["targeted"]:
        cells = {(row["network"], row["attack"], row["matcher"]): row["cloaked"] for row in entry["rows"]}

        def trio(network: str, attack: str = "none") -> str:
            return " / ".join(_cell(cells.get((network, attack, m))) for m in MATCHERS)
        ssim = (entry.get("quality") or {}).get("ssim")
        lines.append(f"| {entry['label']} | {trio(figures['judge'])} | {trio(figures['judge'], 'jpeg-75')} | "
                     f"{trio(figures['judge'], 'gray')} | {trio('dlib')} | {trio('faceplugin')} | {trio('mobilefacenet')} | "
                     f"{'-' if ssim is None else f'{ssim:.3f}'} | `{entry['results']}` |")
    return lines + [""]


def render_ensemble_cloak(figures: dict[str, Any] | None) -> list[str]:
    lines = ["## The cloak against face networks (`segue protect --cloak`, issue 40)", ""]
    if not figures:
        return lines + ["Not measured yet.", ""]
    targets = figures["targets"]
    lines += [
        "`--cloak` moves each photo's face, within the same 8/255 as the generator, in three face networks at once",
        "(dlib's ResNet and two MobileFaceNets that ship inside the package, `segue_cli/faces/networks.py`), away from",
        "its own descriptor; `--cloak-target example` also pulls it toward one other face, the same for everyone (the",
        "shipped public-domain example portrait; each table says which was used). SFace (OpenCV Zoo) is in no loss: it",
        "judges transfer to a network the cloak was not made against. Each table enrols the photos `segue protect",
        "--cloak` made (with the generator; hashed names; everyone in the set cloaked) and matches the clean test photos",
        "(recall %, the clean originals enrolled in brackets). Targets: SFace nearest class mean and linear probe",
        f"<= {targets['judge']:.0f}%, dlib and each surrogate <= {targets['surrogate']:.0f}%, SSIM >= {targets['ssim']},"
        f" at least {targets['photos_per_second']} photos a second on one core.", ""]
    for key, entry in figures["sets"].items():
        quality = entry.get("quality") or {}
        lines += [f"**{entry['label']}** (`{entry['results']}`; clean: `{entry['clean_results']}`):", "",
                  "| network | counter-measure | nearest class mean | nearest enrolled photo | linear probe | target | met |",
                  "|---|---|---|---|---|---|---|"]
        grouped: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        for row in entry["rows"]:
            grouped.setdefault((row["network"], row["attack"]), {})[row["matcher"]] = row
        for (network, attack), rows in grouped.items():
            cells = [f"{_cell(rows[m]['cloaked'])} ({_cell(rows[m]['clean'])})" if m in rows else "-" for m in MATCHERS]
            target = next(iter(rows.values()))["target"]
            judged = [m for m in (("ncm", "linear") if network == figures["judge"] else MATCHERS) if m in rows]
            met = "yes" if all(rows[m]["cloaked"] <= target for m in judged) else "no"
            name = f"{network} (judge)" if network == figures["judge"] else network
            lines.append(f"| {name} | {attack} | {' | '.join(cells)} | <= {target:.0f} | {met} |")
        if quality.get("ssim") is not None:
            met = "met" if quality["ssim"] >= targets["ssim"] else "missed"
            lines += ["", f"Image quality (cloaked and protected train photos against the originals, {quality['size']} px): "
                          f"SSIM {quality['ssim']:.3f} (target >= {targets['ssim']}: {met}), PSNR {quality['psnr_db']:.2f} dB, "
                          f"tint {quality['tint_ciede2000']:.2f}."]
        lines += ["", f"Command: `{SET_COMMANDS.get(key, '')}`; the clean column: `segue evaluate --train-protected DATA/train "
                      "--train-clean DATA/train --test DATA/test` with the same attackers.", ""]
    if figures.get("leave_one_out"):
        lines += ["**Leave one out** (the cloak made without one surrogate, then judged by it: an estimate of transfer to a",
                  "network of another family). The first 5 of LFW48's people cloaked, the cloak alone (no generator),",
                  "pulled toward the example face, the other 43 clean (`python research/identity_cloak.py ... --cloak 5",
                  "--networks THE-OTHER-TWO --target example`); recall % of the 5, no counter-measure (clean: 100%):", "",
                  "| left out | judged by | nearest class mean | nearest enrolled photo | linear probe | results |",
                  "|---|---|---|---|---|---|"]
        for entry in figures["leave_one_out"]:
            for network in sorted({row["network"] for row in entry["rows"]}):
                rows = {row["matcher"]: row for row in entry["rows"] if row["network"] == network}
                if entry["left_out"] != "none" and network not in (entry["left_out"], figures["judge"]):
                    continue  # "none": the same cloak with all three, every network judged (the reference row)
                cells = [_cell(rows[m]["cloaked"]) if m in rows else "-" for m in MATCHERS]
                lines.append(f"| {entry['left_out']} | {network} | {' | '.join(cells)} | `{entry['results']}` |")
        lines.append("")
    if figures.get("targeted"):
        lines += render_targeted(figures)
    for speed in figures.get("speed") or []:
        met = "met" if speed["photos_per_second"] >= targets["photos_per_second"] else "missed"
        lines.append(f"- Speed, `--cloak-networks {speed['networks']}`: {speed['photos_per_second']:.2f} photos a second "
                     f"on one core with `--workers 1` ({speed['photos']} LFW48 photos, `python benchmarks/cloak_bench.py`, "
                     f"the machine's load {speed['load_before']} on its 2 cores; target >= {targets['photos_per_second']}: {met}).")
    return lines + ["", "A network none of the three is, and that sees through the cloak, remains a risk: SFace's rows "
                        "above are the measure of it. `--cloak-networks dlib --cloak-target none` gives issue 17's "
                        "dlib-only cloak of the threat-model table.", ""]
