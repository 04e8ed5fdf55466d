import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from segue_cli.artifacts import load_generator, save_generator
from segue_cli.cli.app import app
from segue_cli.errors import ConfigError, InputError
from segue_cli.imageio import load_image, resize_rgb
from segue_cli.nn import distortions
from segue_cli.nn.generator import GeneratorConfig, SegueGenerator, count_parameters
from segue_cli.protect.config import ProtectConfig
from segue_cli.protect import protect
from segue_cli.nn.codes import code_to_signs
from segue_cli.train import TrainConfig, attacker_view, epoch_stage, identity_codes, train
from segue_cli.datasets import scan_image_folder
from conftest import copy_faces

runner = CliRunner()
TINY = dict(image_size=32, epochs=3, surrogate_period=2, batch_size=4, max_steps_per_epoch=2, pgd_steps=1, workers=1)


def tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def test_tiny_training_writes_loadable_checkpoint_and_leaves_data_alone(tiny_faces, tmp_path):
    before = tree_digest(tiny_faces)
    result = train(TrainConfig(data=tiny_faces, out=tmp_path / "run", **TINY))
    assert tree_digest(tiny_faces) == before
    assert [r.stage for r in result.history] == ["surrogate", "generator", "surrogate"]
    loaded = load_generator(result.generator_path)
    assert loaded.metadata.image_size == 32 and loaded.metadata.training["epochs_run"] == 3
    assert all(r.delta_linf <= 8 / 255 + 1e-6 for r in result.history)
    lines = (result.run_dir / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[-1])["epoch"] == 3


def test_run_folder_is_never_overwritten_and_resume_continues(tiny_faces, tmp_path):
    first = train(TrainConfig(data=tiny_faces, out=tmp_path / "run", **{**TINY, "epochs": 2}))
    second = train(TrainConfig(data=tiny_faces, out=tmp_path / "run", **{**TINY, "epochs": 2}))
    assert first.run_dir != second.run_dir and second.run_dir.name == "run-2"
    resumed = train(TrainConfig(data=tiny_faces, out=first.run_dir, resume=True, **{**TINY, "epochs": 3}))
    assert resumed.run_dir == first.run_dir
    assert [r.epoch for r in resumed.history] == [1, 2, 3]


def test_surrogate_rho_trains_the_surrogate_on_adversarial_views(tiny_faces, tmp_path):
    """Same seed, same batches: PGD noise against the surrogate raises its loss in its own pass."""
    settings = {**TINY, "epochs": 2}
    plain = train(TrainConfig(data=tiny_faces, out=tmp_path / "plain", **settings))
    robust = train(TrainConfig(data=tiny_faces, out=tmp_path / "robust", surrogate_rho=16 / 255, **settings))
    assert robust.history[0].ce > plain.history[0].ce
    saved = json.loads((robust.run_dir / "config.json").read_text())["config"]
    assert saved["surrogate_rho"] == pytest.approx(16 / 255)


def test_generator_learns_against_the_surrogate(tiny_faces, tmp_path):
    """A few generator steps must lower the surrogate's loss on perturbed images."""
    result = train(TrainConfig(data=tiny_faces, out=tmp_path / "run", image_size=32, epochs=4, surrogate_period=4,
                               batch_size=6, max_steps_per_epoch=3, pgd_steps=0, lr_generator=5e-3, workers=1,
                               distortion=distortions.DistortionConfig(jpeg_p=0, resize_p=0)))
    generator_ce = [r.ce for r in result.history if r.stage == "generator"]
    assert generator_ce[-1] < generator_ce[0]


def test_mixed_codes_alternate_between_own_and_random(tiny_faces):
    dataset = scan_image_folder(tiny_faces)
    own, kind0 = identity_codes(dataset, "mixed", 0, 16, seed=0)
    rand, kind1 = identity_codes(dataset, "mixed", 1, 16, seed=0)
    assert (kind0, kind1) == ("labels", "random")
    assert own == [int(n) for n in dataset.identities] and rand != own


def test_attacker_view_matches_protect_then_the_protocol_resize(webface10, tmp_path):
    """Training sees what P112's attacker sees of a `segue protect` output (224 px crop,
    112 px working size): the real pipeline, run through files, agrees to within one
    8-bit level on average (the only differences: PIL vs torch resampling and rounding).
    A per-pixel code pattern (grid 112) makes the round trip matter: adding delta at the
    working size without it is several levels off (measured 3.7 vs 0.3)."""
    torch.manual_seed(0)
    model = SegueGenerator(GeneratorConfig(pattern_grid=112)).eval()
    checkpoint = tmp_path / "g.safetensors"
    save_generator(checkpoint, model, epsilon=8 / 255, image_size=112, training={"note": "test"})
    photo_path = sorted((webface10 / "train" / "0").glob("*.jpg"))[0]
    out = tmp_path / "out"
    summary = protect(ProtectConfig(input=photo_path, out=out, model=str(checkpoint), label=0, backend="torch"))
    assert summary.written == 1
    protected = load_image(next(out.glob("*.png"))).rgb
    seen_by_attacker = resize_rgb(protected, 112).float() / 255

    config = TrainConfig(data=tmp_path, out=tmp_path / "run", image_size=112, photo_scale=2.0)
    photo = resize_rgb(load_image(photo_path).rgb, 224)[None].float() / 255
    with torch.no_grad():
        delta, view = attacker_view(config, model, photo, code_to_signs([0], 16), torch.Generator())
    assert delta.shape == (1, 3, 112, 112) and view.shape == (1, 3, 112, 112)
    assert (view[0] - seen_by_attacker).abs().mean() * 255 < 1.0
    clean_view = resize_rgb(load_image(photo_path).rgb, 112).float() / 255
    assert (view[0] - clean_view).abs().mean() * 255 > 1.0  # and the perturbation is there
    working_size_only = TrainConfig(data=tmp_path, out=tmp_path / "run", image_size=112, photo_scale=1.0)
    with torch.no_grad():
        _, no_round_trip = attacker_view(working_size_only, model, clean_view[None], code_to_signs([0], 16), torch.Generator())
    assert (no_round_trip[0] - seen_by_attacker).abs().mean() * 255 > 2.0


def test_gray_p_shows_the_surrogate_what_the_gray_attacker_sees(webface10, tmp_path):
    """--gray-p 1: every view is evaluate's `gray` counter-measure (PIL luma, 3 channels)
    of the colour view, to within rounding; --gray-p 0 leaves colour alone."""
    from segue_cli.evaluation.countermeasure_ops import to_gray

    model = SegueGenerator(GeneratorConfig()).eval()
    photo = resize_rgb(load_image(sorted((webface10 / "train" / "0").glob("*.jpg"))[0]).rgb, 112)[None].float() / 255
    views = {}
    for gray_p in (0.0, 1.0):
        config = TrainConfig(data=tmp_path, out=tmp_path / "run", image_size=112, photo_scale=1.0, gray_p=gray_p)
        with torch.no_grad():
            views[gray_p] = attacker_view(config, model, photo, code_to_signs([3], 16), torch.Generator())[1][0]
    colour = (views[0.0] * 255).round().byte().permute(1, 2, 0).numpy()
    expected = torch.from_numpy(to_gray(colour)).permute(2, 0, 1).float() / 255
    assert (views[1.0] - expected).abs().max() * 255 <= 1.0
    assert (views[0.0][0] - views[0.0][1]).abs().mean() * 255 > 5  # the colour view has colour
    with pytest.raises(ConfigError):
        TrainConfig(data=tmp_path, out=tmp_path / "run", gray_p=1.5)


def test_distortions_replay_exactly_and_keep_range():
    x = torch.rand(3, 3, 40, 40)
    params = distortions.sample(3, distortions.DistortionConfig(jpeg_p=1, resize_p=1, flip_p=0.5), torch.Generator().manual_seed(0))
    a = distortions.apply(x, params, distortions.DistortionConfig())
    b = distortions.apply(x, params, distortions.DistortionConfig())
    assert torch.equal(a, b) and a.min() >= 0 and a.max() <= 1 and not torch.equal(a, x)


def test_differentiable_jpeg_tracks_real_jpeg_and_has_gradient(webface10):
    import io

    from segue_cli.imageio import rgb_to_tensor

    rgb = load_image(webface10 / "train" / "0" / "0.jpg").rgb
    x = rgb_to_tensor(rgb)[None].requires_grad_(True)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=50, subsampling=0)
    real = rgb_to_tensor(np.asarray(Image.open(buffer)))[None]
    approx = distortions.jpeg(x, 50)
    assert (approx - real).abs().mean() < (x - real).abs().mean()
    approx.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


# ---- bad input ---------------------------------------------------------------------

def cli_train(*args: str):
    return runner.invoke(app, ["train", *map(str, args), "--image-size", "32", "--epochs", "2", "--max-steps", "1",
                               "--batch-size", "4", "--pgd-steps", "0"])


def test_missing_and_empty_folders_are_clear_errors(tmp_path):
    result = cli_train(tmp_path / "nope", "--out", tmp_path / "run")
    assert result.exit_code == 2 and "not found" in result.output
    (tmp_path / "empty").mkdir()
    result = cli_train(tmp_path / "empty", "--out", tmp_path / "run")
    assert result.exit_code == 2 and "no images" in result.output


def test_one_identity_is_refused(tiny_faces, tmp_path):
    for extra in sorted(p for p in tiny_faces.iterdir())[1:]:
        for f in extra.iterdir():
            f.unlink()
        extra.rmdir()
    result = cli_train(tiny_faces, "--out", tmp_path / "run")
    assert result.exit_code == 2 and "at least 2" in result.output
    assert not (tmp_path / "run").exists()


def test_unreadable_and_tiny_files_are_named_then_skippable(tiny_faces, tmp_path):
    bad = tiny_faces / "0" / "broken.jpg"
    bad.write_bytes(b"this is not a jpeg")
    Image.new("RGB", (4, 4)).save(tiny_faces / "1" / "tiny.png")
    result = cli_train(tiny_faces, "--out", tmp_path / "run")
    assert result.exit_code == 2
    assert "broken.jpg" in result.output and "tiny.png" in result.output and "--skip-bad-images" in result.output
    result = cli_train(tiny_faces, "--out", tmp_path / "run2", "--skip-bad-images")
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "run2" / "config.json").read_text())
    assert len(record["skipped_images"]) == 2


def test_odd_image_modes_are_converted_and_used(tiny_faces, tmp_path):
    face = np.asarray(Image.open(next((tiny_faces / "0").glob("*.jpg"))).convert("RGB"))
    Image.fromarray(face).convert("L").save(tiny_faces / "0" / "gray.png")
    Image.fromarray(face).convert("RGBA").save(tiny_faces / "0" / "rgba.png")
    Image.fromarray(face).convert("CMYK").save(tiny_faces / "1" / "cmyk.jpg")
    Image.fromarray((face[:, :, 0].astype(np.uint16) * 257)).save(tiny_faces / "1" / "sixteen.png")
    before = tree_digest(tiny_faces)
    result = cli_train(tiny_faces, "--out", tmp_path / "run", "--json")
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "run" / "config.json").read_text())
    assert record["images"] == 18 + 4 and record["skipped_images"] == []
    assert tree_digest(tiny_faces) == before


def test_bad_options_are_usage_errors(tiny_faces, tmp_path):
    result = cli_train(tiny_faces, "--out", tmp_path / "run", "--epsilon", "-1")
    assert result.exit_code == 2 and "epsilon" in result.output


@pytest.mark.parametrize("option", [
    ["--alpha", "-1"], ["--beta", "-1"], ["--rho-d", "1000"], ["--flip-p", "5"], ["--jpeg-p", "-1"],
    ["--blur-sigma", "-1"], ["--sharpness", "-3"], ["--max-steps", "-1"], ["--epsilon", "0.5"],
    ["--surrogate-rho", "2"], ["--resize-p", "1.5"],
])
def test_train_refuses_out_of_range_numbers_before_any_work(tmp_path, option):
    result = CliRunner().invoke(app, ["train", str(tmp_path), "--out", str(tmp_path / "run"), *option])
    assert result.exit_code == 2, result.output
    assert option[0] in result.output
    assert not (tmp_path / "run").exists()


def test_one_epoch_is_refused_and_an_untrained_checkpoint_is_not_used(tmp_path, tiny_faces):
    result = runner.invoke(app, ["train", str(tiny_faces), "--out", str(tmp_path / "run"), "--epochs", "1"])
    assert result.exit_code == 2 and "--epochs must be at least 2" in result.output
    # A checkpoint whose summary says no generator epoch ran (as one-epoch runs of older
    # versions wrote) is refused by protect and export, naming the file.
    untrained = tmp_path / "untrained.safetensors"
    save_generator(untrained, SegueGenerator(GeneratorConfig()), epsilon=8 / 255, image_size=32,
                   training={"epochs_run": 1, "last_epoch": {"stage": "surrogate"}})
    result = runner.invoke(app, ["protect", str(tiny_faces), "--out", str(tmp_path / "out"), "--model", str(untrained)])
    assert result.exit_code == 2 and "not a trained generator" in result.output and "untrained.safetensors" in result.output
    assert not (tmp_path / "out").exists()
    result = runner.invoke(app, ["export", str(untrained), "--out", str(tmp_path / "u.onnx")])
    assert result.exit_code == 2 and "not a trained generator" in result.output


def test_train_says_where_it_writes_when_out_exists(tmp_path, tiny_faces):
    (tmp_path / "run").mkdir()
    result = runner.invoke(app, ["train", str(tiny_faces), "--out", str(tmp_path / "run"), "--epochs", "2",
                                 "--image-size", "16", "--batch-size", "4", "--max-steps", "1", "--pgd-steps", "0"])
    assert result.exit_code == 0, result.output
    assert f"run folder: {tmp_path / 'run-2'} ({tmp_path / 'run'} exists" in result.stderr
    # stderr is not a terminal here, as in a nohup or cron log: plain lines, no cut-off bar.
    assert "epoch 2/2 generator: 1/1" in result.stderr and "…" not in result.stderr
    assert load_generator(tmp_path / "run-2" / "generator.safetensors").metadata.training["generator_epochs"] == 1


def test_targeted_objective_trains_the_surrogate_on_clean_photos_and_aims_at_the_next_identity(tiny_faces, tmp_path):
    settings = dict(image_size=32, epochs=2, surrogate_period=2, batch_size=6, max_steps_per_epoch=2, pgd_steps=0,
                    workers=1, luma=True)
    minimizing = train(TrainConfig(data=tiny_faces, out=tmp_path / "em", **settings))
    targeted = train(TrainConfig(data=tiny_faces, out=tmp_path / "tap", objective="targeted", **settings))
    # Same seed and batches: the surrogate's pass differs only in seeing clean photos.
    assert targeted.history[0].ce != minimizing.history[0].ce
    # Aiming at another identity than the photo's: the generator's loss starts far higher.
    assert targeted.history[1].ce > minimizing.history[1].ce
    with pytest.raises(ConfigError, match="--objective"):
        TrainConfig(data=tiny_faces, out=tmp_path / "x", objective="maximizing")


def test_keyed_targets_come_from_the_code_alone():
    from segue_cli.nn.keyed_targets import KeyedTargets, random_code_signs

    generator = SegueGenerator(GeneratorConfig(pattern_grid=8, luma=True))
    keyed = KeyedTargets(generator, num_classes=10, feature_dim=512)
    signs = random_code_signs(400, 16, torch.Generator().manual_seed(0))
    labels = torch.arange(400) % 10
    decoys = keyed.decoys(signs, exclude=labels)
    assert not (decoys == labels).any()  # a photo is never aimed at its own identity
    assert len(set(decoys.tolist())) == 10  # random codes reach every decoy
    # The same code gets the same targets in another generator (fixed features and projections).
    other = KeyedTargets(SegueGenerator(GeneratorConfig(pattern_grid=8, luma=True)), 10, 512)
    assert torch.equal(other.decoys(signs[:5]), keyed.decoys(signs[:5]))
    directions = keyed.directions(signs)
    assert torch.allclose(directions.norm(dim=1), torch.ones(400))
    cosine = directions @ directions.T
    assert cosine[~torch.eye(400, dtype=torch.bool)].abs().mean() < 0.3  # different codes, different directions
    with pytest.raises(ValueError, match="pattern"):
        KeyedTargets(SegueGenerator(GeneratorConfig(pattern_grid=0)), 10, 512)


@pytest.mark.parametrize("objective", ["keyed-targeted", "keyed-feature"])
def test_keyed_objectives_train_on_random_codes(tiny_faces, tmp_path, objective):
    with pytest.raises(ConfigError, match="--pattern-grid"):
        TrainConfig(data=tiny_faces, out=tmp_path / "x", objective=objective, pattern_grid=0)
    result = train(TrainConfig(data=tiny_faces, out=tmp_path / objective, objective=objective, image_size=32, epochs=2,
                               surrogate_period=2, batch_size=6, max_steps_per_epoch=2, pgd_steps=0, workers=1,
                               luma=True, pattern_grid=8))
    assert [record.codes for record in result.history] == ["random", "random"]
    assert all(np.isfinite(record.ce) for record in result.history)
    load_generator(result.generator_path)  # a checkpoint protect can use


@pytest.mark.parametrize("kind", ["garbage", "payload", "foreign"])
def test_resume_from_a_bad_or_hostile_state_names_the_file(tmp_path, tiny_faces, kind):
    import pickle

    run = train(TrainConfig(data=tiny_faces, out=tmp_path / "run", **{**TINY, "epochs": 2}))
    state = run.run_dir / "state.pt"
    marker = tmp_path / "payload-ran"
    if kind == "garbage":
        state.write_bytes(b"\x00not a torch file")
    elif kind == "payload":
        class Payload:
            def __reduce__(self):
                return (open, (str(marker), "w"))

        torch.save({"epoch": Payload()}, state, pickle_module=pickle)
    else:
        torch.save({"epoch": 1, "something": torch.zeros(2)}, state)
    result = runner.invoke(app, ["train", str(tiny_faces), "--out", str(run.run_dir), "--resume", "--epochs", "3"])
    assert result.exit_code == 2, result.output
    assert "cannot resume from" in result.output and "state.pt" in result.output and "without --resume" in result.output
    assert not marker.exists()


def test_surrogate_warmup_trains_on_clean_photos_before_the_generator_goes_first(tiny_faces, tmp_path):
    settings = dict(image_size=32, surrogate_period=2, batch_size=6, max_steps_per_epoch=2, pgd_steps=0, workers=1, luma=True)
    warm = train(TrainConfig(data=tiny_faces, out=tmp_path / "warm", epochs=3, surrogate_warmup=2, **settings))
    assert [(r.stage, r.codes) for r in warm.history] == [
        ("surrogate", "clean"), ("surrogate", "clean"), ("generator", "labels"), ("surrogate", "random"), ("generator", "random")]
    assert load_generator(warm.generator_path).metadata.training["surrogate_warmup_epochs"] == 2
    # The surrogate's cosine schedule spans its 3 passes (2 warm-up + 1), each counted once.
    assert torch.load(warm.run_dir / "state.pt", weights_only=True)["sched_f"]["T_max"] == 3
    # Same seed and batches: an error-minimizing run's warm-up epoch sees what a targeted
    # run's surrogate sees (clean photos), not the perturbed ones of its own first epoch.
    targeted = train(TrainConfig(data=tiny_faces, out=tmp_path / "tap", epochs=2, objective="targeted", **settings))
    cold = train(TrainConfig(data=tiny_faces, out=tmp_path / "cold", epochs=2, **settings))
    assert warm.history[0].ce == pytest.approx(targeted.history[0].ce, abs=1e-6)
    assert warm.history[0].ce != pytest.approx(cold.history[0].ce, abs=1e-6)
    with pytest.raises(ConfigError, match="--surrogate-warmup"):
        TrainConfig(data=tiny_faces, out=tmp_path / "x", surrogate_warmup=-1)


def test_surrogate_from_starts_from_another_runs_surrogate_and_checks_its_identities(tiny_faces, tmp_path):
    settings = dict(image_size=32, surrogate_period=10, batch_size=6, max_steps_per_epoch=2, pgd_steps=0, workers=1,
                    luma=True, objective="targeted")
    warm = train(TrainConfig(data=tiny_faces, out=tmp_path / "warm", epochs=2, surrogate_warmup=2, **settings))
    source = warm.run_dir / "state.pt"
    reused = train(TrainConfig(data=tiny_faces, out=tmp_path / "reused", epochs=2, surrogate_from=source, **settings))
    assert [r.stage for r in reused.history] == ["generator", "generator"]  # trained already: generator first
    # A period longer than the run never trains it: the surrogate is the source's, weight for weight.
    before = torch.load(source, weights_only=True)["surrogate"]
    after = torch.load(reused.run_dir / "state.pt", weights_only=True)["surrogate"]
    assert all(torch.equal(before[name], after[name]) for name in before)
    assert json.loads((reused.run_dir / "config.json").read_text())["config"]["surrogate_from"] == str(source)

    other = tmp_path / "other"
    shutil.copytree(tiny_faces, other)
    first = sorted(p for p in other.iterdir() if p.is_dir())[0]
    first.rename(first.with_name("zz-someone-else"))
    with pytest.raises(InputError, match="--surrogate-from .*identities"):
        train(TrainConfig(data=other, out=tmp_path / "wrong-people", epochs=2, surrogate_from=source, **settings))
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a state")
    with pytest.raises(InputError, match="cannot load a surrogate"):
        train(TrainConfig(data=tiny_faces, out=tmp_path / "garbage-run", epochs=2, surrogate_from=garbage, **settings))
    assert not (tmp_path / "wrong-people").exists() and not (tmp_path / "garbage-run").exists()


def test_a_wider_generator_is_trained_saved_and_loaded_with_its_width(tiny_faces, tmp_path):
    settings = dict(image_size=32, epochs=2, surrogate_period=2, batch_size=6, max_steps_per_epoch=1, pgd_steps=0, workers=1)
    narrow = train(TrainConfig(data=tiny_faces, out=tmp_path / "narrow", **settings))
    wide = train(TrainConfig(data=tiny_faces, out=tmp_path / "wide", generator_width=16, **settings))
    loaded = load_generator(wide.generator_path).model
    assert loaded.config.base_channels == 16
    assert count_parameters(loaded) > 3 * count_parameters(load_generator(narrow.generator_path).model)
    for width in (3, 65):
        with pytest.raises(ConfigError, match="--generator-width"):
            TrainConfig(data=tiny_faces, out=tmp_path / "x", generator_width=width)


def test_alpha_zero_means_the_identity_term_alone_and_nothing_else(tiny_faces, tmp_path):
    # Without the identity term nothing would train the generator but its size penalty.
    with pytest.raises(ConfigError, match="--alpha"):
        TrainConfig(data=tiny_faces, out=tmp_path / "x", alpha=0)
    with pytest.raises(ConfigError, match="--surrogate-warmup and --surrogate-from need --alpha"):
        TrainConfig(data=tiny_faces, out=tmp_path / "x", alpha=0, identity_weight=1, surrogate_warmup=2)
    config = TrainConfig(data=tiny_faces, out=tmp_path / "x", alpha=0, identity_weight=1, epochs=4, surrogate_period=2)
    assert [epoch_stage(config, epoch)[0] for epoch in range(1, 5)] == ["generator"] * 4


def test_a_resumed_run_repeats_an_uninterrupted_one(tiny_faces, tmp_path):
    settings = {**TINY, "epochs": 4, "surrogate_period": 2}
    whole = train(TrainConfig(data=tiny_faces, out=tmp_path / "whole", **settings))

    def stop_after_epoch_2(event) -> None:
        if event.name == "epoch_end" and event.data["epoch"] == 2:
            raise KeyboardInterrupt  # as Ctrl-C after the epoch's state was saved

    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(data=tiny_faces, out=tmp_path / "cut", **settings), stop_after_epoch_2)
    resumed = train(TrainConfig(data=tiny_faces, out=tmp_path / "cut", resume=True, **settings))
    assert [r.epoch for r in resumed.history] == [1, 2, 3, 4]
    assert [round(r.loss, 6) for r in resumed.history] == [round(r.loss, 6) for r in whole.history]
    a, b = load_generator(whole.generator_path).model, load_generator(resumed.generator_path).model
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        torch.testing.assert_close(x, y, rtol=0, atol=1e-6, msg=name)


@pytest.mark.slow
def test_identity_term_reaches_the_generator_through_dlibs_twin(webface10, tmp_path):
    from segue_cli.train.identity import prepare

    faces = copy_faces(tmp_path / "faces", identities=2, per_identity=3, size=None)  # 224 px: faces dlib finds
    with pytest.raises(ConfigError, match="--identity-weight"):
        TrainConfig(data=faces, out=tmp_path / "x", identity_weight=-1)
    result = train(TrainConfig(data=faces, out=tmp_path / "run", image_size=32, epochs=2, surrogate_period=2,
                               batch_size=6, max_steps_per_epoch=1, pgd_steps=0, workers=1, identity_weight=1.0))
    surrogate_epoch, generator_epoch = result.history
    assert surrogate_epoch.identity_similarity is None
    assert generator_epoch.identity_similarity is not None and 0.5 < generator_epoch.identity_similarity <= 1.0
    # The term is differentiable in the photo: lowering it moves the protected pixels.
    photos = torch.stack([torch.from_numpy(load_image(p).rgb).permute(2, 0, 1) for p in sorted(faces.rglob("*.jpg"))])
    targets = torch.tensor([0, 0, 0, 1, 1, 1])
    objective = prepare(photos, targets, 2)
    x = (photos[:2].float() / 255).requires_grad_(True)
    similarity = objective.similarity(x, torch.tensor([0, 1]), targets[:2])
    assert 0.8 < float(similarity) <= 1.0  # clean photos sit close to their own identity
    similarity.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    # --alpha 0: every epoch trains the generator on the identity term alone, the
    # surrogate is never trained, and a surrogate loss of 0 does not stop the run early.
    alone = train(TrainConfig(data=faces, out=tmp_path / "alone", image_size=32, epochs=3, surrogate_period=2,
                              batch_size=6, max_steps_per_epoch=1, pgd_steps=0, workers=1, alpha=0, identity_weight=1.0))
    assert [r.stage for r in alone.history] == ["generator"] * 3 and not alone.stopped_early
    assert all(r.identity_similarity is not None and r.ce == 0 for r in alone.history)


def test_without_flips_keeps_the_draw_but_drops_the_flips():
    config = distortions.DistortionConfig(flip_p=1.0, jpeg_p=1.0, resize_p=1.0)
    params = distortions.sample(4, config, torch.Generator().manual_seed(0))
    kept = params.without_flips()
    assert params.hflip.all() and params.vflip.all()
    assert not kept.hflip.any() and not kept.vflip.any()
    assert (kept.jpeg_quality, kept.resize_scale) == (params.jpeg_quality, params.resize_scale)


def test_decoy_codes_never_aim_at_the_photos_own_identity():
    from segue_cli.train.objectives import decoy_codes

    labels = torch.arange(10).repeat(200)
    codes = decoy_codes(labels, 10, 10, torch.Generator().manual_seed(0))
    assert not ((codes + 1) % 10 == labels).any()  # code d aims at identity d + 1
    assert sorted(set(codes.tolist())) == list(range(10))
    few = decoy_codes(labels, 4, 10, torch.Generator().manual_seed(1))  # fewer decoys than identities
    assert sorted(set(few.tolist())) == [0, 1, 2, 3] and not ((few + 1) % 10 == labels).any()
    many = decoy_codes(labels, 25, 10, torch.Generator().manual_seed(2))  # more: codes d and d + 10 share an aim
    assert sorted(set(many.tolist())) == list(range(25)) and not ((many + 1) % 10 == labels).any()


def test_a_decoy_model_maps_every_name_into_its_decoys_through_torch_and_onnx(tiny_faces, tmp_path):
    from segue_cli.export import ExportConfig, export_model
    from segue_cli.photo.protector import Protector
    from segue_cli.nn.codes import identity_code

    with pytest.raises(ConfigError, match="--decoys needs --objective targeted"):
        TrainConfig(data=tiny_faces, out=tmp_path / "x", decoys=3)
    result = train(TrainConfig(data=tiny_faces, out=tmp_path / "decoys", objective="targeted", decoys=2, **TINY))
    assert [record.codes for record in result.history] == ["decoys"] * 3
    assert load_generator(result.generator_path).metadata.architecture["decoys"] == 2
    onnx_path = tmp_path / "decoys.onnx"
    export_model(ExportConfig(out=onnx_path, model=result.generator_path))
    names = ["alice", "bob", "carol", "dave", "eve"]
    for backend, model in (("torch", result.generator_path), ("onnx", onnx_path)):
        protector = Protector(model=model, backend=backend)
        assert protector.info.decoys == 2
        assert [protector.code_for(identity=n) for n in names] == [identity_code(n) % 2 for n in names]
        assert protector.code_for(label=5) == 1 and protector.code_for(code=5) == 5  # a raw code is the expert's


def test_every_objective_in_the_registry_loads_its_class():
    from segue_cli.train import OBJECTIVES
    from segue_cli.train.objectives import Objective, _Keyed

    classes = {name: spec.load() for name, spec in OBJECTIVES.items()}
    assert all(issubclass(cls, Objective) for cls in classes.values())
    assert {name for name, spec in OBJECTIVES.items() if spec.keyed} == {name for name, cls in classes.items() if issubclass(cls, _Keyed)}
