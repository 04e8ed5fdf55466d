"""The CLI shell: help for every command, and startup that loads no heavy library."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from segue_cli import __version__
from segue_cli.cli.app import app

runner = CliRunner()
COMMANDS = ("train", "cluster", "protect", "evaluate", "export", "serve")


def test_root_help_lists_every_command():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in COMMANDS:
        assert command in result.output


@pytest.mark.parametrize(("command", "option"), [
    ("train", "--code-assignment"), ("cluster", "--k"), ("protect", "--max-pixels"),
    ("evaluate", "swin_t"), ("export", "--opset"), ("serve", "--max-upload-mb"),
])
def test_command_help_explains_its_options(command, option):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert option in result.output


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"segue {__version__}"


def test_cli_starts_without_heavy_libraries():
    # `segue --help` in a shell script should not pay seconds and ~850 MiB for torch.
    probe = (
        "import sys, segue_cli.cli.app; "
        "print(' '.join(m for m in ('torch', 'torchvision', 'cv2', 'onnxruntime', 'onnx', 'sklearn') if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert loaded == []


def test_short_help_flag_works_for_the_root_and_every_command():
    assert runner.invoke(app, ["-h"]).exit_code == 0
    for command in COMMANDS:
        result = runner.invoke(app, [command, "-h"])
        assert result.exit_code == 0, (command, result.output)
        assert "--help" in result.output


@pytest.mark.parametrize(("command", "usage"), [
    ("protect", "segue protect [OPTIONS] [INPUT]"), ("cluster", "segue cluster [OPTIONS] DIR"),
    ("train", "segue train [OPTIONS] DATA"), ("export", "segue export [OPTIONS] [MODEL]"),
])
def test_usage_lines_name_arguments_plainly(command, usage):
    first_line = runner.invoke(app, [command, "--help"]).output.splitlines()[0]
    assert first_line == f"Usage: {usage}"


def test_protect_is_listed_first():
    output = runner.invoke(app, ["--help"]).output
    listed = [line.split()[0] for line in output.split("Commands:")[1].splitlines() if line.strip()]
    assert listed[0] == "protect" and set(listed) == set(COMMANDS)


def test_gitignore_keeps_personal_photo_folders_out_of_git():
    from pathlib import Path

    ignored = (Path(__file__).resolve().parents[1] / ".gitignore").read_text().splitlines()
    assert "photos/" in ignored and "*-protected/" in ignored


@pytest.mark.parametrize(("command", "module"), [("train", "torch"), ("evaluate", "matplotlib"), ("export", "onnxscript"),
                                                 ("cluster", "dlib")])
def test_a_command_whose_extra_is_missing_names_the_pip_line(command, module, monkeypatch, tmp_path):
    import importlib.util

    from segue_cli import extras

    real = importlib.util.find_spec
    monkeypatch.setattr(extras.importlib.util, "find_spec", lambda name, *a: None if name == module else real(name, *a))
    args = {"train": ["train", str(tmp_path)], "evaluate": ["evaluate", "--train-protected", str(tmp_path),
            "--train-clean", str(tmp_path), "--test", str(tmp_path)], "export": ["export", "--out", str(tmp_path / "x.onnx")],
            "cluster": ["cluster", str(tmp_path), "--out", str(tmp_path / "l.csv")]}[command]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert module in result.output and "pip install 'segue[train]'" in result.output


def test_one_renderer_draws_every_jobs_progress_events_in_a_log():
    """Bars, the text beside them and permanent lines come from the events alone, with
    plain lines where stderr is not a terminal (cron, nohup)."""
    import io

    from rich.console import Console

    from segue_cli.cli.render import LogProgress, ProgressRenderer
    from segue_cli.progress import ProgressEvent, say, start_task, step

    stream = io.StringIO()
    draw = ProgressRenderer(LogProgress(Console(file=stream, width=200)))
    draw(start_task("decode_start", "decode", "decoding", 20))
    for _ in range(20):
        draw(step("decoded", "decode", "a.jpg"))
    draw(ProgressEvent("epoch_end", {"epoch": 1}, task="decode", text="done", line="epoch 1: ce 0.5"))
    draw(say("skipped_image", "skipped: b.jpg", warning=True))
    draw(ProgressEvent("clustering", {"images": 3}))  # a record only: nothing drawn
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("decoding: 2/20 a.jpg") and lines[9].startswith("decoding: 20/20")
    assert lines[10:] == ["epoch 1: ce 0.5", "skipped: b.jpg"]
