"""Where each protected photo goes.

Rules (docs/protect.md repeats them for users):

* Every input has a *root* folder whose tree is mirrored: the folder given as INPUT,
  the folder holding a single INPUT file, or the deepest folder common to all paths
  read from stdin. An output is ``OUT / <path relative to the root>`` with the suffix
  of the output format (a suffix that already names the format is kept: ``a.JPG``
  stays ``a.JPG`` under ``--format jpeg``).
* The default OUT is the root's sibling ``<root>-protected/``.
* For a folder INPUT, OUT may not be the folder or lie inside it (a re-run would
  protect the protected copies). For any INPUT, no output may be an input.
* Two inputs that would share an output (``a.jpg`` and ``a.png`` under ``--format png``)
  are never merged: the second is reported as failed, naming the first.
* An output that already exists is skipped (a re-run finishes what is left) unless
  ``overwrite`` is set. OUT records in ``.segue-protect.json`` the settings that decided
  each output's pixels (model, side information, faces, format); a re-run that would
  skip outputs made under other settings is refused instead of leaving OUT a silent mix
  of two protections.
* OUT gets a marker file (``.segue-output``). Searching a folder leaves out everything
  under a marked folder, so protecting ``~/Pictures`` after ``~/Pictures/trip`` does not
  protect ``trip-protected`` a second time (the summary says how many were left out).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Literal

from ..artifacts import atomic_write
from ..errors import InputError, OutputError, input_not_found
from ..formats import OUTPUT_FORMATS
from ..imageio import discover_images, looks_like_image

OUTPUT_MARKER = ".segue-output"
SETTINGS_FILE = ".segue-protect.json"
MARKER_TEXT = "Written by `segue protect`: photos here are protected copies; segue leaves this folder out of its input.\n"
InputKind = Literal["folder", "file", "list"]


@dataclass(frozen=True)
class InputSet:
    kind: InputKind
    root: Path  # absolute, symlinks kept: the folder whose tree is mirrored
    files: tuple[Path, ...]
    left_out: tuple[Path, ...] = ()  # marked output folders found inside a folder INPUT
    not_images: tuple[Path, ...] = ()  # hidden files that are not images (macOS ._* AppleDouble, ...)
    unsupported: tuple[Path, ...] = ()  # photos in formats segue cannot read (camera raw, JPEG XL, ...)


def _hidden_non_image(path: Path) -> bool:
    """A hidden file with an image suffix that holds no image: macOS writes ``._NAME``
    AppleDouble metadata beside every file it copies to a non-Mac disk, suffix and all."""
    return path.name.startswith("._") or (path.name.startswith(".") and not looks_like_image(path))


def _split_hidden(files: Iterable[Path]) -> tuple[tuple[Path, ...], tuple[Path, ...]]:
    """(files to protect, hidden non-images), in one pass."""
    kept: list[Path] = []
    hidden: list[Path] = []
    for f in files:
        (hidden if f.is_file() and _hidden_non_image(f) else kept).append(f)
    return tuple(kept), tuple(hidden)


@dataclass(frozen=True)
class PlannedFile:
    source: Path
    relative: Path  # mirrored path under the root
    output: Path
    status: Literal["todo", "skipped", "failed"]
    reason: str | None = None


def split_path_list(data: str) -> tuple[str, ...]:
    """Paths from a list on stdin, names kept exactly: NUL-separated (``find -print0``) when
    the text holds a NUL, else one per line with only the line ending removed, so names
    that begin or end with spaces survive. Empty entries are dropped."""
    if "\0" in data:
        return tuple(entry for entry in data.split("\0") if entry)
    return tuple(line.removesuffix("\r") for line in data.split("\n") if line.removesuffix("\r"))


def collect_inputs(target: Path | str, listed: Iterable[str | Path] = ()) -> InputSet:
    """Find the photos to protect. ``target == "-"`` means: the paths in ``listed``."""
    if str(target) == "-":
        absolute = (Path(os.path.abspath(Path(str(p)).expanduser())) for p in listed if str(p))
        files = tuple(dict.fromkeys(absolute))  # a path listed twice is protected once
        if not files:
            raise InputError("no paths were given on stdin", "pipe one image path per line, e.g. find DIR -name '*.jpg' | segue protect -")
        root = Path(os.path.commonpath([str(f.parent) for f in files]))
        kept, hidden = _split_hidden(files)
        return InputSet("list", root, kept, not_images=hidden)
    path = Path(os.path.abspath(Path(target).expanduser()))
    if path.is_file():
        kept, hidden = _split_hidden((path,))
        return InputSet("file", path.parent, kept, not_images=hidden)
    if not path.is_dir():
        raise input_not_found(target)
    unsupported: list[Path] = []
    files, left_out = _without_output_folders(discover_images(path, unsupported), path)
    kept, hidden = _split_hidden(files)
    return InputSet("folder", path, kept, left_out, hidden, tuple(unsupported))


def _without_output_folders(files: list[Path], root: Path) -> tuple[tuple[Path, ...], tuple[Path, ...]]:
    marked: dict[Path, Path | None] = {}  # folder -> the marked folder it is in, if any

    def marked_folder(folder: Path) -> Path | None:
        if folder not in marked:
            inside = None if folder == root or folder.parent == folder else marked_folder(folder.parent)
            marked[folder] = inside or (folder if (folder / OUTPUT_MARKER).is_file() else None)
        return marked[folder]

    kept = tuple(f for f in files if marked_folder(f.parent) is None)
    left_out = tuple(sorted({m for f in files if (m := marked_folder(f.parent)) is not None}))
    return kept, left_out


def mark_out_dir(out_dir: Path) -> None:
    """Create OUT and its marker (once, atomically: a full disk leaves no empty marker)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    marker = out_dir / OUTPUT_MARKER
    if not marker.is_file() or marker.stat().st_size == 0:
        atomic_write(marker, lambda tmp: tmp.write_text(MARKER_TEXT, encoding="utf-8"))


def default_out_dir(inputs: InputSet) -> Path:
    if inputs.root.parent == inputs.root:
        raise OutputError(f"cannot put the output beside {inputs.root}", "pass --out DIR")
    return inputs.root.parent / f"{inputs.root.name}-protected"


def output_relative(relative: Path, image_format: str) -> Path:
    suffixes = OUTPUT_FORMATS[image_format].suffixes
    if relative.suffix.lower() in suffixes:
        return relative
    return relative.with_suffix(suffixes[0])


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_out_dir(inputs: InputSet, out_dir: Path) -> Path:
    """Absolute OUT, refused when it would put outputs inside a folder INPUT."""
    out_abs = Path(os.path.abspath(out_dir.expanduser()))
    if out_abs.exists() and not out_abs.is_dir():
        raise OutputError(f"output {out_dir} exists and is not a folder", "pass --out with a folder path")
    real_out = Path(os.path.realpath(out_abs))
    if inputs.kind == "folder" and _inside(real_out, Path(os.path.realpath(inputs.root))):
        raise OutputError(
            f"output folder {out_dir} is inside the input folder {inputs.root}",
            f"write elsewhere, e.g. the default {default_out_dir(inputs)}",
        )
    # For every kind of INPUT: no input photo may sit inside OUT. Its own output would
    # replace it (--overwrite) or make it count as already protected, and OUT's marker
    # would hide it from a later `segue protect` of a folder above.
    inside = next((f for f in inputs.files if _inside(Path(os.path.realpath(f)), real_out)), None)
    if inside is not None:
        raise OutputError(
            f"output folder {out_dir} holds the input photo {inside}",
            f"write elsewhere, e.g. {default_out_dir(inputs)}",
        )
    return out_abs


def plan_outputs(inputs: InputSet, out_dir: Path, image_format: str, overwrite: bool = False) -> list[PlannedFile]:
    """One PlannedFile per input, in input order (see module docstring for the rules)."""
    out_abs = check_out_dir(inputs, out_dir)
    real_inputs = {os.path.realpath(f) for f in inputs.files}
    claimed: dict[Path, Path] = {}
    planned: list[PlannedFile] = []
    for source in inputs.files:
        relative = source.relative_to(inputs.root)
        output = out_abs / output_relative(relative, image_format)
        status: Literal["todo", "skipped", "failed"] = "todo"
        reason = None
        if source.is_dir():
            status, reason = "failed", "is a folder; list image files, or pass the folder itself as INPUT"
        elif os.path.realpath(output) in real_inputs:
            status, reason = "failed", f"its output {output} would be an input; pass another --out"
        elif output in claimed:
            status, reason = "failed", f"its output {output} is already the output of {claimed[output]}; rename one of them"
        elif output.is_dir():
            status, reason = "failed", f"its output path {output} is a folder; move it away or pass another --out"
        elif output.exists() and not overwrite and output.stat().st_size > 0:  # a 0-byte output is redone
            status, reason = "skipped", "output exists (already protected; --overwrite to redo)"
        claimed.setdefault(output, source)
        planned.append(PlannedFile(source, relative, output, status, reason))
    return planned


def parse_record(data: bytes | None, where: str, out_label: str, read_error: OSError | None = None) -> dict[str, Any]:
    """OUT's record of which settings (and which input) made each output (``data`` None:
    there is none). A record that exists but cannot be read is an error: without it a
    re-run could not tell a finished output from one made under other settings."""
    if data is None and read_error is None:
        return {"settings": {}, "outputs": {}}
    record, problem = None, str(read_error)
    if read_error is None:
        try:
            record = json.loads(data)  # type: ignore[arg-type]
        except ValueError as exc:  # not JSON, or not UTF-8
            problem = str(exc)
        else:
            problem = "it is not a segue settings record"
    if isinstance(record, dict) and all(isinstance(record.get(key), dict) for key in ("settings", "outputs")):
        return record
    raise OutputError(f"the settings record {where} is corrupt ({problem})",
                      f"move it away and re-run with --overwrite to protect every photo in {out_label} again, "
                      "or pass another --out")


def _read_record(out_dir: Path) -> dict[str, Any]:
    path = out_dir / SETTINGS_FILE
    if not path.exists():
        return parse_record(None, str(path), str(out_dir))
    try:
        return parse_record(path.read_bytes(), str(path), str(out_dir))
    except OSError as exc:
        return parse_record(None, str(path), str(out_dir), read_error=exc)


def input_fingerprint(source: Path, with_hash: bool = True) -> dict[str, Any]:
    """What an output was made from: the input's size, mtime and (optionally) sha256."""
    stat = source.stat()
    fingerprint: dict[str, Any] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    if with_hash:
        from ..artifacts import file_sha256

        fingerprint["sha256"] = file_sha256(source)
    return fingerprint


def _entry(record: dict[str, Any], key: str) -> tuple[str | None, dict[str, Any] | None]:
    """(settings id, input fingerprint) of one output; records before fingerprints held the id alone."""
    entry = record["outputs"].get(key)
    if isinstance(entry, dict):
        return entry.get("settings"), entry.get("input")
    return entry, None


def _input_changed(source: Path, made_from: dict[str, Any] | None) -> bool:
    if made_from is None:
        return False
    now = input_fingerprint(source, with_hash=False)
    if (now["size"], now["mtime_ns"]) == (made_from.get("size"), made_from.get("mtime_ns")):
        return False
    return now["size"] != made_from.get("size") or input_fingerprint(source)["sha256"] != made_from.get("sha256")


def settings_id(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def settings_changes(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``name: old -> new`` for each setting that differs."""
    return [f"{name}: {recorded.get(name)!r} -> {current.get(name)!r}"
            for name in sorted(set(recorded) | set(current)) if recorded.get(name) != current.get(name)]


def _key(out_dir: Path, output: Path) -> str:
    return output.relative_to(out_dir).as_posix()


OutputKey = Callable[[PlannedFile], str]  # an output's key in the record: its path relative to OUT


def checked_plan(record: dict[str, Any], planned: list[PlannedFile], current: dict[str, Any], key: OutputKey,
                 changed: Callable[[PlannedFile, dict[str, Any] | None], bool], out_label: str) -> list[PlannedFile]:
    """Refuse to skip existing outputs that were protected under other settings, and redo
    those whose input changed since (same path, other photo); the plan with those redone.
    The same rules for a local OUT and an object store's."""
    from dataclasses import replace

    current_id = settings_id(current)
    checked: list[PlannedFile] = []
    stale: list[str] = []
    for item in planned:
        if item.status == "skipped":
            made_with, made_from = _entry(record, key(item))
            if changed(item, made_from):
                item = replace(item, status="todo", reason="its input changed since its output was made: redone")
            elif made_with is not None and made_with != current_id:
                stale.append(made_with)
        checked.append(item)
    if stale:
        changes = settings_changes(record["settings"].get(stale[0], {}), current)
        others = len(set(stale)) - 1
        raise OutputError(
            f"{out_label} holds {len(stale)} output(s) protected with other settings ({'; '.join(changes)}"
            f"{f'; and {others} other set(s) of settings' if others else ''}); skipping them would leave the folder "
            "a mix of two protections",
            "pass --overwrite to protect them again with these settings, or --out NEW_FOLDER to keep both",
        )
    return checked


def check_settings(out_dir: Path, planned: list[PlannedFile], current: dict[str, Any]
                   ) -> tuple[dict[str, Any], list[PlannedFile]]:
    """:func:`checked_plan` for a local OUT; returns OUT's record for :func:`record_settings` too."""
    record = _read_record(out_dir)
    checked = checked_plan(record, planned, current, lambda item: _key(out_dir, item.output),
                           lambda item, made_from: _input_changed(item.source, made_from), str(out_dir))
    return record, checked


def updated_record(record: dict[str, Any], planned: list[PlannedFile], current: dict[str, Any], version: str,
                   key: OutputKey, fingerprint: Callable[[PlannedFile], dict[str, Any] | None]) -> str:
    """The record's new text: ``current`` and each input's fingerprint noted against every
    output this run will write, before writing: a file that then fails leaves no output,
    and an output without an entry is not checked."""
    current_id = settings_id(current)
    for item in planned:
        if item.status == "todo":
            record["outputs"][key(item)] = {"settings": current_id, "input": fingerprint(item)}
    used = {_entry(record, name)[0] for name in record["outputs"]}
    record["settings"] = {name: value for name, value in record["settings"].items() if name in used}
    record["settings"][current_id] = current
    record["written_by"] = f"segue {version}"
    return json.dumps(record, indent=1, sort_keys=True) + "\n"


def record_settings(out_dir: Path, record: dict[str, Any], planned: list[PlannedFile], current: dict[str, Any],
                    version: str) -> None:
    """:func:`updated_record` written to a local OUT."""
    def fingerprint(item: PlannedFile) -> dict[str, Any] | None:
        try:
            return input_fingerprint(item.source)
        except OSError:
            return None  # it will fail on decoding, and say why

    text = updated_record(record, planned, current, version, lambda item: _key(out_dir, item.output), fingerprint)
    atomic_write(out_dir / SETTINGS_FILE, lambda tmp: tmp.write_text(text, encoding="utf-8"))


LOCK_FILE = ".segue-lock"


@contextmanager
def locked_out_dir(out_dir: Path, wait: bool = False) -> Iterator[None]:
    """Hold OUT for one run (an OS lock on OUT/.segue-lock, released when the process
    ends, however it ends; the file is removed after a run). A second run into the same
    OUT is refused, naming the first run's pid, or waits for it with ``wait``: two runs
    would both write every file and, with different identities, leave a silent mix."""
    path = out_dir / LOCK_FILE
    out_dir.mkdir(parents=True, exist_ok=True)
    while True:
        handle = open(path, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise OutputError(f"{out_dir} is being written by another segue protect (pid {holder})",
                              "let it finish, pass --wait to wait for it, or pass another --out") from None
        try:
            same_file = os.fstat(handle.fileno()).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same_file = False
        if same_file:
            break
        handle.close()  # the run before removed the file while we waited: lock the new one
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
    finally:
        path.unlink(missing_ok=True)  # while still held, so no one locks a file about to vanish
        handle.close()


def remove_stale_temps(out_dir: Path, planned: list[PlannedFile]) -> list[Path]:
    """Delete the temp files (``.NAME.XXXXXXXX.tmp``, see ``artifacts.atomic_write``) that
    a killed run left beside this run's outputs and OUT's own files; returns them. Only
    safe while OUT is locked: a live run's temp files look the same."""
    names: dict[Path, set[str]] = {out_dir: {SETTINGS_FILE, OUTPUT_MARKER}}
    for item in planned:
        names.setdefault(item.output.parent, set()).add(item.output.name)
    removed = []
    for folder, wanted in names.items():
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith(".") and entry.name.endswith(".tmp") and entry.is_file(follow_symlinks=False):
                base = entry.name[1:-4].rpartition(".")[0]
                if base in wanted:
                    Path(entry.path).unlink(missing_ok=True)
                    removed.append(Path(entry.path))
    return removed
