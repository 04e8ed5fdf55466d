"""``protect_folder()``: a ``segue protect`` job into a folder tree, planned here the same way
for every INPUT and OUT (a local folder, file or path list; an object-store prefix) and run
by an engine from the registry in ``segue_cli.engines``.

Planning: the engine's own checks (its extra, its cluster), the inputs (``inputs``), OUT
and the output names (``outputs``), the model, each file's code (``identities``),
the warnings, then, with OUT held, which existing outputs are done (the settings record).
The engine then turns the planned files into results, each counted in the summary,
reported, and noted in OUT's record.
"""

from __future__ import annotations

import time
from contextlib import nullcontext

from .. import __version__
from ..backends.base import PerturbationBackend, at_strength
from ..backends.opening import open_backend
from ..errors import ConfigError, DiskFullError, is_disk_full
from ..faces.networks import FACE_NETWORKS
from ..imageio import IMAGE_EXTENSIONS
from ..photo.plans import Planner, default_planner
from ..progress import ProgressCallback, ignore
from ..engines import ENGINES
from ..storage import exists, local, locate
from .config import FolderTree, PathList, Prefix, ProtectConfig
from .job import MAX_NAMED, FileResult, Job, ProtectSummary, result_recorder, run_started
from .inputs import OUTPUT_MARKER, InputSet, find_inputs
from .outputs import OutputTree, default_out, input_fingerprints
from .identities import output_settings, side_information


def protect_folder(config: ProtectConfig, on_event: ProgressCallback | None = None, *,
                   backend: PerturbationBackend | None = None, planner: Planner | None = None) -> ProtectSummary:
    """Protect every photo ``config`` names into a folder tree; failures are reported per file, never raised.

    ``planner`` replaces the one ``config.faces`` / ``config.detector`` ask for (local engine only).

    Raises a SegueError only for problems with the run as a whole (bad options, missing
    input, unusable model, output folder inside the input).
    """
    emit = on_event or ignore
    engine = ENGINES[config.engine]
    source, destination = config.source, config.destination
    assert isinstance(destination, FolderTree)
    remote = isinstance(source, Prefix) or destination.uri is not None
    if remote and not engine.remote:
        where = source.uri if isinstance(source, Prefix) else destination.uri
        raise ConfigError(f"{where} is in an object store, which the {config.engine} engine does not read or write",
                          "add --engine ray (pip install 'segue[ray]')")
    if planner is not None and not engine.in_process:
        raise ConfigError("a custom planner runs in this process only", "use the local engine with a planner")
    if remote and (isinstance(source, PathList) or config.labels is not None):
        raise ConfigError("a URI INPUT is a prefix to list: stdin lists and --labels work on local files only",
                          "give the prefix (s3://bucket/photos), with --identity, --label or --by-folder")
    engine.check(config)
    if config.cloak is not None:
        from ..photo.cloak import shared_cloak

        shared_cloak(config.cloak)  # the extra and dlib's weights checked, and the network read, before any output
    inputs = find_inputs(source)
    out = (locate(destination.uri) if destination.uri is not None else local(destination.path)
           if destination.path is not None else default_out(inputs))
    tree = OutputTree(out)
    tree.check_against(inputs)
    planned = tree.plan(inputs, config.image_format, config.overwrite)
    backend = at_strength(backend or open_backend(config.model, config.backend, config.device,
                                                  threads=config.generator_threads), config.strength)
    side = side_information(config, inputs, backend.info.code_space)
    info = backend.info
    if planner is None:
        planner, protection = default_planner(config.faces, config.detector, info.image_size)
    else:
        protection = f"custom planner ({getattr(planner, '__name__', planner.__class__.__name__)})"
    if config.engine != "local":
        protection += f" ({config.engine} workers)"
    if config.strength != "high":
        protection += f"; strength {config.strength} (epsilon {info.epsilon * 255:.1f}/255 of the model's bound)"
    if config.cloak is not None:
        seconds = config.cloak.steps * sum(FACE_NETWORKS[name].seconds_per_step for name in config.cloak.networks)
        protection += (f"; identity cloak against {', '.join(config.cloak.networks)} ({config.cloak.steps} steps a face, "
                       f"about {seconds:.1f} s a photo on one CPU thread)")
    summary = ProtectSummary(out_dir=tree.out.reported, side_information=side.description,
                             model=str(info.model_path), model_sha256=info.model_sha256, backend=info.name,
                             device=info.device, image_format=config.image_format, epsilon=info.epsilon,
                             file_sha256=info.file_sha256, protection=protection, total=len(planned),
                             cloak_networks=config.cloak.networks if config.cloak else ())
    _warn(summary, config, inputs)
    if info.note:
        summary.warnings.append(info.note)
    settings = output_settings(config, side, info.model_sha256)
    job = Job(config, planned, side.code_of, backend, planner, summary)
    writes = any(item.status == "todo" for item in planned) or exists(tree.out)
    with tree.held(config.wait) if writes else nullcontext():
        tree.read_record()
        job.files = tree.check_done(planned, settings, input_fingerprints(planned, inputs, with_hash=False))
        stale = tree.remove_stale_temps(job.files) if writes else []
        if stale:
            summary.warnings.append(f"removed {len(stale)} temp file(s) an interrupted run left behind")
        if any(item.status == "todo" for item in job.files):
            tree.start(job.files, settings, input_fingerprints(job.files, inputs, with_hash=True), __version__)
        emit(run_started(summary))
        by_output = {str(item.output.reported): item for item in job.files}
        record = result_recorder(summary, emit)

        stale_outputs: list[str] = []

        def finish(result: FileResult) -> None:
            item = by_output[str(result.output)]
            marked = tree.mark_stale(result, item)
            if marked is not result:
                stale_outputs.append(str(item.output.uri))
            tree.note(marked, item)
            record(marked)

        started = time.perf_counter()
        try:
            engine.run(job, finish)
        except DiskFullError as exc:  # stop at the first: the summary says what was written, the re-run does the rest
            left = summary.total - summary.written - summary.skipped - summary.failed
            summary.stopped = f"{exc.message}: stopped with {left} photo(s) not done; {exc.hint}"
        finally:
            if any(item.status == "todo" for item in job.files):
                _save(tree, summary)
            tree.remove_stale_temps(job.files)  # what a worker killed mid-write left
        summary.seconds = time.perf_counter() - started
    if stale_outputs:
        named = ", ".join(stale_outputs[:MAX_NAMED]) + (
            f" and {len(stale_outputs) - MAX_NAMED} more" if len(stale_outputs) > MAX_NAMED else "")
        summary.warnings.append(f"{len(stale_outputs)} output(s) are stale: made from inputs that changed since and now fail "
                                f"(each failure says which); delete them or protect good copies: {named}")
    return summary


def _save(tree: OutputTree, summary: ProtectSummary) -> None:
    """The record, saved at the end; on a full disk its journal already holds every output
    written (``journal``), so the re-run still knows them."""
    try:
        tree.save()
    except OSError as exc:
        if not (is_disk_full(exc) and summary.stopped):
            raise


def _warn(summary: ProtectSummary, config: ProtectConfig, inputs: InputSet) -> None:
    if config.lossy_warning:
        summary.warnings.append(config.lossy_warning)
    if inputs.left_out:
        folders = ", ".join(inputs.left_out[:3]) + (" ..." if len(inputs.left_out) > 3 else "")
        summary.warnings.append(f"left out {len(inputs.left_out)} output folder(s) of earlier runs ({OUTPUT_MARKER} inside): {folders}")
    for files, why, fix in (
        (inputs.not_images, "hidden file that is not an image (macOS ._* metadata and the like)", "nothing to do"),
        (inputs.unsupported, "a photo format segue cannot read (camera raw, JPEG XL, ...)",
         "convert it to JPEG, PNG or HEIC first"),
        (inputs.not_regular, "not a regular file (a FIFO, a device or a link to one), which segue never opens",
         "copy the photo into a regular file"),
    ):
        summary.not_read += [{"path": f, "reason": why, "fix": fix} for f in files]
        if files:
            names = ", ".join(files[:MAX_NAMED]) + (
                f" and {len(files) - MAX_NAMED} more (all in --json)" if len(files) > MAX_NAMED else "")
            summary.warnings.append(f"skipped {len(files)} file(s), each {why}: {names}"
                                    + ("" if fix == "nothing to do" else f"; {fix}"))
    if not inputs.files:
        where = inputs.root.path if inputs.root.local else inputs.root.uri
        summary.warnings.append(f"no images found in {where} (looked for {' '.join(sorted(IMAGE_EXTENSIONS))})")
