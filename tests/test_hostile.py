"""Hostile cases (issue 34), by family: each family names a mechanism and several of its
members. Every case holds the same three promises besides its own expectation: the inputs
are byte-identical afterwards, no temp file is left anywhere under the test folder, and no
traceback is printed. The table in docs/protect.md ("Hostile cases, by family") is made from
CASES; after adding cases, regenerate it:

    SEGUE_UPDATE_DOCS=1 .venv/bin/python -m pytest tests/test_hostile.py -k docs
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from segue_cli.cli.app import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "protect.md"
TABLE_START, TABLE_END = "<!-- hostile-cases:start -->", "<!-- hostile-cases:end -->"


@dataclass(frozen=True)
class Case:
    family: str
    name: str  # what is tried
    outcome: str  # what must happen
    run: Callable[[Path], None] = field(compare=False, repr=False)


def photo(path: Path, seed: int = 0, size: tuple[int, int] = (64, 64)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    small = np.random.default_rng(seed).integers(0, 256, (4, 4, 3), dtype=np.uint8)
    Image.fromarray(small).resize(size, Image.Resampling.BILINEAR).save(path)
    return path


MADE_INPUTS: dict[Path, dict[str, str]] = {}  # each case's input folders, with their digests when made


def album(root: Path, count: int = 2) -> Path:
    for index in range(count):
        photo(root / "album" / f"p{index}.png", index)
    MADE_INPUTS[root / "album"] = digest(root / "album")
    return root / "album"


def digest(root: Path) -> dict[str, str]:
    found = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink() and stat.S_ISREG(path.stat().st_mode):
            found[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def cli(*args: str, stdin: bytes | str | None = None, expect: int, says: str | None = None) -> str:
    result = runner.invoke(app, list(args), input=stdin)
    output = result.output
    assert result.exit_code == expect, f"exit {result.exit_code} (expected {expect}): {output}"
    assert "Traceback" not in output, output
    if says is not None:
        assert says.lower() in " ".join(output.split()).lower(), f"{says!r} not in: {output}"
    return output


def summary(output: str) -> dict:
    """The run's summary record of --json (its last JSON line whose type is summary)."""
    records = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return [record for record in records if record.get("type") == "summary"][-1]


# --- 1. trusted model files --------------------------------------------------------------

def _checkpoint_and_twin(tmp: Path):
    import onnx

    from segue_cli.artifacts import save_generator
    from segue_cli.export import ExportConfig, export_model
    from test_protect import face  # noqa: F401  (conftest's helpers live beside)
    from conftest import saturating_generator

    folder = tmp / "m"
    folder.mkdir()
    checkpoint = folder / "gen.safetensors"
    save_generator(checkpoint, saturating_generator(0), epsilon=8 / 255, image_size=32, training={"note": "test"})
    export_model(ExportConfig(out=folder / "gen.onnx", model=checkpoint))
    return checkpoint, folder / "gen.onnx", onnx


def _zeroing_twin(tmp: Path) -> None:
    """The checkpoint's exact twin plus one node that multiplies delta by 0."""
    from onnx import helper, numpy_helper

    checkpoint, twin, onnx = _checkpoint_and_twin(tmp)
    model = onnx.load(str(twin))
    output = model.graph.output[0].name
    inner = output + "_unzeroed"
    for node in model.graph.node:
        node.output[:] = [inner if name == output else name for name in node.output]
    model.graph.initializer.append(numpy_helper.from_array(np.zeros((), np.float32), "segue_zero"))
    model.graph.node.append(helper.make_node("Mul", [inner, "segue_zero"], [output]))
    onnx.save(model, str(twin))
    _protect_with(tmp, checkpoint, expect_torch=True)


def _weights_zeroed_twin(tmp: Path) -> None:
    from onnx import numpy_helper

    checkpoint, twin, onnx = _checkpoint_and_twin(tmp)
    model = onnx.load(str(twin))
    for initializer in model.graph.initializer:
        initializer.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(initializer) * 0, initializer.name))
    onnx.save(model, str(twin))
    _protect_with(tmp, checkpoint, expect_torch=True)


def _garbage_twin(tmp: Path) -> None:
    checkpoint, twin, _ = _checkpoint_and_twin(tmp)
    twin.write_bytes(b"\x08\x07not onnx" * 40)
    _protect_with(tmp, checkpoint, expect_torch=True)


def _other_models_twin(tmp: Path) -> None:
    from segue_cli.artifacts import save_generator
    from segue_cli.export import ExportConfig, export_model
    from conftest import saturating_generator

    checkpoint, twin, _ = _checkpoint_and_twin(tmp)
    other = tmp / "other.safetensors"
    save_generator(other, saturating_generator(7), epsilon=8 / 255, image_size=32, training={"note": "test"})
    export_model(ExportConfig(out=tmp / "other.onnx", model=other))
    shutil.copyfile(tmp / "other.onnx", twin)
    _protect_with(tmp, checkpoint, expect_torch=True)


def _genuine_twin(tmp: Path) -> None:
    checkpoint, _, _ = _checkpoint_and_twin(tmp)
    _protect_with(tmp, checkpoint, expect_torch=False)


def _protect_with(tmp: Path, checkpoint: Path, expect_torch: bool) -> None:
    source = album(tmp)
    output = cli("protect", str(source), "--model", str(checkpoint), "--out", str(tmp / "o"), "--json", expect=0)
    record = summary(output)
    assert record["backend"] == ("torch" if expect_torch else "onnx")
    if expect_torch:
        assert any("ran the checkpoint instead" in w or "does not reproduce" in w for w in record["warnings"]), record
    protected = np.asarray(Image.open(tmp / "o" / "p0.png").convert("RGB")).astype(int)
    assert np.abs(protected - np.asarray(Image.open(source / "p0.png").convert("RGB")).astype(int)).max() > 0


# --- 2. what counts as done ----------------------------------------------------------------

def _first_run(tmp: Path) -> tuple[Path, Path]:
    source = album(tmp)
    cli("protect", str(source), "--out", str(tmp / "o"), "--identity", "x", "--quiet", expect=0)
    return source, tmp / "o"


def _rerun(source: Path, out: Path, expect: int = 0) -> dict:
    return summary(cli("protect", str(source), "--out", str(out), "--identity", "x", "--json", expect=expect))


def _junk_at_output(tmp: Path) -> None:
    source = album(tmp)
    (tmp / "o").mkdir()
    (tmp / "o" / "p0.png").write_bytes(b"junk, not written by segue")
    record = _rerun(source, tmp / "o", expect=1)
    assert record["written"] == 1 and record["failed"] == 1 and record["skipped"] == 0
    assert (tmp / "o" / "p0.png").read_bytes() == b"junk, not written by segue"  # never overwritten


def _truncated_output(tmp: Path) -> None:
    source, out = _first_run(tmp)
    whole = (out / "p0.png").read_bytes()
    (out / "p0.png").write_bytes(whole[: len(whole) // 2])
    record = _rerun(source, out)
    assert (record["written"], record["skipped"]) == (1, 1) and (out / "p0.png").read_bytes() == whole


def _replaced_output(tmp: Path) -> None:
    source, out = _first_run(tmp)
    whole = (out / "p0.png").read_bytes()
    photo(out / "p0.png", seed=99)  # a valid PNG, but not the one segue wrote
    record = _rerun(source, out)
    assert record["written"] == 1 and (out / "p0.png").read_bytes() == whole


def _bmp_album(tmp: Path) -> tuple[Path, Path]:
    """Photos whose size in bytes is fixed by their pixels' count (BMP), so an edit keeps it."""
    source = tmp / "bmp"
    for index in range(2):
        Image.open(photo(tmp / "made" / f"p{index}.png", index)).save(photo(source / f"p{index}.bmp", index))
    cli("protect", str(source), "--out", str(tmp / "o"), "--identity", "x", "--quiet", expect=0)
    return source, tmp / "o"


def _input_edited_times_restored(tmp: Path) -> None:
    source, out = _bmp_album(tmp)
    before = os.stat(source / "p0.bmp")
    photo(source / "p0.bmp", seed=5)  # the same size in bytes, other pixels
    os.utime(source / "p0.bmp", ns=(before.st_atime_ns, before.st_mtime_ns))  # as rsync -t, cp -p do
    assert os.stat(source / "p0.bmp").st_size == before.st_size
    record = _rerun(source, out)
    assert record["written"] == 1 and record["skipped"] == 1


def _input_copied_with_cp_p(tmp: Path) -> None:
    source, out = _bmp_album(tmp)
    other = photo(tmp / "elsewhere" / "q.bmp", seed=6)
    os.utime(other, ns=(os.stat(source / "p1.bmp").st_atime_ns, os.stat(source / "p1.bmp").st_mtime_ns))
    shutil.copy2(other, source / "p1.bmp")  # cp -p: the same size, content and mtime from elsewhere
    record = _rerun(source, out)
    assert record["written"] == 1


def _input_touched_unchanged(tmp: Path) -> None:
    source, out = _first_run(tmp)
    os.utime(source / "p0.png", ns=(1, 1))  # a new mtime, the same bytes: not redone
    record = _rerun(source, out)
    assert (record["written"], record["skipped"]) == (0, 2)


def _killed_before_hash(tmp: Path) -> None:
    source, out = _first_run(tmp)
    path = out / ".segue-protect.json"
    record = json.loads(path.read_text())
    for entry in record["outputs"].values():
        entry.pop("output", None)  # as a run killed after writing, before noting the output
    path.write_text(json.dumps(record))
    assert _rerun(source, out)["written"] == 2


def _unchanged_rerun(tmp: Path) -> None:
    source, out = _first_run(tmp)
    assert _rerun(source, out)["skipped"] == 2


# --- 3. output trees -------------------------------------------------------------------------

def _nested_inside_earlier(tmp: Path) -> None:
    source, out = _first_run(tmp)
    cli("protect", str(source), "--out", str(out / "sub"), "--identity", "y", expect=2,
        says="the output folder of another segue protect run")


def _nested_holding_earlier(tmp: Path) -> None:
    source = album(tmp)
    cli("protect", str(source), "--out", str(tmp / "o" / "sub"), "--identity", "y", "--quiet", expect=0)
    cli("protect", str(source), "--out", str(tmp / "o"), "--identity", "x", expect=2, says="holds")


def _symlink_out_of_out(tmp: Path) -> None:
    source = tmp / "in"
    (source / "sub").mkdir(parents=True)
    Image.open(photo(tmp / "a.png")).save(source / "sub" / "a.jpg")  # a JPEG: its output a.png would be new in in/sub
    photo(source / "b.png", 1)
    (tmp / "o").mkdir()
    (tmp / "o" / "sub").symlink_to(source / "sub")  # o/sub -> in/sub
    output = cli("protect", str(source), "--out", str(tmp / "o"), "--identity", "x", "--json", expect=1,
                 says="leads out of --out through a symlink")
    assert summary(output)["written"] == 1 and sorted(p.name for p in (source / "sub").iterdir()) == ["a.jpg"]


def _output_is_a_symlink(tmp: Path) -> None:
    source = album(tmp)
    (tmp / "o").mkdir()
    (tmp / "o" / "p0.png").symlink_to(tmp / "elsewhere.png")
    cli("protect", str(source), "--out", str(tmp / "o"), "--identity", "x", "--overwrite", expect=1,
        says="is a symlink")
    assert not (tmp / "elsewhere.png").exists()


def _out_links_into_input(tmp: Path) -> None:
    source = album(tmp)
    (tmp / "o").symlink_to(source)
    cli("protect", str(source), "--out", str(tmp / "o"), "--identity", "x", expect=2, says="inside the input folder")


# --- 4. special files ------------------------------------------------------------------------

def _special(tmp: Path, kind: str) -> Path:
    path = tmp / "album" / "x.jpg"
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "zero":
        path.symlink_to("/dev/zero")
    elif kind == "socket":
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(path))
        server.close()
    return path


def _run_bounded(args: list[str], stdin: bytes | None = None) -> subprocess.CompletedProcess:
    """In a child process with a timeout: a regression here would hang, not fail."""
    return subprocess.run([sys.executable, "-m", "segue_cli", *args], input=stdin, capture_output=True, timeout=120)


def _special_in_folder(kind: str) -> Callable[[Path], None]:
    def run(tmp: Path) -> None:
        _special(tmp, kind)
        photo(tmp / "album" / "ok.png")
        done = _run_bounded(["protect", str(tmp / "album"), "--out", str(tmp / "o"), "--identity", "x", "--json"])
        assert done.returncode == 0, done.stderr
        record = json.loads(done.stdout.decode().splitlines()[-1])
        assert record["written"] == 1 and any("x.jpg" in entry["path"] for entry in record["not_read"])
        assert b"Traceback" not in done.stderr
    return run


def _special_as_input(kind: str) -> Callable[[Path], None]:
    def run(tmp: Path) -> None:
        path = _special(tmp, kind)
        done = _run_bounded(["protect", str(path), "--identity", "x", "--out", str(tmp / "o")])
        assert done.returncode == 2 and b"not a regular file" in done.stderr and b"Traceback" not in done.stderr
    return run


def _special_on_stdin_list(tmp: Path) -> None:
    path = _special(tmp, "fifo")
    photo(tmp / "album" / "ok.png")
    listed = f"{path}\n{tmp / 'album' / 'ok.png'}\n".encode()
    done = _run_bounded(["protect", "-", "--identity", "x", "--out", str(tmp / "o"), "--json"], stdin=listed)
    assert done.returncode == 0 and b"not a regular file" in done.stdout, done.stderr


def _special_single_output(tmp: Path) -> None:
    path = _special(tmp, "fifo")
    done = _run_bounded(["protect", str(path), "--identity", "x", "-o", str(tmp / "one.png")])
    assert done.returncode == 2 and b"not a regular file" in done.stderr


# --- 5. messages, not tracebacks ---------------------------------------------------------------

def _read_only_out(tmp: Path) -> None:
    cli("protect", str(album(tmp)), "--out", "/proc/1/segue-out", "--identity", "x", expect=2,
        says="cannot write to the output folder")


def _superscript_folder(tmp: Path) -> None:
    photo(tmp / "album" / "²" / "a.png")
    photo(tmp / "album" / "3" / "b.png", 1)
    output = cli("protect", str(tmp / "album"), "--by-folder", "--out", str(tmp / "o"), "--json", expect=0)
    assert summary(output)["written"] == 2


def _superscript_label(tmp: Path) -> None:
    source = album(tmp)
    (tmp / "labels.csv").write_text("path,label\nalbum/p0.png,²\nalbum/p1.png,3\n")
    output = cli("protect", str(source), "--labels", str(tmp / "labels.csv"), "--out", str(tmp / "o"), "--json", expect=0)
    assert summary(output)["written"] == 2


def _train_resume(record: str) -> Callable[[Path], None]:
    def run(tmp: Path) -> None:
        run_dir = tmp / "run"
        run_dir.mkdir()
        (run_dir / "config.json").write_text(record)
        (run_dir / "state.pt").write_bytes(b"x")
        cli("train", str(album(tmp)), "--out", str(run_dir), "--resume", expect=2, says="is not the config.json of a segue train run")
    return run


def _piped_image(tmp: Path) -> None:
    data = photo(tmp / "album" / "a.png").read_bytes()
    result = runner.invoke(app, ["protect", "--identity", "x", "-"], input=data)
    assert result.exit_code == 0 and result.stdout_bytes.startswith(b"\x89PNG"), result.output


def _piped_image_without_name(tmp: Path) -> None:
    data = photo(tmp / "album" / "a.png").read_bytes()
    cli("protect", "-", stdin=data, expect=2, says="pass --identity NAME")


def _piped_garbage(tmp: Path) -> None:
    album(tmp)
    cli("protect", "-", "--identity", "x", stdin=b"\xff\xfe\x00\x81 not text, not an image", expect=2,
        says="neither an image")


def _piped_nothing(tmp: Path) -> None:
    album(tmp)
    cli("protect", "-", "--identity", "x", stdin="", expect=2, says="no paths were given on stdin")


def _path_list_to_stdout(tmp: Path) -> None:
    source = album(tmp)
    cli("protect", "-", "--out", "-", stdin=f"{source / 'p0.png'}\n", expect=2, says="stdin listed image paths")


def _folder_to_one_file(tmp: Path) -> None:
    cli("protect", str(album(tmp)), "--out", str(tmp / "one.png"), "--identity", "x", expect=2, says="is a folder")


def _missing_input(tmp: Path) -> None:
    cli("protect", str(tmp / "nothing-here"), expect=2, says="input not found")


# --- 6. numbers -------------------------------------------------------------------------------

NUMBER_OPTIONS: dict[str, tuple[list[str], list[str]]] = {
    # command: (the arguments it needs besides the option, its numeric options)
    "protect": (["{album}", "--identity", "x", "--out", "{tmp}/o"],
                ["--workers", "--batch-size", "--max-pixels", "--label"]),
    "train": (["{album}", "--out", "{tmp}/run"],
              ["--image-size", "--epochs", "--batch-size", "--lr-generator", "--lr-surrogate", "--alpha", "--beta",
               "--epsilon", "--surrogate-period", "--surrogate-warmup", "--stop-loss", "--rho-d", "--pgd-steps",
               "--surrogate-rho", "--pattern-grid", "--identity-weight", "--decoys", "--generator-width",
               "--photo-scale", "--gray-p", "--workers", "--max-steps", "--blur-sigma", "--sharpness", "--flip-p",
               "--jpeg-p", "--resize-p"]),
    "evaluate": (["--train-protected", "{album}", "--train-clean", "{album}", "--test", "{album}", "--out", "{tmp}/e"],
                 ["--epochs", "--batch-size", "--lr", "--image-size", "--quality-size", "--limit-per-identity",
                  "--threads", "--workers"]),
    "cluster": (["{album}", "--out", "{tmp}/l.csv"], ["--jitter"]),
    "export": (["--out", "{tmp}/g.onnx"], ["--opset"]),
    "serve": ([], ["--port", "--workers", "--threads", "--queue", "--max-upload-mb", "--max-files", "--max-pixels"]),
}
BAD_NUMBERS = ("inf", "nan", "-7", "1e309", "99999999999")


def _bad_number(command: str, option: str, value: str) -> Callable[[Path], None]:
    def run(tmp: Path) -> None:
        source = album(tmp)
        extra = [word.format(album=source, tmp=tmp) for word in NUMBER_OPTIONS[command][0]]
        result = runner.invoke(app, [command, *extra, option, value])
        assert result.exit_code == 2, f"{command} {option} {value}: exit {result.exit_code}: {result.output}"
        assert "Traceback" not in result.output
        words = " ".join(result.output.split())
        assert option in words or "is not a valid" in words, words  # our range check, or the parser's type check
        for made in ("o", "run", "e", "l.csv", "g.onnx"):
            assert not (tmp / made).exists(), f"{made} was created"
    return run


# --- 7. the library's types ---------------------------------------------------------------------

PIXELS = np.zeros((32, 32, 3), np.uint8)


def _library(call: Callable[[object], object], says: str) -> Callable[[Path], None]:
    def run(tmp: Path) -> None:
        from segue_cli import Protector
        from segue_cli.errors import SegueError

        with pytest.raises(SegueError, match=says):  # InputError for a value's type, ConfigError for a name
            call(Protector())
    return run


def _library_float_image(tmp: Path) -> None:
    from segue_cli import Protector

    from segue_cli.errors import InputError

    image = Image.fromarray((np.random.default_rng(0).random((40, 40)) * 255).astype(np.float32), "F")
    with pytest.raises(InputError, match="range"):  # 0..1 or 0..255: a guess would clip one of them (issue 43)
        Protector().protect(image, identity="x")


def _library_lossy_warns(tmp: Path) -> None:
    import io

    from segue_cli import Protector
    from segue_cli.errors import SegueWarning

    buffer = io.BytesIO()
    Image.open(photo(tmp / "a.png")).save(buffer, "JPEG")
    with pytest.warns(SegueWarning, match="lossy: compression removes part of the perturbation"):
        Protector().protect(buffer.getvalue(), identity="x")


# --- 8. global state ------------------------------------------------------------------------------

def _bomb_check_leaves_pillow_alone(tmp: Path) -> None:
    """Threads loading with different limits, as Ray actors or a server's requests do:
    Pillow's global stays as it was and every limit holds for its own caller."""
    from segue_cli.errors import InputError
    from segue_cli.imageio import load_image

    big = photo(tmp / "big.png", size=(400, 300))
    before = Image.MAX_IMAGE_PIXELS
    outcomes: list[str] = []

    def load(limit: int) -> None:
        for _ in range(20):
            try:
                load_image(big, max_pixels=limit)
                outcomes.append("ok" if limit >= 120_000 else "WRONG")
            except InputError:
                outcomes.append("refused" if limit < 120_000 else "WRONG")
            assert Image.MAX_IMAGE_PIXELS == before

    threads = [threading.Thread(target=load, args=(limit,)) for limit in (1000, 10**8, 5000, 10**9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert "WRONG" not in outcomes and len(outcomes) == 80 and Image.MAX_IMAGE_PIXELS == before


def _umask_left_alone(tmp: Path) -> None:
    """Writes on several threads (the encoders, a server's requests): the umask the process
    has is never changed, not even for a moment."""
    from segue_cli.storage import atomic_write

    before = os.umask(0o027)
    seen: list[int] = []
    try:
        def write(index: int) -> None:
            for step in range(50):
                atomic_write(tmp / f"f{index}-{step}", lambda path: path.write_bytes(b"x"))
                with open("/proc/self/status") as status:
                    seen.append(int(next(line for line in status if line.startswith("Umask:")).split()[1], 8))

        threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert set(seen) == {0o027}
        assert all(stat.S_IMODE(p.stat().st_mode) == 0o640 for p in tmp.glob("f*"))
    finally:
        os.umask(before)


def _signal_handler_restored(tmp: Path) -> None:
    import signal

    before = signal.getsignal(signal.SIGTERM)
    cli("protect", str(album(tmp)), "--out", str(tmp / "o"), "--identity", "x", "--quiet", expect=0)
    assert signal.getsignal(signal.SIGTERM) is before


# --- 9. the command line people expect -----------------------------------------------------------

def _one_file_out(tmp: Path) -> None:
    source = album(tmp)
    cli("protect", str(source / "p0.png"), "--out", str(tmp / "out.png"), "--identity", "x", "--quiet", expect=0)
    assert (tmp / "out.png").read_bytes().startswith(b"\x89PNG") and not (tmp / "out.png").is_dir()


def _one_file_short_o_and_suffix_format(tmp: Path) -> None:
    source = album(tmp)
    cli("protect", str(source / "p0.png"), "-o", str(tmp / "out.jpg"), "--identity", "x", "--quiet", expect=0)
    assert (tmp / "out.jpg").read_bytes().startswith(b"\xff\xd8")


def _one_file_exists(tmp: Path) -> None:
    source = album(tmp)
    (tmp / "out.png").write_bytes(b"mine")
    cli("protect", str(source / "p0.png"), "-o", str(tmp / "out.png"), "--identity", "x", expect=2, says="exists")
    assert (tmp / "out.png").read_bytes() == b"mine"


def _one_file_to_stdout(tmp: Path) -> None:
    source = album(tmp)
    result = runner.invoke(app, ["protect", str(source / "p0.png"), "--out", "-", "--identity", "x", "--quiet"])
    assert result.exit_code == 0 and result.stdout_bytes.startswith(b"\x89PNG")


def _fast_run_reads_right(tmp: Path) -> None:
    output = cli("protect", str(album(tmp)), "--out", str(tmp / "o"), "--identity", "x", expect=0)
    assert " ms to " in output and "0.0 s" not in output and "images/s" not in output


CASES: list[Case] = [
    Case("trusted model files", "an ONNX twin with the checkpoint's exact weights and metadata plus a node that multiplies delta by 0",
         "the checkpoint runs; the summary says the twin does not reproduce it", _zeroing_twin),
    Case("trusted model files", "a twin whose weights are all zero", "the checkpoint runs, and says why", _weights_zeroed_twin),
    Case("trusted model files", "a twin exported from another checkpoint, copied beside this one",
         "the checkpoint runs, and says why", _other_models_twin),
    Case("trusted model files", "a twin that is not ONNX at all", "the checkpoint runs, and says why", _garbage_twin),
    Case("trusted model files", "the genuine twin (control)", "the twin runs (ONNX Runtime)", _genuine_twin),
    Case("what counts as done", "a file of junk at an output path, in a folder segue never wrote",
         "failed: 'segue did not write it'; the file is kept; the others written", _junk_at_output),
    Case("what counts as done", "a finished output truncated to half", "redone", _truncated_output),
    Case("what counts as done", "a finished output replaced by another valid PNG", "redone", _replaced_output),
    Case("what counts as done", "an input edited in place, mtime restored (rsync -t)", "redone (ctime and sha256 differ)",
         _input_edited_times_restored),
    Case("what counts as done", "an input replaced by cp -p of another photo", "redone", _input_copied_with_cp_p),
    Case("what counts as done", "an input touched, bytes unchanged", "skipped (its sha256 matches)", _input_touched_unchanged),
    Case("what counts as done", "outputs whose record has no output hash (a run killed before noting them)", "redone",
         _killed_before_hash),
    Case("what counts as done", "a re-run with nothing changed (control)", "every output skipped", _unchanged_rerun),
    Case("output trees", "--out o/sub after a run into o", "refused: inside another run's output folder", _nested_inside_earlier),
    Case("output trees", "--out o after a run into o/sub", "refused: it holds another run's output folder",
         _nested_holding_earlier),
    Case("output trees", "o/sub is a symlink to in/sub", "those files failed ('leads out of --out through a symlink'); "
         "nothing written into the input tree", _symlink_out_of_out),
    Case("output trees", "an output path that is a symlink", "failed: 'is a symlink'; its target not written",
         _output_is_a_symlink),
    Case("output trees", "--out is a symlink to the input folder", "refused: inside the input folder", _out_links_into_input),
    *[Case("special files", f"a {what} named x.jpg in the folder", "skipped and named under not_read; the rest written",
           _special_in_folder(kind)) for kind, what in (("fifo", "FIFO"), ("zero", "symlink to /dev/zero"),
                                                        ("socket", "Unix socket"))],
    *[Case("special files", f"a {what} named x.jpg as INPUT", "exit 2: 'not a regular file'", _special_as_input(kind))
      for kind, what in (("fifo", "FIFO"), ("zero", "symlink to /dev/zero"))],
    Case("special files", "a FIFO in a path list on stdin", "skipped and named; the rest written", _special_on_stdin_list),
    Case("special files", "a FIFO as the one INPUT of -o out.png", "exit 2: 'not a regular file'", _special_single_output),
    Case("messages", "a read-only --out (/proc)", "exit 2: 'cannot write to the output folder', with the fix", _read_only_out),
    Case("messages", "a folder named ² under --by-folder", "a name, hashed like any other; written", _superscript_folder),
    Case("messages", "a label ² in a --labels file", "a name, hashed like any other; written", _superscript_label),
    Case("messages", "train --resume on a config.json without \"config\"", "exit 2 naming the file and the fix",
         _train_resume('{"identities": []}')),
    Case("messages", "train --resume on a config.json that is not JSON", "exit 2 naming the file and the fix",
         _train_resume("not json {")),
    Case("messages", "image bytes piped to segue protect -", "the protected PNG on stdout", _piped_image),
    Case("messages", "image bytes piped without --identity or --label", "exit 2: pass --identity NAME",
         _piped_image_without_name),
    Case("messages", "binary that is neither an image nor text on stdin", "exit 2: neither an image nor a list of paths",
         _piped_garbage),
    Case("messages", "nothing on stdin", "exit 2: no paths were given on stdin", _piped_nothing),
    Case("messages", "a path list on stdin with --out -", "exit 2: --out - is for one image", _path_list_to_stdout),
    Case("messages", "a folder INPUT with --out out.png", "exit 2: a folder writes a folder", _folder_to_one_file),
    Case("messages", "an INPUT that does not exist", "exit 2: input not found", _missing_input),
    *[Case("numbers", f"{command} {option} {value}", "exit 2 naming the option and its range; nothing created",
           _bad_number(command, option, value))
      for command, (_, options) in NUMBER_OPTIONS.items() for option in options
      for value in (BAD_NUMBERS if command != "train" else BAD_NUMBERS[:3])],
    *[Case("library types", f"Protector.protect({shown})", f"SegueError: {says}",
           _library(lambda p, image=image, options=options: p.protect(image, **options), says))
      for shown, image, options, says in [
          ("identity=123", PIXELS, {"identity": 123}, "identity= must be a name"),
          *[(f"code={value!r}", PIXELS, {"code": value}, "code= must be an int") for value in (float("nan"), True, 1.9, "5")],
          ("label=2.0", PIXELS, {"label": 2.0}, "label= must be an int"),
          ("a list", [1, 2, 3], {"identity": "x"}, "cannot protect a list"),
          ("a float array", np.zeros((32, 32, 3)), {"identity": "x"}, "must be uint8"),
          ("..., image_format='gif'", PIXELS, {"identity": "x", "image_format": "gif"}, "unknown format")]],
    Case("library types", "a mode-F (float) PIL image", "refused: its range is not stated; the hint converts it",
         _library_float_image),
    Case("library types", "JPEG bytes in, JPEG bytes out", "a SegueWarning with the CLI's words", _library_lossy_warns),
    Case("global state", "threads loading images with different --max-pixels at once",
         "each limit holds for its caller; Pillow's MAX_IMAGE_PIXELS never changes", _bomb_check_leaves_pillow_alone),
    Case("global state", "atomic writes on four threads at once", "the process's umask is read, never changed",
         _umask_left_alone),
    Case("global state", "a CLI run inside a longer-lived process", "SIGTERM's handler is put back as it was",
         _signal_handler_restored),
    Case("command line", "segue protect in.png --out out.png", "writes that one file", _one_file_out),
    Case("command line", "segue protect in.png -o out.jpg", "-o works; the suffix picks JPEG", _one_file_short_o_and_suffix_format),
    Case("command line", "-o out.png where out.png exists", "exit 2: exists, pass --overwrite; kept", _one_file_exists),
    Case("command line", "segue protect in.png --out -", "the PNG on stdout", _one_file_to_stdout),
    Case("command line", "a run that takes milliseconds", "its summary says 'N ms', no images/s", _fast_run_reads_right),
]


def test_there_are_at_least_150_cases_over_the_families():
    families = {case.family for case in CASES}
    assert len(CASES) >= 150 and len(families) == 9
    assert all(sum(case.family == family for case in CASES) >= 3 for family in families)


@pytest.mark.parametrize("case", CASES, ids=[f"{c.family}: {c.name}" for c in CASES])
def test_hostile_case(case: Case, tmp_path: Path) -> None:
    MADE_INPUTS.clear()
    case.run(tmp_path)
    if case.family != "what counts as done":  # those cases edit their inputs on purpose, between runs
        for folder, before in MADE_INPUTS.items():
            assert digest(folder) == before, f"an input changed under {folder}"
    leftovers = [p for p in tmp_path.rglob("*.tmp") if p.name.startswith(".")]
    assert leftovers == [], f"temp files left: {leftovers}"


def markdown_table() -> str:
    lines = [TABLE_START, "", "| family | cases | each case tries | and must |", "|---|---|---|---|"]
    for family in dict.fromkeys(case.family for case in CASES):
        members = [case for case in CASES if case.family == family]
        if family == "numbers":
            commands = sorted({case.name.split()[0] for case in members})
            lines.append(f"| numbers | {len(members)} | every numeric option of {', '.join(commands)} with "
                         f"{', '.join(BAD_NUMBERS)} | {members[0].outcome} |")
            continue
        for index, case in enumerate(members):
            lines.append(f"| {family if index == 0 else ''} | {len(members) if index == 0 else ''} | {case.name} | {case.outcome} |")
    lines += ["", f"{len(CASES)} cases in all (`tests/test_hostile.py`); in every one the inputs stay byte-identical, "
              "no temp file is left and no traceback is printed.", "", TABLE_END]
    return "\n".join(lines)


def test_docs_table_is_made_from_these_cases():
    text = DOCS.read_text(encoding="utf-8")
    table = markdown_table()
    if os.environ.get("SEGUE_UPDATE_DOCS") == "1":
        if TABLE_START in text:
            head, rest = text.split(TABLE_START, 1)
            text = head + table + rest.split(TABLE_END, 1)[1]
        else:
            text = text.rstrip() + "\n\n### Hostile cases, by family\n\n" + table + "\n"
        DOCS.write_text(text, encoding="utf-8")
    assert table in DOCS.read_text(encoding="utf-8"), "regenerate: SEGUE_UPDATE_DOCS=1 pytest tests/test_hostile.py -k docs"
