"""``protect()``: one ``segue protect`` job, planned here and run by an engine.

Planning is the same for every engine: inputs found, output names and skips
(``outputs``), side information (``side_information``), the settings record and the
lock. The local engine then streams the planned files through ``pipeline``; the Ray
engine (``segue_cli.engines``) runs them on a cluster."""

from __future__ import annotations

import time
from contextlib import nullcontext
from pathlib import Path
from typing import Callable

from .. import __version__
from ..errors import ConfigError, OutputError
from ..imageio import IMAGE_EXTENSIONS
from ..backends.base import PerturbationBackend
from ..backends.opening import open_backend
from ..storage import is_uri
from .config import ProtectConfig
from .outputs import (OUTPUT_MARKER, PlannedFile, check_out_dir, check_settings, collect_inputs, default_out_dir,
                      locked_out_dir, mark_out_dir, plan_outputs, record_settings, remove_stale_temps)
from .pipeline import Pipeline, default_planner, inference_threads, torch_threads_for_run
from .plans import Planner
from ..progress import ProgressCallback, ignore
from .results import MAX_NAMED, FileResult, ProtectSummary, result_recorder, run_started
from .side_information import output_settings, side_information


def protect(
    config: ProtectConfig,
    on_event: ProgressCallback | None = None,
    *,
    backend: PerturbationBackend | None = None,
    planner: Planner | None = None,
) -> ProtectSummary:
    """Protect every photo ``config`` names; failures are reported per file, never raised.

    ``planner`` replaces the one ``config.faces`` / ``config.detector`` ask for.

    Raises a SegueError only for problems with the run as a whole (bad options, missing
    input, unusable model, output folder inside the input).
    """
    emit = on_event or ignore
    remote = is_uri(config.input) or (config.out is not None and is_uri(config.out))
    if remote and config.engine != "ray":
        raise ConfigError(f"{config.input if is_uri(config.input) else config.out} is in an object store, "
                          "which the local engine does not read or write", "add --engine ray (pip install 'segue[ray]')")
    if config.engine == "ray":
        from ..extras import require

        require("protect --engine ray")
        from ..engines.ray_engine import check_address

        check_address(config.ray_address)
        if planner is not None:
            raise ConfigError("a custom planner runs in this process only", "use the local engine with a planner")
        if remote:
            from ..engines.object_store import protect_remote

            return protect_remote(config, emit)
    if config.cloak is not None:
        from ..cloak import shared_cloak

        shared_cloak(config.cloak)  # the extra and dlib's weights checked, and the network read, before any output
    inputs = collect_inputs(config.input, config.paths)
    out_dir = check_out_dir(inputs, Path(config.out) if config.out is not None else default_out_dir(inputs))
    planned_files = plan_outputs(inputs, out_dir, config.image_format, config.overwrite)
    backend = backend or open_backend(config.model, config.backend, config.device, threads=inference_threads(config.workers))
    side = side_information(config, inputs, backend.info.code_space)
    info = backend.info
    if planner is None:
        planner, protection = default_planner(config.faces, config.detector, info.image_size)
    else:
        protection = f"custom planner ({getattr(planner, '__name__', planner.__class__.__name__)})"
    if config.cloak is not None:
        protection += (f"; identity cloak against dlib's face network ({config.cloak.steps} steps a face, "
                       f"about {0.06 * config.cloak.steps:.1f} s a photo on one CPU thread)")
    summary = ProtectSummary(out_dir=out_dir, side_information=side.description,
                             model=str(info.model_path), model_sha256=info.model_sha256, backend=info.name,
                             device=info.device, image_format=config.image_format, epsilon=info.epsilon,
                             file_sha256=info.file_sha256, protection=protection, total=len(planned_files))
    if config.lossy_warning:
        summary.warnings.append(config.lossy_warning)
    if inputs.left_out:
        folders = ", ".join(str(f) for f in inputs.left_out[:3]) + (" ..." if len(inputs.left_out) > 3 else "")
        summary.warnings.append(f"left out {len(inputs.left_out)} output folder(s) of earlier runs ({OUTPUT_MARKER} inside): {folders}")
    for files, why, fix in (
        (inputs.not_images, "hidden file that is not an image (macOS ._* metadata and the like)", "nothing to do"),
        (inputs.unsupported, "a photo format segue cannot read (camera raw, JPEG XL, ...)",
         "convert it to JPEG, PNG or HEIC first"),
    ):
        summary.not_read += [{"path": str(f), "reason": why, "fix": fix} for f in files]
        if files:
            names = ", ".join(str(f) for f in files[:MAX_NAMED]) + (
                f" and {len(files) - MAX_NAMED} more (all in --json)" if len(files) > MAX_NAMED else "")
            summary.warnings.append(f"skipped {len(files)} file(s), each {why}: {names}"
                                    + ("" if fix == "nothing to do" else f"; {fix}"))
    if not planned_files:
        summary.warnings.append(f"no images found in {inputs.root} (looked for "
                                f"{' '.join(sorted(IMAGE_EXTENSIONS))})")
    settings = output_settings(config, side, info.model_sha256)
    writes = out_dir.exists() or any(planned.status == "todo" for planned in planned_files)
    if writes:
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _out_dir_error(out_dir, exc) from exc
    with locked_out_dir(out_dir, config.wait) if writes else nullcontext():
        record, planned_files = check_settings(out_dir, planned_files, settings)
        stale = remove_stale_temps(out_dir, planned_files) if writes else []
        if stale:
            summary.warnings.append(f"removed {len(stale)} temp file(s) an interrupted run left behind")
        if any(planned.status == "todo" for planned in planned_files):
            try:
                mark_out_dir(out_dir)
                record_settings(out_dir, record, planned_files, settings, __version__)
            except OSError as exc:
                raise _out_dir_error(out_dir, exc) from exc
        emit(run_started(summary))
        started = time.perf_counter()
        if config.engine == "ray":
            _run_on_ray(config, planned_files, side.code_of, summary, emit, out_dir)
        else:
            with torch_threads_for_run(backend, config.workers):
                Pipeline(config, backend, planner, summary, emit).run(planned_files, side.code_of)
        summary.seconds = time.perf_counter() - started
    return summary


def _run_on_ray(config: ProtectConfig, planned_files: list[PlannedFile], code_of: Callable[[PlannedFile], int],
                summary: ProtectSummary, emit: ProgressCallback, out_dir: Path) -> None:
    from ..engines import ray_engine

    finish = result_recorder(summary, emit)
    by_output = {str(planned.output): planned for planned in planned_files}
    rows = ray_engine.planned_rows(planned_files, code_of, lambda planned, status, reason, code: finish(
        FileResult(planned.source, planned.output, status, reason, code=code)))
    if rows:
        ray_engine.run_rows(config, rows, *ray_engine.local_roots(), lambda row: finish(FileResult(
            by_output[row["output"]].source, by_output[row["output"]].output, **ray_engine.result_fields(row))),
            progress=config.engine_progress)
    remove_stale_temps(out_dir, planned_files)  # what a worker killed mid-write left


def _out_dir_error(out_dir: Path, exc: OSError) -> OutputError:
    return OutputError(f"cannot create the output folder {out_dir}: {exc.strerror or exc}",
                       "check permissions and free space, or pass another --out")
