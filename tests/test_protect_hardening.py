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
    assert any("skipped 2 hidden file(s)" in w and "._a.png" in w for w in summary["warnings"])
    assert not (album.parent / "album-protected" / "._a.png").exists()


def test_summary_names_the_models_epsilon(album, tiny_generator_path):
    result = runner.invoke(app, ["protect", str(album), "--model", str(tiny_generator_path), "--json"])
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["epsilon"] == pytest.approx(8 / 255)
    assert "8.0/255" in result.stderr


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
