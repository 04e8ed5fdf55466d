"""The model card's strength-preset table (research/model_card.py): each preset's figures come
from the evaluation run given for it, a preset without one says so, and figures of an earlier
card are kept only where no run is given now."""

from __future__ import annotations

import json
from pathlib import Path

from research.model_card import preset_figures
from research.model_card_render import render_presets


def _results(folder: Path, psnr: float) -> Path:
    folder.mkdir(parents=True)
    quality = {"psnr_db": psnr, "ssim": 0.99, "tint_ciede2000": 2.5, "per_identity": {"0": 1.0}}
    (folder / "results.json").write_text(json.dumps({"quality": quality}))
    return folder


def test_each_preset_reads_its_own_run_and_unmeasured_ones_say_so(tmp_path: Path) -> None:
    evals = [("hashed", _results(tmp_path / "high", 32.9)), ("hashed-medium", _results(tmp_path / "medium", 35.1))]
    runs = {("hashed", "resnet18", "none", "protected"): {"final": 42.0, "peak": 44.5},
            ("hashed-medium", "resnet18", "none", "protected"): {"final": 55.5, "peak": 58.0},
            ("hashed-medium", "resnet50", "none", "protected"): {"final": 1.0, "peak": 1.0}}  # another attacker: not this row
    presets = preset_figures(evals, runs, None, 8 / 255, {"low": "img/low.png"})

    assert presets["high"]["hashed"]["final"] == 42.0 and presets["medium"]["hashed"]["final"] == 55.5
    assert presets["medium"]["quality"] == {"psnr_db": 35.1, "ssim": 0.99, "tint_ciede2000": 2.5}  # summary fields only
    assert presets["low"]["hashed"] is None and presets["low"]["epsilon_255"] == 4.0
    text = "\n".join(render_presets(presets))
    assert "| medium | 6/255 | 55.5% (58.0%) | 35.10 dB | 0.990 | 2.50 |" in text
    assert "| low | 4/255 | not measured | - | - | - | 5 | ![low](img/low.png) |" in text
    assert "Not measured under P112 yet: low." in text


def test_an_earlier_cards_figures_are_kept_only_where_no_run_is_given(tmp_path: Path) -> None:
    previous = {"strength_presets": {"low": {"hashed": {"final": 70.0, "peak": 71.0}, "quality": {"psnr_db": 38.0}},
                                     "medium": {"hashed": {"final": 60.0, "peak": 61.0}}}}
    runs = {("hashed-medium", "resnet18", "none", "protected"): {"final": 55.5, "peak": 58.0}}
    presets = preset_figures([], runs, previous, 8 / 255, {})

    assert presets["low"]["hashed"]["final"] == 70.0 and presets["low"]["quality"] == {"psnr_db": 38.0}
    assert presets["medium"]["hashed"]["final"] == 55.5
    assert "Not measured under P112 yet: high." in "\n".join(render_presets(presets))
