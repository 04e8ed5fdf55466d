"""``segue protect s3://bucket/photos --engine ray``: planning when INPUT or OUT is a URI.

The same rules as a local folder (``outputs``), on what an object store has: objects
under INPUT's prefix with an image suffix are the inputs (sorted), ``._*`` files are
macOS metadata and not read, prefixes with an earlier run's marker are left out, camera raw and the like are reported as unsupported; the
output of ``photos/a/b.jpg`` is ``OUT/a/b.png``; an output object that exists (and is not
empty) is skipped before anything is decoded; OUT's ``.segue-protect.json`` records the
settings and each input's size and mtime, with the same check as locally (a re-run under
other settings is refused; an input whose size or mtime changed is redone). What differs:
there is no lock (an object store has none: run one job per OUT), and the input
fingerprint has no sha256 (it would read every input twice).
"""

from __future__ import annotations

import posixpath
import time
from pathlib import Path, PurePosixPath
from typing import Any

from .. import __version__
from ..errors import ConfigError, OutputError
from ..imageio import UNSUPPORTED_PHOTO_EXTENSIONS, is_image_path
from ..protect.outputs import MARKER_TEXT, OUTPUT_MARKER, SETTINGS_FILE, InputSet, PlannedFile, checked_plan, output_relative, parse_record, updated_record
from ..storage import Location, exists, list_files, locate, read_if_file, write_bytes
from . import ray_engine



def default_out(source: Location) -> str:
    return source.uri.rstrip("/") + "-protected"


def protect_remote(config: Any, emit: Any) -> Any:
    """Plan and run a job whose INPUT or OUT is a URI (``protect.protect`` hands it here)."""
    from ..protect.results import FileResult, ProtectSummary, result_recorder, run_started
    from ..protect.side_information import output_settings, side_information
    from ..backends.opening import open_backend

    if str(config.input) == "-" or config.labels is not None:
        raise ConfigError("a URI INPUT is a prefix to list: stdin lists and --labels work on local files only",
                          "give the prefix (s3://bucket/photos), with --identity, --label or --by-folder")
    source = locate(config.input)
    out = locate(str(config.out) if config.out is not None else default_out(source))
    if type(source.filesystem) is type(out.filesystem) and (out.path + "/").startswith(source.path.rstrip("/") + "/"):
        raise OutputError(f"output {out.uri} is inside the input {source.uri}",
                          f"write elsewhere, e.g. the default {default_out(source)}")
    listed = list_files(source)
    # As locally: prefixes an earlier run wrote (its marker inside) are not inputs.
    marked = sorted(rel[: -len(OUTPUT_MARKER)] for rel, _, _ in listed if rel.endswith("/" + OUTPUT_MARKER))
    images = [(rel, size, mtime) for rel, size, mtime in listed
              if is_image_path(Path(rel)) and not posixpath.basename(rel).startswith("._")
              and not any(rel.startswith(prefix) for prefix in marked)]
    # An OUT that exists but cannot be listed stops the job: treated as empty, its outputs would be redone.
    existing = {rel: size for rel, size, _ in (list_files(out) if exists(out) else [])}
    fingerprints = {rel: {"size": size, "mtime_ns": mtime} for rel, size, mtime in images}
    planned: list[PlannedFile] = []
    claimed: set[str] = set()
    for rel, _, _ in images:
        target = output_relative(PurePosixPath(rel), config.image_format).as_posix()  # type: ignore[arg-type]
        status, reason = "todo", None
        if target in claimed:
            status, reason = "failed", f"its output {out.join(target).uri} is already another input's; rename one"
        elif existing.get(target) and not config.overwrite:
            status, reason = "skipped", "output exists (already protected; --overwrite to redo)"
        claimed.add(target)
        planned.append(PlannedFile(Path(rel), Path(rel), Path(target), status, reason))  # type: ignore[arg-type]

    backend = open_backend(config.model, config.backend, config.device, threads=1)
    info = backend.info
    root_name = PurePosixPath(source.path).name
    side = side_information(config, InputSet("folder", Path(root_name or "bucket"), ()), info.code_space)
    settings = output_settings(config, side, info.model_sha256)
    record = parse_record(read_if_file(out.join(SETTINGS_FILE)), out.join(SETTINGS_FILE).uri, out.uri)
    planned = checked_plan(record, planned, settings, lambda item: item.output.as_posix(),
                           lambda item, made_from: made_from is not None and made_from != fingerprints.get(
                               item.source.as_posix()), out.uri)
    summary = ProtectSummary(out_dir=out.uri, side_information=side.description, model=str(info.model_path),
                             model_sha256=info.model_sha256, backend=info.name, device=info.device,
                             image_format=config.image_format, epsilon=info.epsilon, file_sha256=info.file_sha256,
                             protection="faces " + config.faces + " (Ray workers)", total=len(planned))
    unsupported = [rel for rel, _, _ in listed if PurePosixPath(rel).suffix.lower() in UNSUPPORTED_PHOTO_EXTENSIONS]
    summary.not_read += [{"path": source.join(rel).uri, "reason": "a photo format segue cannot read",
                          "fix": "convert it to JPEG, PNG or HEIC first"} for rel in unsupported]
    if unsupported:
        summary.warnings.append(f"skipped {len(unsupported)} file(s) in formats segue cannot read (all in --json)")
    if marked:
        summary.warnings.append(f"left out {len(marked)} output folder(s) of earlier runs ({OUTPUT_MARKER} inside): "
                                + ", ".join(source.join(prefix.rstrip("/")).uri for prefix in marked))
    if not planned:
        summary.warnings.append(f"no images found under {source.uri}")
    if config.lossy_warning:
        summary.warnings.append(config.lossy_warning)
    if any(item.status == "todo" for item in planned):
        write_bytes(out.join(OUTPUT_MARKER), MARKER_TEXT.encode())
        text = updated_record(record, planned, settings, __version__, lambda item: item.output.as_posix(),
                              lambda item: fingerprints.get(item.source.as_posix()))
        write_bytes(out.join(SETTINGS_FILE), text.encode())
    emit(run_started(summary))

    finish = result_recorder(summary, emit)

    def uri_result(rel_source: str, rel_output: str, **fields: Any) -> Any:
        return FileResult(source.join(rel_source).uri, out.join(rel_output).uri, **fields)

    started = time.perf_counter()
    rows = ray_engine.planned_rows(planned, side.code_of, lambda item, status, reason, code: finish(
        uri_result(item.source.as_posix(), item.output.as_posix(), status=status, reason=reason, code=code)))
    if rows:
        ray_engine.run_rows(config, rows, source, out, lambda row: finish(
            uri_result(row["source"], row["output"], **ray_engine.result_fields(row))), progress=config.engine_progress)
    summary.seconds = time.perf_counter() - started
    return summary
