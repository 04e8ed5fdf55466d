"""Where each protected photo goes, and what OUT records of it. Rules (docs/protect.md
repeats them for users):

* An output is ``OUT / <path relative to the input's root>`` with the suffix of the
  output format (a suffix that already names the format is kept: ``a.JPG`` stays
  ``a.JPG`` under ``--format jpeg``). The default OUT is the root's sibling
  ``<root>-protected``. OUT may not be or lie inside a folder INPUT, no output may be an
  input, and two inputs that would share an output are never merged (the second fails).
* OUT is one tree: ``.segue-output`` marks it, ``.segue-protect.json`` records what made
  each output (``.segue-protect.journal`` notes each output as it is written, until the
  record is saved: the journal, below), and ``.segue-lock`` holds it for one run at a time. A run whose OUT lies
  inside another run's tree, or holds one, is refused: two records would each claim the
  other's files. No output is written through a symlink that leads out of OUT.
* Done means: the record names the output, the output's size and sha256 are the ones
  recorded when it was written, and its input is the one it was made from (same size,
  mtime and ctime, or else the same sha256). Such an output is skipped unless
  ``--overwrite``; a damaged one (truncated, replaced) or one whose input changed is
  redone; a file segue did not write is never overwritten without ``--overwrite``. An
  output made under other settings stops the run instead of leaving OUT a silent mix of
  two protections.

In an object store there is no lock (run one job per OUT), inputs are fingerprinted by the
size and upload time their listing gives, and outputs by their size.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import PurePosixPath
from typing import Any

from ..errors import OutputError, disk_full, is_disk_full
from ..choices import OUTPUT_FORMATS
from .job import FileResult, PlannedFile
from ..storage import Location, exists, file_sha256, list_files, read_if_file, write_bytes
from .inputs import OUTPUT_MARKER, InputFile, InputSet

SETTINGS_FILE = ".segue-protect.json"
JOURNAL_FILE = ".segue-protect.journal"
LOCK_FILE = ".segue-lock"  # held by protect_folder (``folder.locked_out_dir``)
INPUT_CHANGED = "its input changed since its output was made: redone"
MARKER_TEXT = "Written by `segue protect`: photos here are protected copies; segue leaves this folder out of its input.\n"


def output_relative(relative: PurePosixPath, image_format: str) -> PurePosixPath:
    suffixes = OUTPUT_FORMATS[image_format].suffixes
    if relative.suffix.lower() in suffixes:
        return relative
    return relative.with_suffix(suffixes[0])


def default_out(inputs: InputSet) -> Location:
    """``<root>-protected`` beside the input's root."""
    root = inputs.root
    if root.local:
        parent, name = os.path.split(root.path)
        if not name:
            raise OutputError(f"cannot put the output beside {root.path}", "pass --out DIR")
        return Location(None, os.path.join(parent, f"{name}-protected"), os.path.join(parent, f"{name}-protected"))
    return Location(root.filesystem, root.path.rstrip("/") + "-protected", root.uri.rstrip("/") + "-protected")


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


@dataclass
class OutputTree:
    """OUT: its planned outputs and its record (the lock is ``folder.locked_out_dir``'s)."""

    out: Location
    record: dict[str, Any] = field(default_factory=lambda: {"settings": {}, "outputs": {}})
    _dirty: int = 0
    _listing: dict[str, int] | None = None

    @property
    def label(self) -> str:
        return self.out.uri if not self.out.local else self.out.path

    # --- planning -------------------------------------------------------------------------
    def check_against(self, inputs: InputSet) -> None:
        """OUT may not be a file, lie inside a folder INPUT, hold an input, or nest with another run's OUT."""
        out = self.out
        if not out.local:
            if type(out.filesystem) is type(inputs.root.filesystem) and _inside(out.path + "/", inputs.root.path.rstrip("/") + "/"):
                raise OutputError(f"output {out.uri} is inside the input {inputs.root.uri}",
                                  f"write elsewhere, e.g. the default {default_out(inputs).uri}")
            return
        if os.path.lexists(out.path) and not os.path.isdir(out.path):
            raise OutputError(f"output {out.uri} exists and is not a folder", "pass --out with a folder path")
        real_out = os.path.realpath(out.path)
        if inputs.kind == "folder" and _inside(real_out, os.path.realpath(inputs.root.path)):
            raise OutputError(f"output folder {out.uri} is inside the input folder {inputs.root.path}",
                              f"write elsewhere, e.g. the default {default_out(inputs).path}")
        # No input photo may sit inside OUT: its own output would replace it (--overwrite) or
        # make it count as already protected, and OUT's marker would hide it from a later run.
        inside = next((f for f in inputs.files if _inside(os.path.realpath(f.location.path), real_out)), None)
        if inside is not None:
            raise OutputError(f"output folder {out.uri} holds the input photo {inside.location.path}",
                              f"write elsewhere, e.g. {default_out(inputs).path}")
        self._check_nesting(real_out)

    def _check_nesting(self, real_out: str) -> None:
        fix = "protect into that folder itself, or choose an --out outside it"
        folder = os.path.dirname(real_out)
        while True:
            if os.path.isfile(os.path.join(folder, OUTPUT_MARKER)) or os.path.isfile(os.path.join(folder, LOCK_FILE)):
                raise OutputError(f"output folder {self.out.uri} is inside {folder}, the output folder of another "
                                  "segue protect run (its settings record covers everything below it)", fix)
            parent = os.path.dirname(folder)
            if parent == folder:
                break
            folder = parent
        for dirpath, dirnames, filenames in os.walk(real_out):
            if dirpath != real_out and (OUTPUT_MARKER in filenames or LOCK_FILE in filenames):
                raise OutputError(f"output folder {self.out.uri} holds {dirpath}, the output folder of another "
                                  "segue protect run", "move that folder out, or choose another --out")
            dirnames.sort()

    def plan(self, inputs: InputSet, image_format: str, overwrite: bool) -> list[PlannedFile]:
        """One PlannedFile per input, in input order: to do, skipped (its output exists:
        :meth:`check_done` decides later whether it is done), or failed with the reason."""
        listed = self._listed()
        real_out = os.path.realpath(self.out.path) if self.out.local else ""
        real_inputs = {os.path.realpath(f.location.path) for f in inputs.files} if self.out.local else set()
        claimed: dict[str, str] = {}
        planned: list[PlannedFile] = []
        for item in inputs.files:
            relative = output_relative(item.relative, image_format)
            output = self.out.join(relative.as_posix())
            status, reason = "todo", None
            if output.path in claimed:
                status, reason = "failed", f"its output {output.uri} is already the output of {claimed[output.path]}; rename one of them"
            elif self.out.local:
                status, reason = self._local_status(item, output, real_out, real_inputs, overwrite)
            elif listed.get(relative.as_posix()) and not overwrite:
                status, reason = "skipped", "output exists (already protected; --overwrite to redo)"
            claimed.setdefault(output.path, str(item.location.reported))
            planned.append(PlannedFile(item.location, item.relative, output, status, reason))  # type: ignore[arg-type]
        return planned

    def _local_status(self, item: InputFile, output: Location, real_out: str, real_inputs: set[str],
                      overwrite: bool) -> tuple[str, str | None]:
        source, target = item.location.path, output.path
        if os.path.isdir(source):
            return "failed", "is a folder; list image files, or pass the folder itself as INPUT"
        if os.path.realpath(target) in real_inputs:
            return "failed", f"its output {target} would be an input; pass another --out"
        parent = os.path.realpath(os.path.dirname(target))  # resolves the links among the folders that exist
        if not _inside(parent, real_out):
            return "failed", (f"its output folder {os.path.dirname(target)} leads out of --out through a symlink (to "
                              f"{parent}); not written there. Remove the link, or pass another --out")
        if os.path.islink(target):
            return "failed", f"its output {target} is a symlink; segue does not write through links. Remove it"
        if os.path.isdir(target):
            return "failed", f"its output path {target} is a folder; move it away or pass another --out"
        if os.path.exists(target) and not overwrite:
            return "skipped", "output exists (already protected; --overwrite to redo)"
        return "todo", None

    def read_record(self) -> None:
        where = self.out.join(SETTINGS_FILE)
        try:
            data = read_if_file(where)
        except OSError as exc:
            raise self._corrupt(where, str(exc)) from exc
        if data is None:
            return
        try:
            record = json.loads(data)
        except ValueError as exc:  # not JSON, or not UTF-8
            raise self._corrupt(where, str(exc)) from exc
        if not (isinstance(record, dict) and all(isinstance(record.get(key), dict) for key in ("settings", "outputs"))):
            raise self._corrupt(where, "it is not a segue settings record")
        self.record = record
        if self.out.local:
            journal_replay(self.out, record["outputs"])

    def _corrupt(self, where: Location, problem: str) -> OutputError:
        return OutputError(f"the settings record {where.uri} is corrupt ({problem})",
                           f"move it away and re-run with --overwrite to protect every photo in {self.label} again, "
                           "or pass another --out")

    def _listed(self) -> dict[str, int]:
        """An object-store OUT's files and sizes, listed once a run (a local OUT: empty)."""
        if self._listing is None:
            self._listing = ({rel: size for rel, size, _ in list_files(self.out)}
                             if not self.out.local and exists(self.out) else {})
        return self._listing

    def key(self, planned: PlannedFile) -> str:
        return PurePosixPath(os.path.relpath(planned.output.path, self.out.path)).as_posix() if self.out.local else \
            PurePosixPath(planned.output.path).relative_to(self.out.path).as_posix()

    def check_done(self, planned: list[PlannedFile], settings: dict[str, Any],
                   fingerprints: dict[str, dict[str, Any]]) -> list[PlannedFile]:
        """Each existing output checked against the record (module docstring): skipped
        only when done; redone when damaged or made from another input; failed when segue
        did not write it. Outputs made under other settings stop the run."""
        current = settings_id(settings)
        outputs = self.record["outputs"]
        listed = self._listed()
        checked: list[PlannedFile] = []
        stale: list[str] = []
        for item in planned:
            if item.status == "skipped":
                entry = outputs.get(self.key(item))
                entry = entry if isinstance(entry, dict) else {"settings": entry}  # records before 0.2 held the id alone
                if entry.get("settings") is None:
                    item = replace(item, status="failed", reason=(
                        f"{item.output.uri} exists but segue did not write it (it is not in {self.label}'s settings "
                        "record); move it away, or pass --overwrite to replace it"))
                elif entry["settings"] != current:
                    stale.append(entry["settings"])
                elif not self._output_intact(item, entry.get("output"), listed):
                    item = replace(item, status="todo", reason="its output is not the file segue wrote (truncated, "
                                   "replaced or unfinished): redone")
                elif self._input_changed(item, entry.get("input"), fingerprints):
                    item = replace(item, status="todo", reason=INPUT_CHANGED)
            checked.append(item)
        if stale:
            changes = settings_changes(self.record["settings"].get(stale[0], {}), settings)
            others = len(set(stale)) - 1
            raise OutputError(
                f"{self.label} holds {len(stale)} output(s) protected with other settings ({'; '.join(changes)}"
                f"{f'; and {others} other set(s) of settings' if others else ''}); skipping them would leave the folder "
                "a mix of two protections",
                "pass --overwrite to protect them again with these settings, or --out NEW_FOLDER to keep both",
            )
        return checked

    def _output_intact(self, item: PlannedFile, made: Any, listed: dict[str, int]) -> bool:
        if not isinstance(made, dict):
            return False  # written by an older segue, or the run stopped before it was written: not proven
        if not self.out.local:
            return listed.get(self.key(item)) == made.get("size")
        try:
            return os.path.getsize(item.output.path) == made.get("size") and file_sha256(item.output.path) == made.get("sha256")
        except OSError:
            return False

    @staticmethod
    def _input_changed(item: PlannedFile, made_from: Any, fingerprints: dict[str, dict[str, Any]]) -> bool:
        if not isinstance(made_from, dict):
            return False  # nothing recorded to compare with
        now = fingerprints.get(item.source.path)
        if now is None:
            return False  # unreadable now: it fails on decoding, and says why
        proof = ("size", "mtime_ns", "ctime_ns") if item.source.local else ("size", "mtime_ns")
        if all(now.get(key) == made_from.get(key) for key in proof):
            return False
        if not item.source.local or now["size"] != made_from.get("size") or "sha256" not in made_from:
            return True
        try:
            return file_sha256(item.source.path) != made_from["sha256"]
        except OSError:
            return False

    # --- running --------------------------------------------------------------------------
    def _unwritable(self, exc: OSError) -> OutputError:
        if is_disk_full(exc):
            return disk_full(self.label, exc)
        return OutputError(f"cannot write to the output folder {self.label}: {exc.strerror or exc}",
                           "check its permissions and free space, or pass another --out")

    def start(self, planned: list[PlannedFile], settings: dict[str, Any], fingerprints: dict[str, dict[str, Any]],
              version: str) -> None:
        """Before any output is written: OUT's marker, and a record entry for every output
        this run will write (no output hash yet), so a killed run's outputs are known as
        segue's and redone rather than taken for foreign files."""
        current = settings_id(settings)
        for item in planned:
            if item.status == "todo":
                self.record["outputs"][self.key(item)] = {"settings": current, "input": fingerprints.get(item.source.path)}
        used = {entry.get("settings") if isinstance(entry, dict) else entry for entry in self.record["outputs"].values()}
        self.record["settings"] = {name: value for name, value in self.record["settings"].items() if name in used}
        self.record["settings"][current] = settings
        self.record["written_by"] = f"segue {version}"
        try:
            marker = self.out.join(OUTPUT_MARKER)
            if read_if_file(marker) != MARKER_TEXT.encode():
                write_bytes(marker, MARKER_TEXT.encode())
            self.save()
        except OSError as exc:
            raise self._unwritable(exc) from exc

    def note(self, result: FileResult, planned: PlannedFile) -> None:
        """A finished file: a written one's size and sha256 go into the record (saved every
        so often, and at the end)."""
        if result.status == "written" and result.written is not None:
            key = self.key(planned)
            entry = self.record["outputs"].get(key)
            if isinstance(entry, dict):
                entry["output"] = {"size": result.written[0], "sha256": result.written[1]}
                self._dirty += 1
                try:
                    if self.out.local:
                        journal_append(self.out, key, entry["output"])  # known at once, whatever happens next
                    if self._dirty >= 64:
                        self.save()
                except OSError as exc:
                    if is_disk_full(exc):
                        raise disk_full(self.label, exc) from exc
                    raise

    def mark_stale(self, result: FileResult, planned: PlannedFile) -> FileResult:
        """A changed input that now fails (corrupted in place): its earlier output, still in
        OUT and looking valid, no longer matches it. The result and the record say so."""
        entry = self.record["outputs"].get(self.key(planned))
        if planned.reason != INPUT_CHANGED or result.status != "failed" or not isinstance(entry, dict):
            return result
        entry["stale"] = "made from an earlier version of its input, which changed and now fails"
        return replace(result, reason=f"{result.reason}; its earlier output {planned.output.uri} is stale (made from "
                       "this photo before it changed): delete it, or protect a good copy of the photo")

    def save(self) -> None:
        text = json.dumps(self.record, indent=1, sort_keys=True) + "\n"
        write_bytes(self.out.join(SETTINGS_FILE), text.encode("utf-8"))
        self._dirty = 0
        if self.out.local:
            journal_clear(self.out)

    def remove_stale_temps(self, planned: list[PlannedFile]) -> list[str]:
        """Delete the temp files (``.NAME.XXXXXXXX.tmp``, see ``storage.atomic_write``) that a
        killed run left beside this run's outputs and OUT's own files. Only safe while OUT is
        locked: a live run's temp files look the same."""
        if not self.out.local:
            return []
        names: dict[str, set[str]] = {self.out.path: {SETTINGS_FILE, OUTPUT_MARKER}}
        for item in planned:
            folder, name = os.path.split(item.output.path)
            names.setdefault(folder, set()).add(name)
        removed = []
        for folder, wanted in names.items():
            try:
                entries = list(os.scandir(folder))
            except OSError:
                continue
            for entry in entries:
                if entry.name.startswith(".") and entry.name.endswith(".tmp") and entry.is_file(follow_symlinks=False):
                    if entry.name[1:-4].rpartition(".")[0] in wanted:
                        os.unlink(entry.path)
                        removed.append(entry.path)
        return removed


def settings_id(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def settings_changes(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``name: old -> new`` for each setting that differs."""
    return [f"{name}: {recorded.get(name)!r} -> {current.get(name)!r}"
            for name in sorted(set(recorded) | set(current)) if recorded.get(name) != current.get(name)]


# --- the journal, ``.segue-protect.journal``: one JSON line per output as it is written (its key,
# size and sha256), so that the record knows every finished output even when the run ends before
# the record is saved again (a full disk, a kill); rewriting the whole record after each photo would
# cost time that grows with the folder. Saving the record folds the journal in and empties it;
# reading the record replays what it holds beyond that. Local OUT only (an object store has no append).


def journal_append(out: Location, key: str, made: dict[str, Any]) -> None:
    """Note one finished output (raises OSError: a full disk stops the run)."""
    line = json.dumps({"key": key, "output": made}, sort_keys=True) + "\n"
    with open(out.join(JOURNAL_FILE).path, "a", encoding="utf-8") as journal:
        journal.write(line)


def journal_replay(out: Location, outputs: dict[str, Any]) -> None:
    """Each journalled output into its record entry (a line cut short by a kill is ignored:
    that output is then not proven, and is redone)."""
    try:
        with open(out.join(JOURNAL_FILE).path, encoding="utf-8", errors="replace") as journal:
            lines = journal.read().splitlines()
    except FileNotFoundError:
        return
    for line in lines:
        try:
            noted = json.loads(line)
        except ValueError:
            continue
        if not isinstance(noted, dict) or not isinstance(noted.get("key"), str):
            continue
        entry = outputs.get(noted["key"])
        if isinstance(entry, dict) and isinstance(noted.get("output"), dict):
            entry["output"] = noted["output"]


def journal_clear(out: Location) -> None:
    """After the record was saved with everything the journal held."""
    try:
        os.unlink(out.join(JOURNAL_FILE).path)
    except FileNotFoundError:
        pass
