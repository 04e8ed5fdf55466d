"""``protect_folder()``: a ``segue protect`` job into a folder tree, planned here the same way
for every INPUT and OUT (a local folder, file or path list; an object-store prefix) and run
by an engine from the registry in ``segue_cli.engines``.

Planning: the engine's own checks (its extra, its cluster), the inputs (``inputs``), OUT
and the output names (``outputs``), the model, each file's code (:func:`side_information`,
below: ``--identity``, ``--label``, ``--labels``, ``--by-folder`` or the input folder's name;
the mapping from a name or label to a code is :class:`segue_cli.nn.codes.CodeSpace`'s), the
warnings, then, with OUT held (:func:`locked_out_dir`, below: one run per OUT), which
existing outputs are done (the settings record, whose settings make a re-run under other
settings refuse instead of skipping). The engine then turns the planned files into results,
each counted in the summary, reported, and noted in OUT's record.
"""

from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterator

from .. import __version__
from ..backends import PerturbationBackend, at_strength, open_backend
from ..choices import load
from ..datasets import read_labels_csv
from ..errors import ConfigError, DiskFullError, InputError, OutputError, disk_full, is_disk_full
from ..faces.networks import FACE_NETWORKS
from ..imageio import IMAGE_EXTENSIONS
from ..nn.codes import CodeSpace
from ..photo.compose import Planner, default_planner
from ..progress import ProgressCallback, ignore
from ..engines import ENGINES
from ..storage import exists, file_sha256, local, locate
from .config import FolderTree, PathList, Prefix, ProtectConfig
from .job import MAX_NAMED, FileResult, Job, PlannedFile, ProtectSummary, default_identity, result_recorder, run_started
from .inputs import OUTPUT_MARKER, InputSet, find_inputs, input_fingerprints
from .outputs import LOCK_FILE, OutputTree, default_out


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
    if config.cloak is not None and config.cloak.pairs_people and (remote or not (config.by_folder or config.labels)):
        raise ConfigError("--cloak-target others pairs the people of one run, so it needs local photos of several "
                          "people named by --by-folder or --labels",
                          "e.g. segue protect ROOT --by-folder --cloak --cloak-target others (for photos in an object "
                          "store: copy them here first, or give --cloak-target PATH; a decoy folder named others: ./others)")
    if remote and (isinstance(source, PathList) or config.labels is not None):
        raise ConfigError("a URI INPUT is a prefix to list: stdin lists and --labels work on local files only",
                          "give the prefix (s3://bucket/photos), with --identity, --label or --by-folder")
    if engine.check:
        load(engine.check)(config)
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
    job = Job(config, planned, side.code_of, backend, planner, summary, side.person_of)
    writes = any(item.status == "todo" for item in planned) or exists(tree.out)
    with locked_out_dir(Path(tree.out.path), config.wait) if writes and tree.out.local else nullcontext():
        tree.read_record()
        job.files = tree.check_done(planned, settings, input_fingerprints(planned, inputs, with_hash=False))
        stale = tree.remove_stale_temps(job.files) if writes else []
        if stale:
            summary.warnings.append(f"removed {len(stale)} temp file(s) an interrupted run left behind")
        if any(item.status == "todo" for item in job.files):
            if config.cloak is not None and config.cloak.pairs_people:  # before OUT's record: it may refuse
                job.config = _paired(config, job.files, side, summary, emit)
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
            engine.load()(job, finish)
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


def _paired(config: ProtectConfig, files: list[PlannedFile], side: SideInformation, summary: ProtectSummary,
            emit: ProgressCallback) -> ProtectConfig:
    """``--cloak-target others``: the run's people paired from every photo of the run (done
    ones too, so a re-run pairs them as the first did); the config the engine runs with."""
    from dataclasses import replace

    from ..photo.cloak import shared_cloak
    from ..photo.cloak_targets import run_person_targets
    from ..progress import start_task, step

    assert config.cloak is not None and side.person_of is not None
    photos = []
    for item in files:
        if item.status == "failed":
            continue
        try:
            photos.append((Path(item.source.path), side.person_of(item)))
        except InputError:
            continue  # a file with no person (not in --labels, not in a sub-folder) fails when protected, and says why
    emit(start_task("pairing_start", "pairing", "reading every person's face for --cloak-target others", len(photos)))
    targets, people, unreadable = run_person_targets(shared_cloak(config.cloak), photos, config.max_pixels,
                                                     lambda: emit(step("pairing", "pairing")))
    summary.protection += (f"; each of {len(targets)} people cloaked toward the least similar other person of the run"
                           + (f" ({people - len(targets)} with no face found: away from themselves only)"
                              if people > len(targets) else ""))
    if unreadable:
        summary.warnings.append(f"--cloak-target others: {unreadable} photo(s) could not be read for the pairing "
                                "(each fails below with its reason)")
    return replace(config, cloak=replace(config.cloak, person_targets=targets))


def _save(tree: OutputTree, summary: ProtectSummary) -> None:
    """The record, saved at the end; on a full disk its journal already holds every output
    written (``outputs.journal_append``), so the re-run still knows them."""
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


# --- which code each file gets ------------------------------------------------------------
@dataclass(frozen=True)
class SideInformation:
    description: str  # for the summary
    key: str  # what the codes depend on, for the output folder's settings record
    code_of: Callable[[PlannedFile], int]  # raises InputError for a file it has no code for
    # The person's name (--by-folder, --labels; None where one person is named for all), which
    # --cloak-target others pairs: two people may share a code, never a name.
    person_of: Callable[[PlannedFile], str] | None = None


def side_information(config: ProtectConfig, inputs: InputSet, space: CodeSpace) -> SideInformation:
    """Where each file's code comes from. The default identity and --identity with the
    input folder's name give the same codes, and the same key."""
    if config.identity is not None:
        code = space.identity(config.identity)
        return SideInformation(f"identity {config.identity!r} (code {code}{space.of_decoys()})", f"identity {config.identity}",
                               lambda planned: code)
    if config.label is not None:
        code = space.label(config.label)
        return SideInformation(f"label {config.label} (code {code}{space.of_decoys()})", f"label {config.label}", lambda planned: code)
    if config.labels is not None:
        listed = read_labels_csv(config.labels)
        by_path = {os.path.realpath(item.path): item.identity for item in listed.items}

        def listed_person(planned: PlannedFile) -> str:
            identity = by_path.get(os.path.realpath(planned.source.path))
            if identity is None:
                raise InputError(f"not listed in {config.labels}", "add it to the labels file, or protect it separately")
            return identity

        return SideInformation(f"labels from {config.labels} ({len(listed.identities)} identities)",
                               f"labels file sha256 {file_sha256(config.labels)}",
                               lambda planned: space.folder(listed_person(planned)), listed_person)
    if config.by_folder:

        def folder_person(planned: PlannedFile) -> str:
            if inputs.kind == "file":
                return os.path.basename(inputs.root.path)
            if len(planned.relative.parts) < 2:
                raise InputError("is not inside an identity sub-folder (--by-folder)",
                                 "move it into <identity>/, or protect it with --identity NAME")
            return planned.relative.parts[0]

        return SideInformation("identity = first sub-folder under the input (--by-folder)", "by folder",
                               lambda planned: space.folder(folder_person(planned)), folder_person)
    name = PurePosixPath(inputs.root.path).name
    if not name:
        raise ConfigError(f"cannot name a default identity after {inputs.root.uri}", "pass --identity NAME")
    code = space.identity(name)
    where = {"folder": "the input folder", "file": "the folder the file is in"}.get(inputs.kind, "the input's folder")
    return SideInformation(default_identity(name, f"code {code}{space.of_decoys()}", where), f"identity {name}",
                           lambda planned: code)


def output_settings(config: ProtectConfig, side: SideInformation, model_sha256: str) -> dict[str, Any]:
    """What decides a protected photo's pixels, recorded in OUT so that a re-run under
    other settings is not silently skipped."""
    return {"model_sha256": model_sha256, "side_information": side.key, "faces": config.faces,
            "detector": config.detector if config.faces != "off" else None, "format": config.image_format,
            "quality": config.output_quality, "keep_metadata": config.keep_metadata,
            **({"cloak_steps": config.cloak.steps, "cloak_epsilon": config.cloak.epsilon} if config.cloak else {}),
            **({"cloak_split": config.cloak.split} if config.cloak and config.cloak.split != "clip" else {}),
            **({"cloak_jitter": config.cloak.jitter} if config.cloak and config.cloak.jitter else {}),
            **({"cloak_texture": config.cloak.texture} if config.cloak and config.cloak.texture else {}),
            # Always, defaults included: issue 40 changed what a plain --cloak makes (three networks and a
            # target, where it was dlib alone), so an OUT cloaked before then must not count as done.
            **({"cloak_networks": list(config.cloak.networks), "cloak_target": config.cloak.target_key(),
                "cloak_smoothing": config.cloak.smoothing} if config.cloak else {}),
            **({"strength": config.strength} if config.strength != "high" else {})}  # absent at their defaults: older records still match


# --- one run at a time per OUT ------------------------------------------------------------
@contextmanager
def locked_out_dir(out_dir: Path, wait: bool = False) -> Iterator[None]:
    """Hold OUT for one run (an OS lock on OUT/.segue-lock, released when the process
    ends, however it ends; the file is removed after a run). A second run into the same
    OUT is refused, naming the first run's pid, or waits for it with ``wait``: two runs
    would both write every file and, with different identities, leave a silent mix."""
    path = out_dir / LOCK_FILE
    while True:
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            handle = open(path, "a+", encoding="utf-8")
        except OSError as exc:
            if is_disk_full(exc):
                raise disk_full(out_dir, exc) from exc
            raise OutputError(f"cannot write to the output folder {out_dir}: {exc.strerror or exc} ({path})",
                              "check its permissions (a read-only folder cannot hold protected photos), "
                              "or pass another --out") from exc
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
