import errno
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from segue_cli.engines import local as protect_pipeline
from segue_cli.cli.app import app
from segue_cli.errors import ConfigError, InputError, OutputError
from segue_cli.imageio import load_image
from segue_cli.protect.config import ProtectConfig
from segue_cli.protect.job import ProtectSummary
from segue_cli.protect import protect
from segue_cli.photo.compose import PhotoPlan, apply_delta, upsample_strips, whole_image_plan, working_shape
from segue_cli.backends import open_backend
from segue_cli.nn.codes import folder_code, identity_code

runner = CliRunner()
LIMIT = 8  # 8/255 in 8-bit levels


def tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def face(seed: int, size: tuple[int, int] = (48, 48)) -> Image.Image:
    """A smooth random picture (not flat, so the perturbation is visible in the test)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    return Image.fromarray(small).resize(size, Image.Resampling.BILINEAR)


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """Mirrored-name cases: spaces, unicode, nesting, JPEG and PNG inputs."""
    root = tmp_path / "my photos"
    (root / "été 2024" / "beach day").mkdir(parents=True)
    face(0).save(root / "portrait one.jpg", quality=95)
    face(1).save(root / "été 2024" / "zoë.png")
    face(2, (70, 40)).save(root / "été 2024" / "beach day" / "wide shot.JPG", quality=95)
    return root


def run(config_kwargs: dict, model: Path, **extra) -> ProtectSummary:
    return protect(ProtectConfig(model=str(model), workers=2, **config_kwargs), **extra)


def test_protect_with_a_one_file_out_writes_that_file_as_the_cli_does(tmp_path, tiny_generator_path):
    tmp_path = tmp_path / "photos"
    tmp_path.mkdir()
    face(0).save(tmp_path / "a.png")
    summary = run({"input": str(tmp_path / "a.png"), "out": tmp_path / "b.png", "identity": "ada"}, tiny_generator_path)
    assert (tmp_path / "b.png").is_file() and summary.written == 1 and summary.total == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png"]  # no folder, marker, record or lock
    result = runner.invoke(app, ["protect", str(tmp_path / "a.png"), "--out", str(tmp_path / "c.png"), "--identity", "ada",
                                 "--model", str(tiny_generator_path), "--quiet"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "c.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    folder = run({"input": str(tmp_path / "a.png"), "out": tmp_path / "tree", "identity": "ada"}, tiny_generator_path)
    assert folder.written == 1 and (tmp_path / "tree" / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def test_input_and_out_are_parsed_once_into_typed_values(tmp_path):
    from segue_cli.protect.config import Folder, FolderTree, ImageFile, OneFile, PathList, PipedImage, Prefix, Stdout

    face(0).save(tmp_path / "a.png")
    png = (tmp_path / "a.png").read_bytes()
    cases = [(dict(input=str(tmp_path)), Folder, FolderTree), (dict(input=tmp_path / "a.png"), ImageFile, FolderTree),
             (dict(input=str(tmp_path / "a.png"), out=tmp_path / "o.jpg"), ImageFile, OneFile),
             (dict(input=tmp_path / "a.png", out="-"), ImageFile, Stdout), (dict(input=png), PipedImage, Stdout),
             (dict(input=png, out=str(tmp_path / "p.webp")), PipedImage, OneFile),
             (dict(input=b"a.png\nb.png\n"), PathList, FolderTree), (dict(input="-", paths=("a.png",)), PathList, FolderTree),
             (dict(input="s3://bucket/photos", out="s3://bucket/out", engine="ray"), Prefix, FolderTree)]
    for options, source, destination in cases:
        config = ProtectConfig(**options)
        assert (type(config.source), type(config.destination)) == (source, destination), options
    assert ProtectConfig(input=str(tmp_path / "a.png"), out=tmp_path / "o.jpg").destination.image_format == "jpeg"
    assert ProtectConfig(input=b"a.png\0b c.png\0").source == PathList(("a.png", "b c.png"))
    for options, says in [(dict(input=str(tmp_path), out=tmp_path / "o.png"), "is a folder, and --out"),
                          (dict(input="-", paths=("a.png",), out="-"), "stdin listed image paths"),
                          (dict(input=str(tmp_path), out="-"), "INPUT names several photos"),
                          (dict(input=str(tmp_path / "missing")), "input not found"),
                          (dict(input=b"\xff\xfe\x00junk"), "neither an image"),
                          (dict(input=str(tmp_path / "a.png"), out=tmp_path / "o.jpg", image_format="webp"), "--format is webp")]:
        with pytest.raises(InputError, match=says):
            ProtectConfig(**options)


def max_change(source: Path, output: Path) -> int:
    before = load_image(source).rgb.astype(int)
    after = np.asarray(Image.open(output).convert("RGB")).astype(int)
    assert before.shape == after.shape
    return int(np.abs(after - before).max())


def test_inputs_untouched_names_mirrored_change_bounded(photos, tiny_generator_path):
    before = tree_digest(photos)
    summary = run({"input": photos}, tiny_generator_path)
    assert tree_digest(photos) == before
    out = photos.parent / "my photos-protected"
    assert summary.out_dir == out and (summary.written, summary.failed) == (3, 0)
    expected = {"portrait one.png", "été 2024/zoë.png", "été 2024/beach day/wide shot.png"}
    assert {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()} == expected | {".segue-output", ".segue-protect.json"}
    changes = [max_change(photos / "portrait one.jpg", out / "portrait one.png"),
               max_change(photos / "été 2024" / "zoë.png", out / "été 2024" / "zoë.png"),
               max_change(photos / "été 2024" / "beach day" / "wide shot.JPG", out / "été 2024" / "beach day" / "wide shot.png")]
    assert all(0 < change <= LIMIT for change in changes)


def test_rerun_skips_done_files_and_overwrite_redoes_them(photos, tiny_generator_path):
    run({"input": photos}, tiny_generator_path)
    out = photos.parent / "my photos-protected"
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    again = run({"input": photos}, tiny_generator_path)
    assert (again.written, again.skipped, again.failed) == (0, 3, 0)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.png")} == stamps
    (out / "été 2024" / "zoë.png").unlink()  # an interrupted run: one output missing
    finished = run({"input": photos}, tiny_generator_path)
    assert (finished.written, finished.skipped) == (1, 2)
    redone = run({"input": photos, "overwrite": True}, tiny_generator_path)
    assert (redone.written, redone.skipped) == (3, 0)


def test_rerun_under_other_settings_is_refused_not_silently_skipped(photos, tiny_generator_path):
    out = photos.parent / "my photos-protected"
    run({"input": photos}, tiny_generator_path)
    # The default identity is the folder's name: naming it explicitly is the same protection.
    same = run({"input": photos, "identity": "my photos"}, tiny_generator_path)
    assert (same.written, same.skipped) == (0, 3)
    before = tree_digest(out)
    (out / "portrait one.png").unlink()  # one left to do, two that would be skipped
    with pytest.raises(OutputError, match=r"2 output\(s\) protected with other settings.*side_information") as caught:
        run({"input": photos, "identity": "alice"}, tiny_generator_path)
    assert "--overwrite" in caught.value.hint and "--out" in caught.value.hint
    assert tree_digest(out) == {k: v for k, v in before.items() if k != "portrait one.png"}, "nothing written"
    with pytest.raises(OutputError, match="faces: 'auto' -> 'off'"):
        run({"input": photos, "faces": "off"}, tiny_generator_path)
    redone = run({"input": photos, "identity": "alice", "overwrite": True}, tiny_generator_path)
    assert (redone.written, redone.skipped) == (3, 0)
    record = json.loads((out / ".segue-protect.json").read_text())
    assert len(record["settings"]) == 1, "settings no output uses any more are dropped"
    (settings,) = record["settings"].values()
    assert settings["side_information"] == "identity alice" and settings["model_sha256"] == redone.model_sha256
    assert set(record["outputs"]) == {"portrait one.png", "été 2024/zoë.png", "été 2024/beach day/wide shot.png"}
    again = run({"input": photos, "identity": "alice"}, tiny_generator_path)
    assert (again.written, again.skipped) == (0, 3)


def test_two_folders_into_one_output_are_checked_per_file(tmp_path, tiny_generator_path):
    out = tmp_path / "shared-out"
    for name, seed in (("album a", 0), ("album b", 1)):
        (tmp_path / name).mkdir()
        face(seed).save(tmp_path / name / f"{name}.png")
        run({"input": tmp_path / name, "out": out}, tiny_generator_path)  # default identity: the folder name
    # Each output keeps the settings that made it: re-running either album skips, refuses nothing.
    for name in ("album a", "album b"):
        again = run({"input": tmp_path / name, "out": out}, tiny_generator_path)
        assert (again.written, again.skipped) == (0, 1)
    with pytest.raises(OutputError, match="identity album a' -> 'identity album b"):
        run({"input": tmp_path / "album a", "out": out, "identity": "album b"}, tiny_generator_path)


def test_output_never_inside_the_input(photos, tiny_generator_path):
    for out in (photos, photos / "protected", photos / "été 2024"):
        with pytest.raises(OutputError, match="inside the input folder"):
            run({"input": photos, "out": out}, tiny_generator_path)
    result = runner.invoke(app, ["protect", str(photos), "--out", str(photos / "x"), "--model", str(tiny_generator_path)])
    assert result.exit_code == 2 and "inside the input folder" in result.output
    assert not (photos / "x").exists()


def test_output_folders_of_earlier_runs_are_left_out(tmp_path, tiny_generator_path):
    pictures = tmp_path / "Pictures"
    (pictures / "trip").mkdir(parents=True)
    face(0).save(pictures / "trip" / "a.png")
    face(1).save(pictures / "b.png")
    run({"input": pictures / "trip"}, tiny_generator_path)
    assert (pictures / "trip-protected" / "a.png").is_file()
    summary = run({"input": pictures}, tiny_generator_path)
    assert summary.written == 2  # trip/a.png and b.png, not trip-protected/a.png
    assert any("left out 1 output folder" in w and "trip-protected" in w for w in summary.warnings)
    assert not (tmp_path / "Pictures-protected" / "trip-protected").exists()


def test_single_file_and_stdin_list(photos, tiny_generator_path, tmp_path):
    one = photos / "portrait one.jpg"
    result = runner.invoke(app, ["protect", str(one), "--model", str(tiny_generator_path)])
    assert result.exit_code == 0, result.output
    assert (photos.parent / "my photos-protected" / "portrait one.png").is_file()
    listed = f"{photos / 'été 2024' / 'zoë.png'}\n{photos / 'été 2024' / 'beach day' / 'wide shot.JPG'}\n"
    result = runner.invoke(app, ["protect", "-", "--out", str(tmp_path / "from-stdin"), "--model", str(tiny_generator_path)],
                           input=listed)
    assert result.exit_code == 0, result.output
    # mirrored under the folder the listed paths share (été 2024)
    assert {str(p.relative_to(tmp_path / "from-stdin")) for p in (tmp_path / "from-stdin").rglob("*.png")} == {
        "zoë.png", "beach day/wide shot.png"}


def test_outputs_that_would_collide_are_reported_not_merged(tmp_path, tiny_generator_path):
    root = tmp_path / "in"
    root.mkdir()
    face(0).save(root / "a.jpg")
    face(1).save(root / "a.png")
    summary = run({"input": root}, tiny_generator_path)
    assert (summary.written, summary.failed) == (1, 1)
    assert "already the output of" in summary.failures[0].reason


def json_lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def test_side_information_options(tmp_path, tiny_generator_path):
    root = tmp_path / "people"
    for name in ("alice", "7"):
        (root / name).mkdir(parents=True)
        face(len(name)).save(root / name / "x.png")
    face(9).save(root / "loose.png")
    model = ["--model", str(tiny_generator_path), "--json"]

    def codes(*args: str, out: str) -> tuple[int, dict[str, int | None]]:
        result = runner.invoke(app, ["protect", str(root), "--out", str(tmp_path / out), *model, *args])
        lines = json_lines(result.stdout)
        assert lines[-1]["type"] == "summary"
        return result.exit_code, {Path(line["input"]).relative_to(root).as_posix(): line["code"] for line in lines[:-1]}

    code, default = codes(out="default")
    assert code == 0 and set(default.values()) == {identity_code("people")}
    code, named = codes("--identity", "Zoë", out="named")
    assert set(named.values()) == {identity_code("Zoë")}
    code, by_folder = codes("--by-folder", out="folders")
    assert code == 1  # loose.png is in no identity folder
    assert by_folder == {"alice/x.png": folder_code("alice"), "7/x.png": 7, "loose.png": None}
    labels = tmp_path / "labels.csv"
    labels.write_text("path,label\npeople/alice/x.png,3\npeople/7/x.png,4\npeople/loose.png,5\n")
    code, from_csv = codes("--labels", str(labels), out="csv")
    assert code == 0 and from_csv == {"alice/x.png": 3, "7/x.png": 4, "loose.png": 5}
    result = runner.invoke(app, ["protect", str(root), "--identity", "a", "--label", "2", *model])
    assert result.exit_code == 2 and "cannot be combined" in result.output


def test_options_are_validated():
    with pytest.raises(ConfigError, match="quality"):
        ProtectConfig(input=".", quality=80)
    with pytest.raises(ConfigError, match="format"):
        ProtectConfig(input=".", image_format="gif")
    with pytest.raises(ConfigError, match="workers"):
        ProtectConfig(input=".", workers=0)


def test_lossy_format_warns_and_metadata_is_stripped_unless_kept(tmp_path, tiny_generator_path):
    root = tmp_path / "in"
    root.mkdir()
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees
    exif[0x010F] = "PhoneMaker"
    exif[0x8825] = {1: "N", 2: (52.0, 31.0, 0.0)}  # GPS
    face(0, (40, 30)).save(root / "phone.jpg", exif=exif, quality=95)
    plain = run({"input": root, "out": tmp_path / "plain"}, tiny_generator_path)
    out = Image.open(tmp_path / "plain" / "phone.png")
    assert plain.written == 1 and out.size == (30, 40)  # EXIF rotation applied to the pixels
    assert not out.getexif()
    kept = run({"input": root, "out": tmp_path / "kept", "keep_metadata": True, "image_format": "jpeg", "quality": 90},
               tiny_generator_path)
    assert any("lossy" in w for w in kept.warnings)
    kept_exif = Image.open(tmp_path / "kept" / "phone.jpg").getexif()
    assert kept_exif[0x010F] == "PhoneMaker" and kept_exif.get(0x0112, 1) == 1  # not rotated twice


def test_full_resolution_mapping_matches_torch_bilinear(monkeypatch):
    delta = np.random.default_rng(0).standard_normal((23, 31, 3)).astype(np.float32)
    expected = torch.nn.functional.interpolate(torch.from_numpy(delta).permute(2, 0, 1)[None], (97, 130),
                                               mode="bilinear", align_corners=False)[0].permute(1, 2, 0).numpy()
    whole = np.concatenate([rows for _, rows in upsample_strips(delta, 97, 130)])
    monkeypatch.setattr("segue_cli.photo.compose._STRIP_PIXELS", 500)  # force the strip path
    strips = list(upsample_strips(delta, 97, 130))
    assert len(strips) > 1
    np.testing.assert_allclose(whole, expected, atol=1e-5)
    np.testing.assert_allclose(np.concatenate([rows for _, rows in strips]), expected, atol=1e-5)
    same = np.concatenate([rows for _, rows in upsample_strips(expected, 97, 130)])  # already full size
    assert np.array_equal(same, expected)
    assert working_shape(224, 224, 112) == (112, 112) and working_shape(300, 200, 112) == (168, 112)
    assert working_shape(50, 40, 112) == (50, 40)


def test_change_bound_is_exact_in_8_bit_levels():
    rgb = np.random.default_rng(1).integers(0, 256, (20, 20, 3), dtype=np.uint8)
    for value in (0.5, -0.5, 8.49 / 255):  # far beyond epsilon, and just beyond it
        out = apply_delta(rgb, np.full((3, 10, 10), value, np.float32), 8 / 255)
        assert np.abs(out.astype(int) - rgb).max() == LIMIT
    assert np.abs(apply_delta(rgb, np.full((3, 10, 10), 4.6 / 255, np.float32), 4.5 / 255).astype(int) - rgb).max() == 4


def test_a_planner_that_breaks_the_bound_is_refused(tmp_path, tiny_generator_path):
    root = tmp_path / "in"
    root.mkdir()
    face(0).save(root / "a.png")

    def careless(rgb, working_size, epsilon):
        plan = whole_image_plan(rgb, working_size, epsilon)
        return PhotoPlan(plan.inputs, compose=lambda deltas: np.clip(rgb.astype(int) + 20, 0, 255).astype(np.uint8))

    summary = run({"input": root}, tiny_generator_path, planner=careless)
    assert summary.failed == 1 and "more than epsilon" in summary.failures[0].reason
    assert not (tmp_path / "in-protected" / "a.png").exists()


class RecordingBackend:
    def __init__(self, inner, fail: bool = False):
        self.inner, self.info, self.fail, self.batches = inner, inner.info, fail, []

    def perturb(self, images, codes):
        self.batches.append(images.shape)
        if self.fail:
            raise RuntimeError("out of memory")
        return self.inner.perturb(images, codes)


def test_same_size_photos_are_batched_and_batching_does_not_change_outputs(tmp_path, tiny_generator_path):
    root = tmp_path / "in"
    root.mkdir()
    for i in range(5):
        face(i).save(root / f"{i}.png")
    face(9, (60, 30)).save(root / "odd.png")
    inner = open_backend(str(tiny_generator_path), "torch", "cpu")
    batched = RecordingBackend(inner)
    run({"input": root, "out": tmp_path / "b4", "batch_size": 4}, tiny_generator_path, backend=batched)
    assert sorted(shape[0] for shape in batched.batches) == [1, 1, 4]  # 4 + 1 of 32x32, 1 of 32x64
    run({"input": root, "out": tmp_path / "b1", "batch_size": 1}, tiny_generator_path)
    assert tree_digest(tmp_path / "b4") == tree_digest(tmp_path / "b1")


def test_a_failing_generator_fails_its_files_only(tmp_path, tiny_generator_path):
    root = tmp_path / "in"
    root.mkdir()
    face(0).save(root / "a.png")
    failing = RecordingBackend(open_backend(str(tiny_generator_path), "torch", "cpu"), fail=True)
    summary = run({"input": root}, tiny_generator_path, backend=failing)
    assert summary.failed == 1 and "out of memory" in summary.failures[0].reason
    assert not (tmp_path / "in-protected" / "a.png").exists()


def write_bad_tree(root: Path) -> dict[str, str]:
    """Every kind of bad input from the issue; returns {name: expected words in the reason}."""
    root.mkdir(parents=True)
    good = root / "good"
    good.mkdir()
    face(0).save(good / "plain.jpg", quality=95)
    face(1).convert("L").save(good / "gray.png")
    face(2).convert("P", palette=Image.Palette.ADAPTIVE).save(good / "palette.png")
    rgba = face(3).convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize((48, 48)))
    rgba.save(good / "alpha.png")
    face(4).convert("CMYK").save(good / "cmyk.jpg")
    Image.fromarray((np.asarray(face(5).convert("L"), dtype=np.uint16) * 257)).save(good / "deep16.png")
    frames = [face(i) for i in range(3)]
    frames[0].save(good / "animated.gif", save_all=True, append_images=frames[1:], duration=100)
    face(6).save(good / "disk fails.png")  # written fine by the real writer; the test fails the disk for it
    bad = root / "bad"
    bad.mkdir()
    jpeg = (good / "plain.jpg").read_bytes()
    (bad / "half.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    png = (good / "gray.png").read_bytes()
    (bad / "cut short.png").write_bytes(png[: len(png) // 2])
    (bad / "garbled.jpg").write_bytes(jpeg[:20] + np.random.default_rng(0).bytes(400))  # a JPEG header, then noise
    (bad / "empty.png").write_bytes(b"")
    (bad / "notes.jpg").write_text("this is a text file with an image extension\n")
    face(7, (200, 200)).save(bad / "bomb.png")  # over the test's --max-pixels 10000
    os.symlink(bad / "loop.jpg", bad / "loop.jpg")  # a symlink to itself
    os.symlink(root, bad / "back to root")  # a folder loop: cut, not followed forever
    return {
        "bad/half.jpg": "truncated", "bad/cut short.png": "truncated", "bad/garbled.jpg": "not a readable image",
        "bad/empty.png": "empty file", "bad/notes.jpg": "not a readable image", "bad/bomb.png": "exceeds the limit",
        "bad/loop.jpg": "cannot open", "good/disk fails.png": "Input/output error",
    }


def test_bad_input_tree_runs_to_the_end_with_the_right_report(tmp_path, tiny_generator_path, monkeypatch):
    root = tmp_path / "tree"
    expected_failures = write_bad_tree(root)
    real_write = Path.write_bytes

    def disk_fails(self, data):  # writes half a file, then the disk fails (a full disk stops the run: test_newcomer)
        if "disk fails" in self.name:
            real_write(self, data[:12])
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_bytes", disk_fails)
    before = tree_digest(root)
    out = tmp_path / "out"
    result = runner.invoke(app, ["protect", str(root), "--out", str(out), "--model", str(tiny_generator_path),
                                 "--max-pixels", "10000", "--json", "--workers", "2"])
    assert result.exit_code == 1, result.output
    lines = json_lines(result.stdout)
    files = {Path(line["input"]).relative_to(root).as_posix(): line for line in lines[:-1]}
    summary = lines[-1]
    failed = {name: line["reason"] for name, line in files.items() if line["status"] == "failed"}
    assert set(failed) == set(expected_failures)
    for name, words in expected_failures.items():
        assert words in failed[name], (name, failed[name])
        assert name in result.stderr or str(root / name) in result.stderr
    written = {name for name, line in files.items() if line["status"] == "written"}
    assert written == {"good/plain.jpg", "good/gray.png", "good/palette.png", "good/alpha.png", "good/cmyk.jpg",
                       "good/deep16.png", "good/animated.gif"}
    assert "first frame" in " ".join(files["good/animated.gif"]["notes"])
    assert summary["failed"] == len(expected_failures) and summary["written"] == len(written)
    assert tree_digest(root) == before
    assert not (out / "good" / "disk fails.png").exists()
    assert not [p for p in out.rglob("*.tmp")], "no temp files left behind"
    alpha_in = np.asarray(Image.open(root / "good" / "alpha.png"))[:, :, 3]
    alpha_out = np.asarray(Image.open(out / "good" / "alpha.png"))
    assert alpha_out.shape[2] == 4 and np.array_equal(alpha_out[:, :, 3], alpha_in)
    for name in ("gray.png", "palette.png", "cmyk.jpg", "deep16.png", "animated.gif"):
        output = out / "good" / Path(name).with_suffix(".png")
        assert Image.open(output).mode == "RGB" and Image.open(output).size == (48, 48)


@pytest.mark.skipif(os.geteuid() == 0, reason="running as root: chmod 000 does not stop root from reading")
def test_unreadable_file_is_reported(tmp_path, tiny_generator_path):
    root = tmp_path / "in"
    root.mkdir()
    face(0).save(root / "locked.png")
    face(1).save(root / "open.png")
    (root / "locked.png").chmod(0)
    try:
        summary = run({"input": root}, tiny_generator_path)
    finally:
        (root / "locked.png").chmod(0o644)
    assert (summary.written, summary.failed) == (1, 1) and "permission denied" in summary.failures[0].reason


def test_an_attacker_who_downsizes_meets_the_perturbation(tmp_path, tiny_generator_path):
    """Computed at working scale (32 here) and mapped to a 128 x 96 photo, the perturbation is
    still what the attacker's resize back to working scale sees."""
    from segue_cli.imageio import resize_to

    root = tmp_path / "in"
    root.mkdir()
    face(3, (96, 128)).save(root / "big.png")
    summary = run({"input": root, "identity": "x"}, tiny_generator_path)
    assert summary.written == 1
    rgb = np.asarray(Image.open(root / "big.png").convert("RGB"))
    out = np.asarray(Image.open(tmp_path / "in-protected" / "big.png"))
    plan = whole_image_plan(rgb, 32, 8 / 255)
    assert plan.inputs[0].shape == (3, 43, 32)  # 128 x 96 photo, shorter side to 32
    delta = open_backend(str(tiny_generator_path), "torch", "cpu").perturb(plan.inputs[0][None], np.array([identity_code("x")]))[0]
    seen = resize_to(out, 43, 32).astype(np.float32) - resize_to(rgb, 43, 32).astype(np.float32)
    correlation = np.corrcoef(seen.ravel(), delta.transpose(1, 2, 0).ravel())[0, 1]
    assert correlation > 0.6


def test_memory_budget_runs_partial_batches_without_changing_outputs(tmp_path, tiny_generator_path, monkeypatch):
    root = tmp_path / "in"
    root.mkdir()
    for i in range(6):
        face(i).save(root / f"{i}.png")  # 48 x 48 = 2,304 pixels each
    inner = open_backend(str(tiny_generator_path), "torch", "cpu")
    run({"input": root, "out": tmp_path / "free", "batch_size": 4}, tiny_generator_path, backend=RecordingBackend(inner))
    monkeypatch.setattr(protect_pipeline, "MAX_LIVE_PIXELS", 3_000)  # room for one photo
    tight = RecordingBackend(inner)
    summary = run({"input": root, "out": tmp_path / "tight", "batch_size": 4}, tiny_generator_path, backend=tight)
    assert summary.written == 6 and max(shape[0] for shape in tight.batches) <= 2
    assert tree_digest(tmp_path / "tight") == tree_digest(tmp_path / "free")
