"""Issue 19's cases: each test failed on the main it was written against."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from segue_cli.cli.app import app
from segue_cli.errors import OutputError
from test_protect import face, run, tree_digest

runner = CliRunner()


@pytest.fixture
def album(tmp_path: Path) -> Path:
    root = tmp_path / "album"
    root.mkdir()
    face(0).save(root / "a.png")
    face(1).save(root / "b.png")
    return root


def test_out_may_not_hold_the_input_for_a_file_or_stdin_input(album, tiny_generator_path, tmp_path):
    before = tree_digest(album)
    with pytest.raises(OutputError, match="holds the input photo"):
        run({"input": album / "a.png", "out": album, "overwrite": True}, tiny_generator_path)
    with pytest.raises(OutputError, match="holds the input photo"):
        run({"input": album / "a.png", "out": tmp_path}, tiny_generator_path)  # a folder above it
    result = runner.invoke(app, ["protect", "-", "--out", str(album), "--overwrite", "--model", str(tiny_generator_path)],
                           input=f"{album / 'a.png'}\n{album / 'b.png'}\n")
    assert result.exit_code == 2 and "holds the input photo" in result.output
    assert tree_digest(album) == before  # nothing overwritten, no marker left
    with pytest.raises(OutputError, match="holds the input photo"):
        run({"input": album, "out": tmp_path}, tiny_generator_path)  # a folder INPUT inside OUT


def test_hidden_non_images_are_skipped_with_a_note_not_failed(album, tiny_generator_path):
    (album / "._a.png").write_bytes(b"\x00\x05\x16\x07" + b"\x00" * 60)  # AppleDouble header
    (album / ".thumb.jpg").write_bytes(b"not an image")
    face(2).save(album / ".kept.png")  # hidden, but a real image: protected
    result = runner.invoke(app, ["protect", str(album), "--model", str(tiny_generator_path), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert (summary["written"], summary["failed"]) == (3, 0)
    assert any("skipped 2 file(s), each hidden file that is not an image" in w and "._a.png" in w
               for w in summary["warnings"])
    assert {Path(entry["path"]).name for entry in summary["not_read"]} == {"._a.png", ".thumb.jpg"}
    assert not (album.parent / "album-protected" / "._a.png").exists()


def test_summary_names_the_models_epsilon(album, tiny_generator_path):
    result = runner.invoke(app, ["protect", str(album), "--model", str(tiny_generator_path), "--json"])
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["epsilon"] == pytest.approx(8 / 255)
    result = runner.invoke(app, ["protect", str(album), "--model", str(tiny_generator_path), "--overwrite"])
    assert "epsilon 8.0/255" in result.stderr


def test_quiet_prints_errors_only_and_json_keeps_stderr_for_warnings_and_errors(album, tiny_generator_path):
    model = ["--model", str(tiny_generator_path)]
    result = runner.invoke(app, ["protect", str(album), "--quiet", *model])
    assert result.exit_code == 0 and result.stderr == "" and result.stdout == ""
    (album / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    result = runner.invoke(app, ["protect", str(album), "-q", *model])
    assert result.exit_code == 1
    assert result.stderr.startswith("failed:") and "broken.png" in result.stderr
    assert "written" not in result.stderr and "model:" not in result.stderr
    result = runner.invoke(app, ["protect", str(album), "--json", "--format", "jpeg", *model])
    lines = result.stderr.splitlines()
    assert lines and all(line.startswith(("warning:", "failed:", "  ")) for line in lines), result.stderr
    assert "side information" not in result.stderr and "protecting" not in result.stderr


def test_a_run_with_nothing_to_do_says_so_in_one_line(album, tiny_generator_path):
    runner.invoke(app, ["protect", str(album), "--model", str(tiny_generator_path)])
    result = runner.invoke(app, ["protect", str(album), "--model", str(tiny_generator_path)])
    assert result.exit_code == 0
    assert "nothing to do: all 2 outputs are already in" in result.stderr
    assert len(result.stderr.splitlines()) <= 6 and "│" not in result.stderr  # no 14-line table


def test_stdin_keeps_names_with_leading_and_trailing_spaces(tmp_path, tiny_generator_path, monkeypatch):
    folder = tmp_path / "in"
    folder.mkdir()
    names = [" lead.png", "tail.png ", "plain.png"]
    for seed, name in enumerate(names):
        face(seed).save(folder / name, format="PNG")
    monkeypatch.chdir(folder)  # relative names: the leading space starts the listed path
    for separator, out in (("\0", tmp_path / "nul"), ("\r\n", tmp_path / "crlf"), ("\n", tmp_path / "lf")):
        listed = separator.join(names) + separator
        result = runner.invoke(app, ["protect", "-", "--out", str(out), "--model", str(tiny_generator_path)], input=listed)
        assert result.exit_code == 0, result.output
        assert sorted(p.name for p in out.glob("*.png")) == sorted([" lead.png", "tail.png", "plain.png"])


def test_progress_in_a_log_is_plain_lines_not_a_cut_off_bar(album, tiny_generator_path):
    # CliRunner's stderr is not a terminal, like nohup's or cron's.
    result = runner.invoke(app, ["protect", str(album), "--model", str(tiny_generator_path)])
    assert result.exit_code == 0, result.output
    assert "protecting: 2/2" in result.stderr
    assert "…" not in result.stderr and "━" not in result.stderr


def test_log_progress_prints_about_ten_lines_a_task():
    import io

    from rich.console import Console

    from segue_cli.cli.render import LogProgress

    buffer = io.StringIO()
    log = LogProgress(Console(file=buffer, width=200))
    task = log.add_task("epoch 1", total=95, info="")
    for step in range(95):
        log.update(task, advance=1, info=f"loss {step}")
    lines = buffer.getvalue().splitlines()
    assert 9 <= len(lines) <= 11 and lines[-1].startswith("epoch 1: 95/95 loss 94")


def _checkpoint_with_twin(onnx_export, folder: Path) -> tuple[Path, Path]:
    import shutil

    folder.mkdir()
    checkpoint, twin = folder / "g.safetensors", folder / "g.onnx"
    shutil.copyfile(onnx_export.source, checkpoint)
    shutil.copyfile(onnx_export.out, twin)
    return checkpoint, twin


def test_a_twin_that_only_claims_the_checkpoints_sha256_is_not_run(onnx_export, tmp_path):
    import onnx
    from onnx import numpy_helper

    from segue_cli.backends import open_backend

    checkpoint, twin = _checkpoint_with_twin(onnx_export, tmp_path / "m")
    assert open_backend(checkpoint, device="cpu").info.name == "onnx"  # the genuine twin is used
    forged = onnx.load(str(twin))
    for initializer in forged.graph.initializer:  # delta 0: unprotected outputs
        initializer.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(initializer) * 0, initializer.name))
    onnx.save(forged, str(twin))
    backend = open_backend(checkpoint, device="cpu")
    assert backend.info.name == "torch"
    from segue_cli.storage import file_sha256

    assert backend.info.file_sha256 == file_sha256(checkpoint)  # the file actually run


def test_a_corrupt_twin_falls_back_to_the_checkpoint(onnx_export, tmp_path, album):
    checkpoint, twin = _checkpoint_with_twin(onnx_export, tmp_path / "m")
    twin.write_bytes(b"\x08\x07garbage" * 10)
    result = runner.invoke(app, ["protect", str(album), "--model", str(checkpoint), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.splitlines()[-1])["backend"] == "torch"


def test_shipped_model_files_are_checked_against_their_card(tmp_path, monkeypatch):
    from segue_cli import backends as runtime
    from segue_cli.artifacts import MODELS_DIR
    from segue_cli.storage import file_sha256

    shipped = MODELS_DIR / "segue-webface10-112.onnx"
    assert runtime.shipped_sha256(shipped) == file_sha256(shipped)  # the card pins what ships
    fake_models = tmp_path / "models"
    fake_models.mkdir()
    (fake_models / "x.onnx").write_bytes(b"tampered")
    (fake_models / "x.json").write_text(json.dumps({"file": "x.safetensors", "onnx": {"file_sha256": "0" * 64}}))
    monkeypatch.setattr(runtime, "MODELS_DIR", fake_models)
    from segue_cli.errors import ArtifactError

    with pytest.raises(ArtifactError, match="does not match the sha256 its model card pins"):
        runtime.verify_shipped(fake_models / "x.onnx")


@pytest.mark.parametrize("source", ["webface-gray", "astronaut-L", "astronaut-LA"])
def test_black_and_white_photos_stay_black_and_white_with_a_colour_model(source, tmp_path, tiny_generator_path,
                                                                         astronaut, webface10):
    import numpy as np
    from PIL import Image

    folder = tmp_path / "bw"
    folder.mkdir()
    if source == "webface-gray":  # a real crop turned gray, saved as RGB with R = G = B
        crop = Image.open(sorted((webface10 / "train" / "0").glob("*.jpg"))[0]).convert("L").convert("RGB")
        crop.save(folder / "photo.png")
    else:  # a real photo as mode L or LA
        gray = Image.fromarray(astronaut).convert(source.split("-")[1])
        gray.save(folder / "photo.png")
    result = runner.invoke(app, ["protect", str(folder), "--out", str(tmp_path / "out"), "--no-faces",
                                 "--model", str(tiny_generator_path), "--json"])
    assert result.exit_code == 0, result.output
    out = np.asarray(Image.open(tmp_path / "out" / "photo.png").convert("RGB")).astype(int)
    original = np.asarray(Image.open(folder / "photo.png").convert("RGB")).astype(int)
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()
    assert 0 < np.abs(out - original).max() <= 8  # protected, within the bound
    record = json.loads(result.stdout.splitlines()[0])
    assert any("black-and-white" in note for note in record["notes"])


def test_palette_and_16_bit_conversions_are_noted(tmp_path):
    import numpy as np

    from segue_cli.imageio import load_image

    face(0).convert("P").save(tmp_path / "palette.png")
    assert any("palette" in n for n in load_image(tmp_path / "palette.png").notes)
    import struct
    import zlib

    deep = np.asarray(face(1)).astype(np.uint16) * 257  # a 16-bit RGB PNG, written by hand (Pillow cannot)

    height, width = deep.shape[:2]
    raw = b"".join(b"\x00" + deep[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    (tmp_path / "deep.png").write_bytes(png)
    loaded = load_image(tmp_path / "deep.png")
    assert any("16-bit RGB" in n for n in loaded.notes)
    assert np.abs(loaded.rgb.astype(int) - np.asarray(face(1)).astype(int)).max() <= 1


def test_heic_and_avif_photos_are_read_and_unreadable_formats_reported(tmp_path, tiny_generator_path):
    import numpy as np
    from PIL import Image

    folder = tmp_path / "iphone"
    folder.mkdir()
    # Written without registering Pillow's opener, so the test shows that segue registers it.
    pytest.importorskip("pillow_heif").from_pillow(face(0, (64, 48))).save(folder / "IMG_0001.HEIC", quality=95)
    face(1, (64, 48)).save(folder / "IMG_0002.avif")
    (folder / "IMG_0003.DNG").write_bytes(b"II*\x00 raw")
    result = runner.invoke(app, ["protect", str(folder), "--model", str(tiny_generator_path), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.splitlines()[-1])
    assert summary["written"] == 2
    out = tmp_path / "iphone-protected"
    for name, source in (("IMG_0001.png", "IMG_0001.HEIC"), ("IMG_0002.png", "IMG_0002.avif")):
        protected = np.asarray(Image.open(out / name).convert("RGB")).astype(int)
        original = np.asarray(Image.open(folder / source).convert("RGB")).astype(int)
        assert protected.shape == (48, 64, 3) and np.abs(protected - original).max() <= 8
    assert any("photo format segue cannot read" in w and "IMG_0003.DNG" in w and "convert it" in w
               for w in summary["warnings"])
    assert [(Path(e["path"]).name, e["fix"]) for e in summary["not_read"]] == [
        ("IMG_0003.DNG", "convert it to JPEG, PNG or HEIC first")]


def test_a_second_run_into_a_held_output_folder_is_refused_or_waits(album, tiny_generator_path, tmp_path):
    import os
    import threading
    import time

    from segue_cli.protect.folder import locked_out_dir

    out = tmp_path / "out"
    with locked_out_dir(out):
        result = runner.invoke(app, ["protect", str(album), "--out", str(out), "--model", str(tiny_generator_path)])
        assert result.exit_code == 2 and f"another segue protect (pid {os.getpid()})" in result.output
        assert not list(out.glob("*.png"))
    held = threading.Event()

    def hold_for_a_second() -> None:
        with locked_out_dir(out):
            held.set()
            time.sleep(1.0)

    holder = threading.Thread(target=hold_for_a_second)
    holder.start()
    held.wait()
    started = time.perf_counter()
    result = runner.invoke(app, ["protect", str(album), "--out", str(out), "--model", str(tiny_generator_path), "--wait"])
    holder.join()
    assert result.exit_code == 0, result.output
    assert time.perf_counter() - started >= 0.5 and len(list(out.glob("*.png"))) == 2
    assert not (out / ".segue-lock").exists()


def test_outputs_are_redone_when_their_input_changed_or_they_are_empty(album, tiny_generator_path, tmp_path):
    import numpy as np
    from PIL import Image

    out = tmp_path / "out"
    args = ["protect", str(album), "--out", str(out), "--model", str(tiny_generator_path), "--json"]
    assert runner.invoke(app, args).exit_code == 0
    face(7).save(album / "a.png")  # the same name, another photo
    (out / "b.png").write_bytes(b"")  # a 0-byte output (a full disk, a killed copy)
    result = runner.invoke(app, args)
    summary = json.loads(result.stdout.splitlines()[-1])
    assert (summary["written"], summary["skipped"]) == (2, 0), result.output
    new = np.asarray(Image.open(album / "a.png").convert("RGB")).astype(int)
    assert np.abs(np.asarray(Image.open(out / "a.png")).astype(int) - new).max() <= 8
    import os

    os.utime(album / "a.png")  # touched but unchanged: still done
    summary = json.loads(runner.invoke(app, args).stdout.splitlines()[-1])
    assert (summary["written"], summary["skipped"]) == (0, 2)


def test_an_output_path_that_is_a_folder_fails_and_a_corrupt_record_stops_the_run(album, tiny_generator_path, tmp_path):
    out = tmp_path / "out"
    (out / "a.png").mkdir(parents=True)
    result = runner.invoke(app, ["protect", str(album), "--out", str(out), "--model", str(tiny_generator_path)])
    assert result.exit_code == 1 and "is a folder" in result.output
    (out / ".segue-protect.json").write_text("{ not json")
    result = runner.invoke(app, ["protect", str(album), "--out", str(out), "--model", str(tiny_generator_path)])
    assert result.exit_code == 2 and "settings record" in result.output and "corrupt" in result.output


def test_a_rerun_removes_the_temp_files_a_killed_run_left(album, tiny_generator_path, tmp_path):
    out = tmp_path / "out"
    assert runner.invoke(app, ["protect", str(album), "--out", str(out), "--model", str(tiny_generator_path)]).exit_code == 0
    (out / "a.png").unlink()
    left = [out / ".a.png.k2j4h1x9.tmp", out / "..segue-protect.json.a8d7f6g5.tmp"]  # atomic_write: ".NAME.XXXXXXXX.tmp"
    for path in left:
        path.write_bytes(b"half a file")
    (out / ".unrelated.tmp").write_bytes(b"not ours")
    (out / ".segue-output").write_bytes(b"")  # what a full disk used to leave
    result = runner.invoke(app, ["protect", str(album), "--out", str(out), "--model", str(tiny_generator_path)])
    assert result.exit_code == 0 and "removed 2 temp file(s)" in result.stderr
    assert not any(path.exists() for path in left) and (out / ".unrelated.tmp").exists()
    assert (out / ".segue-output").stat().st_size > 0


@pytest.mark.slow
def test_sigterm_stops_like_ctrl_c_and_leaves_no_partial_file(tmp_path, tiny_generator_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    folder = tmp_path / "many"
    folder.mkdir()
    for seed in range(400):
        face(seed, (96, 96)).save(folder / f"{seed:03d}.png")
    out = tmp_path / "out"
    command = [sys.executable, "-m", "segue_cli", "protect", str(folder), "--out", str(out), "--model",
               str(tiny_generator_path), "--workers", "1", "--batch-size", "2"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1])
    deadline = time.time() + 120
    while time.time() < deadline and len(list(out.glob("*.png"))) < 3:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    written = len(list(out.glob("*.png")))
    assert process.returncode == 143, stderr
    assert "interrupted:" in stderr and "re-run to finish" in stderr and 0 < written < 400
    assert not list(out.glob(".*.tmp")) and not (out / ".segue-lock").exists()
    assert os.path.getsize(out / ".segue-output") > 0


def test_thin_photos_reach_the_generator_squashed_and_map_back_in_strips():
    import cv2
    import numpy as np

    from segue_cli.photo.compose import MAX_WORKING_ASPECT, upsample_strips, working_shape

    assert working_shape(16, 6_000_000, 112) == (16, MAX_WORKING_ASPECT * 112)
    assert working_shape(6_000_000, 16, 112) == (MAX_WORKING_ASPECT * 112, 16)
    assert working_shape(3000, 4000, 112) == (112, 149)  # ordinary photos as before
    delta = np.random.default_rng(0).random((4, 20, 3), dtype=np.float32)
    height, width = 8, 300_000  # one full-width copy of delta's rows is over the strip budget
    strips = list(upsample_strips(delta, height, width))
    assert len(strips) > 1 and max(s.shape[0] * s.shape[1] for _, s in strips) <= 2 * (1 << 20)
    stitched = np.concatenate([s for _, s in strips])
    np.testing.assert_allclose(stitched, cv2.resize(delta, (width, height), interpolation=cv2.INTER_LINEAR), atol=1e-4)


def test_example_protects_the_shipped_portrait_into_the_current_folder(tmp_path, monkeypatch):
    import numpy as np
    from PIL import Image

    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["protect", "--example"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "segue-example-protected"
    before = np.asarray(Image.open(out / "example-astronaut-original.png").convert("RGB")).astype(int)
    after = np.asarray(Image.open(out / "example-astronaut.png").convert("RGB")).astype(int)
    assert before.shape == after.shape == (320, 320, 3) and 0 < np.abs(after - before).max() <= 8
    assert f"before {out / 'example-astronaut-original.png'}" in result.stderr
    assert runner.invoke(app, ["protect", "--example"]).exit_code == 0  # a second try is fine
    result = runner.invoke(app, ["protect", "--example", "photos"])
    assert result.exit_code == 2 and "takes no INPUT" in result.output


def test_protect_without_input_says_what_to_give():
    result = runner.invoke(app, ["protect"])
    assert result.exit_code == 2 and "no INPUT given" in result.output and "--example" in result.output


def test_tiny_images_fail_by_name_and_an_empty_folder_warns(tmp_path, tiny_generator_path):
    folder = tmp_path / "small"
    folder.mkdir()
    face(0, (12, 40)).save(folder / "sliver.png")
    face(1).save(folder / "fine.png")
    result = runner.invoke(app, ["protect", str(folder), "--model", str(tiny_generator_path)])
    assert result.exit_code == 1 and "sliver.png" in result.stderr and "too small" in result.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(app, ["protect", str(empty), "--model", str(tiny_generator_path), "--json"])
    summary = json.loads(result.stdout.splitlines()[-1])
    assert result.exit_code == 0 and any("no images found" in w and ".heic" in w for w in summary["warnings"])


def test_protect_with_the_shipped_onnx_model_never_imports_torch(album, tmp_path):
    import subprocess
    import sys

    probe = ("import sys\nfrom segue_cli.cli.app import main\n"
             f"sys.argv = ['segue', 'protect', {str(album)!r}, '--out', {str(tmp_path / 'out')!r}, '--quiet', '--no-faces']\n"
             "try:\n    main()\nexcept SystemExit as exit:\n    assert not exit.code, exit.code\n"
             "print(' '.join(m for m in ('torch', 'torchvision') if m in sys.modules) or 'none')")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.stdout.split()[-1] == "none", done.stdout + done.stderr
    assert len(list((tmp_path / "out").glob("*.png"))) == 2


def test_a_missing_input_is_a_usage_error_naming_it(tmp_path):
    result = runner.invoke(app, ["protect", str(tmp_path / "nope")])
    assert result.exit_code == 2 and f"input not found: {tmp_path / 'nope'}" in result.output
    assert not (tmp_path / "nope-protected").exists()
