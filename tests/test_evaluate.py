"""segue evaluate: counter-measures as units, data checks, quality metrics, and a tiny
end-to-end evaluation whose protected set is made of class-wise constant shortcuts."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pytorch_msssim import ms_ssim, ssim
from torch import nn
from typer.testing import CliRunner

from segue_cli.cli.app import app
from segue_cli.errors import ConfigError, InputError
from segue_cli.evaluation import P112, p112, parse_scenario
from segue_cli.evaluation.countermeasure_ops import adversarial_examples, crop, cutmix, cutout, flip, jpeg_reencode, mixup, to_gray
from segue_cli.evaluation.countermeasures import at_step_size, augment_batch, decode_transform
from segue_cli.evaluation.data import load_evaluation_data
from segue_cli.evaluation.quality import measure_quality, ms_ssim_any_size, ms_ssim_scales, ssim_and_cs
from segue_cli.nn import ATTACKER_NAMES
from segue_cli.nn.attackers import build_attacker

runner = CliRunner()
TINTS = np.array([[0.2, -0.1, -0.1], [-0.1, 0.2, -0.1], [-0.1, -0.1, 0.2]])


def _save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray((np.clip(array, 0, 1) * 255).round().astype(np.uint8))
    image.save(path, quality=95) if path.suffix == ".jpg" else image.save(path)


def make_shortcut_sets(root: Path, per_class: int = 32, size: int = 32, seed: int = 0) -> dict[str, Path]:
    """Clean faces stand-ins: each identity is a colour tint under pixel noise (learnable).
    Protected set: each identity's images are ONE fixed random pattern (plus faint noise),
    i.e. pure class-wise shortcuts with no trace of the tint. Protected PNG, clean JPG."""
    rng = np.random.default_rng(seed)
    patterns = np.random.default_rng(1234).random((3, size, size, 3))
    for k in range(3):
        for i in range(per_class):
            _save(root / "train_clean" / f"id{k}" / f"{i}.jpg", 0.5 + TINTS[k] + rng.normal(0, 0.1, (size, size, 3)))
            _save(root / "train_protected" / f"id{k}" / f"{i}.png", patterns[k] + rng.normal(0, 0.03, (size, size, 3)))
        for i in range(per_class // 2):
            _save(root / "test" / f"id{k}" / f"{i}.jpg", 0.5 + TINTS[k] + rng.normal(0, 0.1, (size, size, 3)))
    return {"protected": root / "train_protected", "clean": root / "train_clean", "test": root / "test"}


def make_photo_tree(root: Path, layout: dict[str, list[str]], size: int = 24, suffix: str = ".png") -> Path:
    rng = np.random.default_rng(0)
    for identity, names in layout.items():
        for name in names:
            _save(root / identity / (name if "." in name else name + suffix), rng.random((size, size, 3)))
    return root


# --- counter-measures ----------------------------------------------------------------------


def test_scenarios_parse_to_canonical_names_and_reject_nonsense():
    assert parse_scenario("none").name == "none"
    combined = parse_scenario("at-4+JPEG-10+gray")
    assert combined.name == "gray+jpeg-10+at-4" and combined.get("gray") and combined.get("jpeg") == 10
    assert combined.get("at") == (4, 5) and combined.get("blur") is None
    assert at_step_size(4, 5) == pytest.approx(1 / 255)  # P112: 5 steps of R/4 / 255
    assert parse_scenario("blur").get("blur") == 1.0 and parse_scenario("blur-2").name == "blur-2"
    assert parse_scenario("at-8-10").name == "at-8-10"
    for bad in ("jpeg-0", "jpeg-101", "mixup+cutmix", "gray+gray", "none+gray", "sharpen", "down-100", "at-0", ""):
        with pytest.raises(ConfigError):
            parse_scenario(bad)


def test_gray_makes_channels_equal_on_train_and_test():
    rgb = (np.random.default_rng(0).random((20, 30, 3)) * 255).astype(np.uint8)
    gray = to_gray(rgb)
    assert gray.shape == rgb.shape and (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()
    for test_set in (False, True):
        out = decode_transform(parse_scenario("gray"), test_set=test_set)(rgb)
        assert np.array_equal(out, gray)


def test_jpeg_changes_pixels_and_only_on_training_images():
    rgb = (np.random.default_rng(1).random((32, 32, 3)) * 255).astype(np.uint8)
    low = jpeg_reencode(rgb, 10)
    assert low.shape == rgb.shape and np.abs(low.astype(int) - rgb).mean() > 10
    assert np.abs(jpeg_reencode(rgb, 95).astype(int) - rgb).mean() < np.abs(low.astype(int) - rgb).mean()
    scenario = parse_scenario("jpeg-10")
    assert np.array_equal(decode_transform(scenario, test_set=False)(rgb), low)
    assert decode_transform(scenario, test_set=True) is None


def test_cutout_zeroes_two_half_size_patches_and_keeps_the_rest():
    x = torch.rand(6, 3, 32, 32) + 0.1  # no zeros of its own
    out = cutout(x, torch.Generator().manual_seed(0))
    zero = out == 0
    kept = ~zero
    assert torch.equal(out[kept], x[kept])
    per_image = zero[:, 0].flatten(1).float().mean(1)
    assert (per_image > 0).all() and (per_image <= 2 * 0.25 + 1e-6).all()  # at most two 16x16 squares
    assert torch.equal(zero[:, 0], zero[:, 2])  # the same patch in every channel


def test_flip_mirrors_about_half_the_photos_and_leaves_the_others():
    x = torch.rand(64, 3, 8, 8)
    out = flip(x, torch.Generator().manual_seed(0))
    mirrored = torch.tensor([torch.equal(o, i.flip(-1)) for o, i in zip(out, x)])
    kept = torch.tensor([torch.equal(o, i) for o, i in zip(out, x)])
    assert bool((mirrored ^ kept).all())  # each photo one or the other, never changed otherwise
    assert 16 <= int(mirrored.sum()) <= 48


def test_crop_shifts_each_photo_within_its_padding_and_keeps_the_size():
    x = torch.arange(2 * 3 * 50 * 50, dtype=torch.float32).reshape(2, 3, 50, 50)
    out = crop(x, torch.Generator().manual_seed(1), percent=10)  # 5 px of reflect padding
    assert out.shape == x.shape
    padded = torch.nn.functional.pad(x, (5, 5, 5, 5), mode="reflect")
    for o, p in zip(out, padded):  # every output is one window of the padded photo
        assert any(torch.equal(o, p[:, t : t + 50, s : s + 50]) for t in range(11) for s in range(11))
    shifted = crop(x.repeat(8, 1, 1, 1), torch.Generator().manual_seed(2), percent=10)
    assert any(not torch.equal(o, x[i % 2]) for i, o in enumerate(shifted))
    assert parse_scenario("flip+crop").name == "flip+crop" and parse_scenario("crop-20").get("crop") == 20


def test_mixup_and_cutmix_labels_sum_to_one_and_match_the_mix():
    rng = torch.Generator().manual_seed(3)
    x = torch.stack([torch.full((3, 16, 16), float(i) / 10) for i in range(8)])
    targets = torch.eye(8)  # every image its own class, so a label weight is an area
    for mix in (mixup, cutmix):
        mixed, soft = mix(x, targets, rng)
        assert mixed.shape == x.shape
        assert torch.allclose(soft.sum(1), torch.ones(8))
    mixed, soft = cutmix(x, targets, torch.Generator().manual_seed(5))
    own = (mixed == x).flatten(1).float().mean(1)
    weight_own = (soft * targets).sum(1)
    partner_differs = own < 1
    assert torch.allclose(weight_own[partner_differs], own[partner_differs], atol=1e-6)


def test_pgd_adversarial_examples_stay_within_budget_and_restore_train_mode():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    model.train()
    running_before = model[1].running_mean.clone()
    x = torch.rand(5, 3, 16, 16)
    y = torch.eye(3)[torch.tensor([0, 1, 2, 0, 1])]
    adv = adversarial_examples(model, x, y, *parse_scenario("at-4").get("at"))
    assert (adv - x).abs().max() <= 4 / 255 + 1e-6 and (adv - x).abs().max() > 1 / 255
    assert adv.min() >= 0 and adv.max() <= 1
    assert model.training and torch.equal(model[1].running_mean, running_before)
    with torch.no_grad():
        assert nn.functional.cross_entropy(model(adv), y) > nn.functional.cross_entropy(model(x), y)


def test_blur_and_down_up_smooth_the_batch():
    x = torch.rand(2, 3, 32, 32)
    soft = torch.eye(2)
    for spec in ("blur", "down-50"):
        out, same = augment_batch(x, soft, parse_scenario(spec), torch.Generator().manual_seed(0))
        assert out.shape == x.shape and torch.equal(same, soft)
        assert out.diff(dim=-1).abs().mean() < 0.6 * x.diff(dim=-1).abs().mean()


# --- attackers -------------------------------------------------------------------------------


def test_attacker_builder_checks_names_and_sizes():
    model = build_attacker("resnet18", 3, 32)
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 3)
    with pytest.raises(ConfigError, match="75 px"):
        build_attacker("inception_v3", 3, 32)
    with pytest.raises(ConfigError, match="unknown"):
        build_attacker("alexnet", 3, 112)
    with pytest.raises(ConfigError, match="divisible"):
        build_attacker("vit_tiny", 3, 40)


@pytest.mark.parametrize("name", ATTACKER_NAMES)
def test_every_attacker_runs_at_112_px(name):
    model = build_attacker(name, 10, 112).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 112, 112)).shape == (1, 10)


# --- data checks -----------------------------------------------------------------------------


def test_identity_folders_must_match(tmp_path):
    protected = make_photo_tree(tmp_path / "p", {"alice": ["1"], "bob": ["1"]})
    clean = make_photo_tree(tmp_path / "c", {"alice": ["1"], "bob": ["1"]}, suffix=".jpg")
    test = make_photo_tree(tmp_path / "t", {"alice": ["9"], "carol": ["9"]})
    with pytest.raises(InputError, match="identity folders differ") as caught:
        load_evaluation_data(protected, clean, test)
    assert "bob" in caught.value.message and "carol" in caught.value.message


def test_protected_png_pairs_with_clean_jpg_and_mismatches_are_named(tmp_path):
    protected = make_photo_tree(tmp_path / "p", {"a": ["1", "2"], "b": ["1", "2"]})
    clean = make_photo_tree(tmp_path / "c", {"a": ["1", "2"], "b": ["1", "2"]}, suffix=".jpg")
    data = load_evaluation_data(protected, clean, clean)
    assert [(p.relative_to(protected).as_posix(), c.relative_to(clean).as_posix()) for p, c in data.pairs][:2] == [
        ("a/1.png", "a/1.jpg"), ("a/2.png", "a/2.jpg")]
    (clean / "b" / "2.jpg").unlink()
    with pytest.raises(InputError, match="b/2"):
        load_evaluation_data(protected, clean, protected)
    make_photo_tree(clean, {"b": ["2.jpg"]})
    make_photo_tree(protected, {"b": ["2.jpg"]})  # b/2.png and b/2.jpg: ambiguous
    with pytest.raises(InputError, match="differ only by suffix"):
        load_evaluation_data(protected, clean, clean)


# --- image quality -------------------------------------------------------------------------


def test_ssim_and_ms_ssim_agree_with_pytorch_msssim():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 176, 184)
    y = (x + 0.05 * torch.randn_like(x)).clamp(0, 1)
    assert torch.allclose(ssim_and_cs(x, y)[0].mean(1), ssim(x, y, data_range=1.0, size_average=False), atol=1e-5)
    assert torch.allclose(ms_ssim_any_size(x, y, 5), ms_ssim(x, y, data_range=1.0, size_average=False), atol=1e-5)
    assert ms_ssim_scales(224) == 5 and ms_ssim_scales(160) == 4 and ms_ssim_scales(32) == 2


def test_quality_of_a_known_perturbation(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        clean = (rng.random((40, 40, 3)) * 200 + 20).astype(np.uint8)
        signs = rng.choice([-4, 4], size=clean.shape)
        Image.fromarray(clean).save(tmp_path / f"c{i}.png")
        Image.fromarray((clean + signs).astype(np.uint8)).save(tmp_path / f"p{i}.png")
    pairs = [(tmp_path / f"p{i}.png", tmp_path / f"c{i}.png") for i in range(3)]
    report = measure_quality(pairs, 40)
    assert report.psnr_db == pytest.approx(20 * math.log10(255 / 4), abs=1e-3)
    assert report.linf_max_255 == pytest.approx(4) and report.l2_mean == pytest.approx(4 / 255 * math.sqrt(40 * 40 * 3), rel=1e-4)
    assert 0 < report.ssim < 1 and 0 < report.ms_ssim < 1 and report.ms_ssim_scales == 2
    assert "2 of 5 scales" in report.ms_ssim_note and report.lpips is None
    identical = measure_quality([(tmp_path / "c0.png", tmp_path / "c0.png")], 40)
    assert identical.psnr_db is None and identical.identical == 1 and identical.ssim == pytest.approx(1)
    # an untouched copy beside the protected pairs (a person who did not protect) changes no mean
    mixed = measure_quality(pairs + [(tmp_path / "c0.png", tmp_path / "c0.png")], 40)
    assert mixed.identical == 1 and mixed.pairs == 4
    for name in ("psnr_db", "ssim", "ms_ssim", "l2_mean", "linf_mean", "tint_ciede2000", "chroma_share"):
        assert getattr(mixed, name) == pytest.approx(getattr(report, name), rel=1e-6), name


# --- preset and CLI --------------------------------------------------------------------------


def test_p112_preset_sets_the_protocol_and_lists_departures(tmp_path):
    config = p112(tmp_path / "p", tmp_path / "c", tmp_path / "t")
    assert (config.image_size, config.quality_size, config.epochs, config.batch_size, config.lr, config.seed) == (
        112, 224, 20, 32, 5e-4, 0)
    assert config.archs == ("resnet18",) and config.baseline and config.departures() == []
    changed = p112(tmp_path / "p", tmp_path / "c", tmp_path / "t", epochs=2, seed=1, attacks=("gray", "jpeg-10"))
    assert changed.departures() == ["epochs=2 (P112: 20)", "seed=1 (P112: 0)"]
    assert "--attack gray --attack jpeg-10" in changed.as_command() and "--epochs 2" in changed.as_command()
    assert set(P112) <= set(config.to_dict())
    with pytest.raises(ConfigError):
        p112(tmp_path / "p", tmp_path / "c", tmp_path / "t", attacks=("gray", "GRAY"))


def test_cli_rejects_a_bad_counter_measure_before_any_work(tmp_path):
    out = tmp_path / "runs" / "eval"
    result = runner.invoke(app, ["evaluate", "--train-protected", str(tmp_path), "--train-clean", str(tmp_path),
                                 "--test", str(tmp_path), "--attack", "jpeg-200", "--out", str(out)])
    assert result.exit_code == 2 and "jpeg-200" in result.output and "1-100" in result.output and "hint" in result.output
    assert not out.exists()


# --- end to end ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shortcut_run(tmp_path_factory):
    """One tiny evaluation through the CLI: 3 identities, 32 px, 2 epochs, 96 + 48 images."""
    root = tmp_path_factory.mktemp("shortcut")
    sets = make_shortcut_sets(root)
    args = ["evaluate", "--train-protected", str(sets["protected"]), "--train-clean", str(sets["clean"]),
            "--test", str(sets["test"]), "--out", str(root / "runs" / "eval"), "--image-size", "32",
            "--quality-size", "32", "--epochs", "2", "--batch-size", "4", "--lr", "2e-3", "--threads", "1",
            "--workers", "1", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    # Logs of non-interactive runs (cron, nohup) get one permanent line per epoch.
    assert "resnet18 none protected: epoch 2/2 " in result.stderr, result.stderr
    assert "resnet18 none clean: epoch 1/2 " in result.stderr
    return root, args, summary


@pytest.mark.slow
def test_tiny_evaluation_writes_a_complete_report(shortcut_run):
    root, _, summary = shortcut_run
    run_dir = Path(summary["run_dir"])
    assert run_dir == root / "runs" / "eval"
    for name in ("report.md", "results.json", "accuracy_per_epoch.png", "accuracy_by_attacker.png",
                 "accuracy_by_countermeasure.png", "clean_protected_residual.png"):
        assert (run_dir / name).is_file() and (run_dir / name).stat().st_size > 0, name
    results = json.loads((run_dir / "results.json").read_text())
    for key in ("schema_version", "status", "protocol", "departures", "config", "command", "data", "chance_accuracy",
                "seeds", "environment", "quality", "runs", "summary", "timing", "figures"):
        assert key in results, key
    assert results["status"] == "complete" and results["chance_accuracy"] == pytest.approx(100 / 3)
    assert results["data"]["images"] == {"protected": 96, "clean": 96, "test": 48}
    assert "epochs=2 (P112: 20)" in results["departures"]
    assert results["environment"]["packages"]["torch"] and results["seeds"]["seed"] == 0
    assert [(r["train_set"], len(r["history"])) for r in results["runs"]] == [("protected", 2), ("clean", 2)]
    for run in results["runs"]:
        assert 0 <= run["final_accuracy"] <= 100 and run["peak_accuracy"] >= run["final_accuracy"]
        assert set(run["per_identity"]) == {"id0", "id1", "id2"}
        assert all(h["loss"] > 0 and 0 <= h["test_accuracy"] <= 100 for h in run["history"])
    quality = results["quality"]
    assert quality["pairs"] == 96 and quality["psnr_db"] < 20 and quality["lpips"] is None
    report = (run_dir / "report.md").read_text()
    assert "P112 with departures" in report and "LPIPS is not computed" in report and "| resnet18 | none |" in report


@pytest.mark.slow
def test_class_wise_shortcuts_drive_accuracy_to_chance_while_clean_training_learns(shortcut_run):
    _, _, summary = shortcut_run
    (row,) = summary["summary"]
    chance = summary["chance_accuracy"]
    assert row["protected"]["final"] <= chance + 15
    assert row["clean"]["final"] >= chance + 30


@pytest.mark.slow
def test_a_second_evaluation_gets_a_new_run_folder(shortcut_run):
    root, args, summary = shortcut_run
    quick = [*args, "--epochs", "1", "--skip-baseline", "--limit-per-identity", "4"]
    result = runner.invoke(app, quick)
    assert result.exit_code == 0, result.output
    second = json.loads(result.stdout.strip().splitlines()[-1])
    assert Path(second["run_dir"]) == root / "runs" / "eval-2" and Path(summary["run_dir"]).is_dir()
    assert "baseline=False (P112: True)" in second["departures"]


def inverted(rgb: np.ndarray, _: object) -> np.ndarray:
    """The test counter-measure's factory (``invert`` below)."""
    return 255 - rgb


def test_a_counter_measure_is_one_registry_entry(monkeypatch):
    """Adding a counter-measure is one spec: parsing, the canonical name, the report's text,
    the decode cache key and applying it all come from it."""
    from dataclasses import replace

    from segue_cli.evaluation import countermeasures as cm

    invert = replace(cm.COUNTERMEASURES["gray"], name="invert", help="invert", spell=lambda _: "invert",
                     describe=lambda _: "colours inverted", factory=f"{__name__}:inverted", on_test_set=False)
    monkeypatch.setitem(cm.COUNTERMEASURES, "invert", invert)
    scenario = parse_scenario("invert+jpeg-90")
    assert scenario.name == "jpeg-90+invert" and scenario.get("invert") is True
    assert "colours inverted" in scenario.describe()
    assert scenario.decode_key(test_set=False) == "jpeg-90+invert" and scenario.decode_key(test_set=True) == "plain"
    rgb = np.full((8, 8, 3), 10, np.uint8)
    assert (decode_transform(scenario, test_set=False)(rgb) > 200).all()
    assert decode_transform(scenario, test_set=True) is None
    with pytest.raises(ConfigError, match="takes no value"):
        parse_scenario("invert-3")
