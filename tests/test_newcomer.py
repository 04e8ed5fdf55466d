"""What a newcomer hits (issue 43): each case ends in a sentence and an exit code of 0, 1
or 2, never a traceback or a silent guess."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from segue_cli.artifacts import MODELS_DIR, resolve_model_path
from segue_cli.backends import open_backend
from segue_cli.cli.app import app
from segue_cli.errors import ArtifactError, ConfigError, InputError

runner = CliRunner()


def face(seed: int, size: tuple[int, int] = (48, 48)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)).resize(size, Image.Resampling.BILINEAR)


# --- 1: --device on the core install -------------------------------------------------------------
@pytest.mark.parametrize("device", ["gpu", "GPU", "cuda:x", "tpu"])
def test_an_unknown_device_is_a_usage_error_before_torch_is_imported(device, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # the core install: `import torch` fails
    with pytest.raises(ConfigError, match="unknown device"):
        open_backend(None, "auto", device)


def test_cuda_on_the_core_install_runs_the_onnx_export_or_says_why_not(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    monkeypatch.setitem(sys.modules, "torch", None)
    try:
        backend = open_backend(None, "auto", "cuda")
    except ConfigError as exc:  # this onnxruntime has no CUDA provider: the fix, not a ModuleNotFoundError
        assert "CUDA" in exc.message and "--device cpu" in (exc.hint or "")
    else:
        assert backend.info.name == "onnx"


# --- 2: the shipped models by the names the hint gives -------------------------------------------
@pytest.mark.parametrize("suffix", [".onnx", ".safetensors"])
def test_a_shipped_model_is_found_by_its_file_name(suffix):
    name = f"segue-webface10-112{suffix}"
    assert resolve_model_path(name) == MODELS_DIR / name


def test_the_not_found_hint_lists_only_models():
    with pytest.raises(ArtifactError) as caught:
        resolve_model_path("no-such-model")
    listed = caught.value.hint or ""
    assert "segue-webface10-112.onnx" in listed
    for junk in ("candidates", "-evaluations", "-training", ".json"):
        assert junk not in listed


# --- 15: a float image has no stated range -------------------------------------------------------
def test_a_float_pil_image_is_refused_with_the_reason():
    from segue_cli import Protector

    image = Image.fromarray(np.full((40, 40), 0.5, dtype=np.float32), "F")
    with pytest.raises(InputError, match="floating-point") as caught:
        Protector().protect(image, identity="a")
    assert "convert" in (caught.value.hint or "")


# --- 7: --json errors are JSON on stdout ---------------------------------------------------------
@pytest.mark.parametrize("args", [
    ["protect", "/no/such/folder", "--json"],  # an input error (ours)
    ["protect", "x.jpg", "--label", "abc", "--json"],  # a value of the wrong type (Typer's)
    ["protect", "x.jpg", "--no-such-option", "--json"],  # an unknown option (Typer's)
    ["protect", "--strength", "huge", "--json", "x.jpg"],
    ["export", "--json", "--opset", "x"],
])
def test_a_usage_or_input_error_with_json_is_one_json_object_on_stdout(args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    face(0).save(tmp_path / "x.jpg")
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 1 and lines[0]["type"] == "error" and lines[0]["exit_code"] == 2
    assert lines[0]["error"] and "hint" in lines[0]


def test_json_help_says_json_lines():
    result = runner.invoke(app, ["protect", "--help"])
    assert "JSON Lines" in " ".join(result.output.split())


# --- 10: a default identity is said, with how to change it ---------------------------------------
def test_a_folder_run_says_which_identity_it_took_and_how_to_change_it(tmp_path, tiny_generator_path):
    (tmp_path / "photos").mkdir()
    face(0).save(tmp_path / "photos" / "a.png")
    result = runner.invoke(app, ["protect", str(tmp_path / "photos"), "--model", str(tiny_generator_path)])
    assert result.exit_code == 0, result.output
    said = " ".join(result.stderr.split())
    assert "identity 'photos'" in said and "--identity NAME" in said and "--by-folder" in said


def test_a_one_file_run_says_which_identity_it_took(tmp_path, tiny_generator_path):
    (tmp_path / "family").mkdir()
    face(0).save(tmp_path / "family" / "a.png")
    result = runner.invoke(app, ["protect", str(tmp_path / "family" / "a.png"), "--out", str(tmp_path / "o.png"),
                                 "--model", str(tiny_generator_path)])
    assert result.exit_code == 0, result.output
    said = " ".join(result.stderr.split())
    assert "identity 'family'" in said and "the default" in said and "--identity NAME" in said


# --- 12: --out out.txt, names in progress lines, an empty folder ---------------------------------
def test_out_with_a_non_image_suffix_for_one_file_is_refused_not_made_a_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    face(0).save(tmp_path / "a.png")
    result = runner.invoke(app, ["protect", "a.png", "--identity", "x", "--out", "out.txt"])
    assert result.exit_code == 2 and "out.png" in result.stderr
    piped = runner.invoke(app, ["protect", "-", "--identity", "x", "--out", "out.txt"],
                          input=(tmp_path / "a.png").read_bytes())  # an image piped in: not a PNG named out.txt
    assert piped.exit_code == 2 and "out.png" in piped.stderr
    assert not (tmp_path / "out.txt").exists()


def test_progress_lines_name_files_by_their_path_not_their_base_name(tmp_path, monkeypatch):
    from pathlib import Path

    from segue_cli.protect.job import FileResult, file_finished

    monkeypatch.chdir(tmp_path)
    event = file_finished(FileResult(tmp_path / "2024" / "a.jpg", tmp_path / "out" / "a.png", "written"))
    assert event.text == "written 2024/a.jpg"
    elsewhere = Path("/elsewhere/2023/a.jpg")
    assert file_finished(FileResult(elsewhere, "o.png", "written")).text == f"written {elsewhere}"


def test_an_empty_folder_names_no_output_folder_it_did_not_make(tmp_path, tiny_generator_path):
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["protect", str(tmp_path / "empty"), "--model", str(tiny_generator_path)])
    assert result.exit_code == 0  # a scheduled run over a folder that is sometimes empty is no error (docs/protect.md)
    said = " ".join(result.stderr.split())
    assert "no images found" in said and "no output folder made" in said
    assert not (tmp_path / "empty-protected").exists()


# --- 9: one file's re-run, like a folder's -------------------------------------------------------
def test_a_one_file_rerun_skips_the_same_output_and_refuses_another(tmp_path, tiny_generator_path):
    face(0).save(tmp_path / "a.png")
    args = ["protect", str(tmp_path / "a.png"), "--out", str(tmp_path / "o.png"), "--model", str(tiny_generator_path)]
    first = runner.invoke(app, [*args, "--identity", "x"])
    assert first.exit_code == 0, first.output
    made = (tmp_path / "o.png").read_bytes()
    again = runner.invoke(app, [*args, "--identity", "x", "--json"])
    assert again.exit_code == 0, again.output
    lines = [json.loads(line) for line in again.stdout.splitlines()]
    assert lines[0]["status"] == "skipped" and lines[1]["skipped"] == 1
    other = runner.invoke(app, [*args, "--identity", "y"])  # other settings: never replaced silently
    assert other.exit_code == 2 and "--overwrite" in other.stderr
    assert (tmp_path / "o.png").read_bytes() == made
    assert runner.invoke(app, [*args, "--identity", "y", "--overwrite"]).exit_code == 0
    assert (tmp_path / "o.png").read_bytes() != made


# --- 11: export says what it is doing --------------------------------------------------------------
def test_export_prints_each_stage_as_a_plain_line(tmp_path, monkeypatch):
    from segue_cli import export as export_package
    from segue_cli.errors import OutputError

    def stages_then_fail(config, on_stage=None):
        on_stage("checking parity with PyTorch")
        raise OutputError("stopped by the test")

    monkeypatch.setattr(export_package, "export_model", stages_then_fail)
    result = runner.invoke(app, ["export", "--out", str(tmp_path / "g.onnx")])
    assert result.exit_code == 2
    assert "export: loading torch" in result.stderr and "export: checking parity with PyTorch" in result.stderr


# --- 4: a full disk ------------------------------------------------------------------------------
def test_a_full_disk_stops_the_run_says_what_was_written_and_the_rerun_does_only_the_rest(
        tmp_path, tiny_generator_path, monkeypatch):
    import errno
    import os
    from pathlib import Path

    root = tmp_path / "in"
    root.mkdir()
    for index in range(6):
        face(index).save(root / f"{index}.png")
    real_write = Path.write_bytes
    full, freed = [False], [False]  # once the third photo fills the disk, every write fails (the record's too)

    def disk_fills_at_the_third(self, data):
        full[0] = not freed[0] and (full[0] or self.name.startswith(".2.png."))
        if full[0]:
            real_write(self, data[:12])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_bytes", disk_fills_at_the_third)
    args = ["protect", str(root), "--out", str(tmp_path / "out"), "--model", str(tiny_generator_path),
            "--identity", "x", "--workers", "1", "--batch-size", "1", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    summary = [json.loads(line) for line in result.stdout.splitlines()][-1]
    assert summary["type"] == "summary" and "disk is full" in summary["stopped"] and summary["written"] >= 2
    assert "permission" not in result.stderr and "disk is full" in result.stderr
    assert 2 + summary["written"] + summary["failed"] <= 8  # stopped: not every photo was tried
    freed[0] = True
    rerun = runner.invoke(app, args)
    again = [json.loads(line) for line in rerun.stdout.splitlines()][-1]
    assert rerun.exit_code == 0, rerun.output
    assert again["skipped"] == summary["written"] and again["written"] == 6 - summary["written"]
    assert not list((tmp_path / "out").rglob("*.tmp"))


def test_the_record_knows_each_output_as_it_is_written(tmp_path):
    from segue_cli.protect.outputs import JOURNAL_FILE, journal_append, journal_replay
    from segue_cli.storage import local

    out = local(tmp_path)
    outputs = {"a.png": {"settings": "s"}, "b.png": {"settings": "s"}}
    journal_append(out, "a.png", {"size": 3, "sha256": "abc"})
    with open(tmp_path / JOURNAL_FILE, "a") as cut:
        cut.write('{"key": "b.png", "outp')  # killed mid-line
    journal_replay(out, outputs)
    assert outputs == {"a.png": {"settings": "s", "output": {"size": 3, "sha256": "abc"}}, "b.png": {"settings": "s"}}


# --- 14: an input corrupted in place leaves a stale output, said as such -------------------------
def test_an_input_corrupted_in_place_marks_its_earlier_output_stale(tmp_path, tiny_generator_path):
    import os

    root = tmp_path / "in"
    root.mkdir()
    face(0).save(root / "a.png")
    face(1).save(root / "b.png")
    out = tmp_path / "out"
    args = ["protect", str(root), "--out", str(out), "--model", str(tiny_generator_path), "--identity", "x", "--json"]
    assert runner.invoke(app, args).exit_code == 0
    photo = root / "a.png"
    before = os.stat(photo)
    photo.write_bytes(b"\0" * before.st_size)  # corrupted in place: same size, and the same mtime below
    os.utime(photo, ns=(before.st_atime_ns, before.st_mtime_ns))
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    failed = next(line for line in lines if line.get("status") == "failed")
    assert "stale" in failed["reason"] and str(out / "a.png") in failed["reason"]
    assert any("stale" in warning for warning in lines[-1]["warnings"])
    record = json.loads((out / ".segue-protect.json").read_text())
    assert "stale" in record["outputs"]["a.png"] and "stale" not in record["outputs"]["b.png"]


def test_a_real_full_disk_on_a_small_tmpfs(tmp_path, tiny_generator_path):
    """The same on a real 1 MiB tmpfs, where the record's own save fails too (root only;
    skipped where mounting is not allowed)."""
    import subprocess

    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (not root, or no permission)")
    try:
        root = tmp_path / "in"
        root.mkdir()
        for index in range(12):  # about 120 KiB each as PNG: the disk holds 8 or so
            noise = np.random.default_rng(index).integers(0, 256, (200, 200, 3), dtype=np.uint8)
            Image.fromarray(noise).save(root / f"{index:02d}.png")
        args = ["protect", str(root), "--out", str(disk / "out"), "--model", str(tiny_generator_path),
                "--identity", "x", "--no-faces", "--json"]
        first = runner.invoke(app, args)
        summary = [json.loads(line) for line in first.stdout.splitlines()][-1]
        assert first.exit_code == 1 and summary["stopped"] and 0 < summary["written"] < 12, first.output
        subprocess.run(["mount", "-o", "remount,size=4m", str(disk)], check=True)
        again = [json.loads(line) for line in runner.invoke(app, args).stdout.splitlines()][-1]
        assert (again["skipped"], again["written"], again["stopped"]) == (summary["written"], 12 - summary["written"], None)
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


# --- 6: no sentence the model card contradicts -----------------------------------------------------
def test_no_sentence_promises_what_the_card_measures_otherwise():
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    help_text = " ".join(runner.invoke(app, ["protect", "--help"]).output.split())
    texts = {"protect --help": help_text, "README.md": (repo / "README.md").read_text(),
             "docs/protect.md": (repo / "docs" / "protect.md").read_text()}
    for where, text in texts.items():
        for untrue in ("imperceptible", "invisible", "nothing useful", "cannot see"):
            assert untrue not in text.lower(), (where, untrue)
    assert "colour cast" in help_text
    # Two figures for one default: each says which measured set it is.
    readme = " ".join(word for word in texts["README.md"].split() if word != ">")  # the status block is quoted
    assert "tint 5.5 CIEDE2000 (PSNR 32.56 dB) on the set protected with identities as labels" in readme
    assert "4.8 (32.89 dB) on the one with hashed names" in readme
    card = (repo / "docs" / "model-card.md").read_text()
    quality = card[card.index("## Image quality"):]
    assert "identities as labels" in quality[:400] and "hashed names" in quality[:400]


# --- 13: start-up: options converted without pydantic ---------------------------------------------
def test_a_run_converts_options_without_pydantic_and_builds_only_its_command():
    """Typer 0.2x builds a pydantic adapter per option at each start (about 0.15 s of CPU,
    a third of a short run): segue's plain options skip it, with the same usage errors."""
    import subprocess

    probe = ("import sys\nfrom segue_cli.cli.app import main\nsys.argv = ['segue', 'protect', 'no-such', '--label', '3',"
             " '--quality', '90', '--format', 'jpeg']\ntry:\n    main()\nexcept SystemExit as exc:\n"
             "    print(exc.code, 'pydantic' in sys.modules, 'segue_cli.cli.evaluate' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    # and only the command named is built (its module imported): the others cost their own start-up
    assert done.stdout.split() == ["2", "False", "False"], done.stderr


@pytest.mark.parametrize(("option", "value", "kind"), [("--label", "abc", "integer"), ("--batch-size", "1.5", "integer"),
                                                       ("--cloak-epsilon", "x", "number")])
def test_a_value_of_the_wrong_type_is_still_a_usage_error(option, value, kind, tmp_path):
    face(0).save(tmp_path / "a.png")
    result = runner.invoke(app, ["protect", str(tmp_path / "a.png"), option, value])
    assert result.exit_code == 2 and f"Invalid value for '{option}'" in result.stderr and kind in result.stderr


def test_typed_values_reach_the_command_as_their_type(monkeypatch, tmp_path):
    import segue_cli.protect as protect_package
    from segue_cli.protect.job import ProtectSummary

    seen = {}

    def fake_protect(config, on_event):
        seen.update(label=config.label, quality=config.quality, max_pixels=config.max_pixels,
                    out=config.destination.path)
        return ProtectSummary(out_dir=tmp_path, side_information="", model="", model_sha256="", backend="", device="",
                              image_format="jpeg")

    monkeypatch.setattr(protect_package, "protect", fake_protect)
    face(0).save(tmp_path / "a.png")
    result = runner.invoke(app, ["protect", str(tmp_path / "a.png"), "--label", "7", "--out", str(tmp_path / "o.jpg"),
                                 "--format", "jpeg", "--quality", "80", "--max-pixels", "5000"])
    assert result.exit_code == 0, result.output
    from pathlib import Path

    assert seen == {"label": 7, "quality": 80, "max_pixels": 5000, "out": Path(tmp_path / "o.jpg")}


def test_a_disk_full_before_any_photo_says_so_without_a_permission_hint(tmp_path, tiny_generator_path, monkeypatch):
    import errno
    import os

    from segue_cli.protect import folder

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "out"))

    (tmp_path / "in").mkdir()
    face(0).save(tmp_path / "in" / "a.png")
    monkeypatch.setattr(folder.Path, "mkdir", full)  # OUT cannot even be made
    result = runner.invoke(app, ["protect", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--identity", "x",
                                 "--model", str(tiny_generator_path)])
    said = " ".join(result.stderr.split())
    assert result.exit_code == 2 and "disk is full" in said and "permission" not in said
