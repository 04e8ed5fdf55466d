"""Protect photos: decode -> generator -> encode, streamed.

A thread pool decodes photos ahead of the generator and encodes finished ones behind it,
while the calling thread batches generator inputs of the same shape through the backend.
Memory stays bounded whatever the folder size: at most ``prefetch()`` decodes (fewer
for big photos) and ``2 * workers`` encodes are in flight, and once the photos decoded
but not yet written hold more than ``MAX_LIVE_PIXELS``, partial batches are run and
encodes waited for before anything else is decoded.

What the generator sees of each photo, and how its output is mapped back, is decided
by a :data:`~segue_cli.plans.Planner`: by default :func:`~segue_cli.plans.face_planner`
(``ProtectConfig.faces``: each face's aligned crop for photos well above the working
size, the whole photo at working scale for face crops and photos without a face), or
any planner passed to :func:`protect` without touching the pipeline.
"""

from __future__ import annotations

import os
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Literal

import numpy as np

from . import __version__
from .artifacts import atomic_write, file_sha256
from .datasets import MIN_IMAGE_SIDE, read_labels_csv
from .errors import ConfigError, InputError, OutputError
from .imageio import DEFAULT_MAX_PIXELS, DEFAULT_QUALITY, IMAGE_EXTENSIONS, OUTPUT_FORMATS, LoadedImage, encode_image, load_image
from .outputs import (OUTPUT_MARKER, InputSet, PlannedFile, check_out_dir, check_settings, collect_inputs, default_out_dir,
                      locked_out_dir, mark_out_dir, plan_outputs, record_settings, remove_stale_temps)
from .face_detectors import DETECTOR_CHOICES, open_detector
from .plans import (AUTO_FACES_FACTOR, FACE_MODES, FaceMode, PhotoPlan, Planner, face_planner, luma_delta,
                    whole_image_plan, within_limit)
from .runtime import BACKEND_CHOICES, PerturbationBackend, open_backend
from .side_info import CodeSpace
from .engines import ENGINE_CHOICES
from .storage import is_uri

FORMATS = tuple(OUTPUT_FORMATS)
# Decoded photos not yet written (waiting for a batch or being encoded) are flushed or
# waited for beyond this many pixels (one 12 MP phone photo; about 240 face crops of 224
# px): with their protected copies about 100 MB, so that a run of 12 MP photos peaks near
# 0.9 GiB including torch (docs/protect.md).
MAX_LIVE_PIXELS = 12_000_000


def default_workers() -> int:
    """Half the cores (at most 8) decode and encode; the generator gets the other half:
    per photo both sides cost about the same CPU time (docs/benchmarks.md)."""
    return max(1, min(8, (os.cpu_count() or 1) // 2))


@dataclass(frozen=True)
class ProtectConfig:
    input: Path | str  # a folder, an image file, or "-" (the paths are in ``paths``)
    paths: tuple[str, ...] = ()
    out: Path | str | None = None  # default: <input root>-protected beside the input root; a URI for --engine ray
    identity: str | None = None
    label: int | None = None
    labels: Path | None = None
    by_folder: bool = False
    model: str | None = None
    backend: str = "auto"
    device: str = "auto"
    image_format: str = "png"
    quality: int | None = None  # jpeg/webp only; default 95
    keep_metadata: bool = False
    overwrite: bool = False
    workers: int = field(default_factory=default_workers)
    batch_size: int = 16
    max_pixels: int = DEFAULT_MAX_PIXELS
    faces: FaceMode = "auto"  # auto: face-aware above 2 x working size (plans.uses_faces); on; off
    detector: str = "auto"  # face detector: auto (YuNet, else dlib), yunet, dlib
    wait: bool = False  # wait for another run that holds OUT instead of refusing
    engine: str = "local"  # local (this machine's threads) or ray (engines/ray_engine.py)
    ray_address: str | None = None  # None: start a local Ray; "auto" or HOST:PORT: join a cluster
    actors: int | None = None  # Ray actors (None: one per CPU of the cluster)
    engine_progress: bool = True  # the Ray engine's own progress bars (off for --quiet and --json)

    def __post_init__(self) -> None:
        chosen = [name for name, given in (("--identity", self.identity is not None), ("--label", self.label is not None),
                                           ("--labels", self.labels is not None), ("--by-folder", self.by_folder)) if given]
        if len(chosen) > 1:
            raise ConfigError(f"{' and '.join(chosen)} cannot be combined", "give at most one source of side information")
        if self.image_format not in FORMATS:
            raise ConfigError(f"unknown format {self.image_format!r}", f"use one of {', '.join(FORMATS)}")
        if self.quality is not None:
            if not OUTPUT_FORMATS[self.image_format].lossy:
                lossy = " and ".join(name for name, fmt in OUTPUT_FORMATS.items() if fmt.lossy)
                raise ConfigError(f"--quality applies to {lossy} only", f"{self.image_format.upper()} is lossless; drop --quality")
            if not 1 <= self.quality <= 100:
                raise ConfigError(f"--quality {self.quality} is out of range", "use 1..100")
        if self.faces not in FACE_MODES:
            raise ConfigError(f"unknown face mode {self.faces!r}", f"use one of {', '.join(FACE_MODES)}")
        if self.detector not in DETECTOR_CHOICES:
            raise ConfigError(f"unknown face detector {self.detector!r}", f"use one of {', '.join(DETECTOR_CHOICES)}")
        if self.backend not in BACKEND_CHOICES:
            raise ConfigError(f"unknown backend {self.backend!r}", f"use one of {', '.join(BACKEND_CHOICES)}")
        if self.engine not in ENGINE_CHOICES:
            raise ConfigError(f"unknown engine {self.engine!r}", f"use one of {', '.join(ENGINE_CHOICES)}")
        if self.engine != "ray" and (self.ray_address is not None or self.actors is not None):
            raise ConfigError("--ray-address and --actors apply to --engine ray only", "add --engine ray")
        if self.actors is not None and self.actors < 1:
            raise ConfigError(f"--actors must be at least 1 (got {self.actors})")
        for name, value in (("--workers", self.workers), ("--batch-size", self.batch_size), ("--max-pixels", self.max_pixels)):
            if value < 1:
                raise ConfigError(f"{name} must be at least 1 (got {value})")
        if str(self.input) == "-" and not self.paths:
            raise InputError("no paths were given on stdin", "pipe one image path per line, e.g. find DIR -name '*.jpg' | segue protect -")

    @property
    def output_quality(self) -> int | None:
        """The JPEG/WebP quality the outputs get; None for lossless PNG."""
        return (self.quality or DEFAULT_QUALITY) if OUTPUT_FORMATS[self.image_format].lossy else None

    @property
    def lossy_warning(self) -> str | None:
        if self.output_quality is None:
            return None
        return (f"{self.image_format.upper()} at quality {self.output_quality} is lossy: compression removes part of "
                "the perturbation and weakens protection; PNG (the default) keeps all of it")


@dataclass(frozen=True)
class FileResult:
    source: Path | str  # a str for an object (s3://...)
    output: Path | str
    status: Literal["written", "skipped", "failed"]
    reason: str | None = None
    notes: tuple[str, ...] = ()
    code: int | None = None
    size: tuple[int, int] | None = None  # width, height
    details: dict[str, Any] = field(default_factory=dict)  # from the planner (e.g. faces found)

    def to_dict(self) -> dict[str, Any]:
        return {"type": "file", "input": str(self.source), "output": str(self.output), "status": self.status,
                "reason": self.reason, "notes": list(self.notes), "code": self.code,
                "width": self.size[0] if self.size else None, "height": self.size[1] if self.size else None,
                "details": self.details}


@dataclass
class ProtectSummary:
    out_dir: Path | str
    side_information: str
    model: str
    model_sha256: str
    backend: str
    device: str
    image_format: str
    epsilon: float = 0.0  # the model's L-inf bound, [0, 1] units
    file_sha256: str = ""  # of the model file actually run (checkpoint or its ONNX export)
    protection: str = "whole-image"
    total: int = 0
    written: int = 0
    skipped: int = 0
    failed: int = 0
    seconds: float = 0.0
    # Among the written photos: protected face by face (and how many faces), and
    # protected as a whole image because no face was found / as a face crop or --no-faces.
    face_aware: int = 0
    faces_found: int = 0
    no_face: int = 0
    whole_image: int = 0
    warnings: list[str] = field(default_factory=list)
    # Files left unread, each with why and the fix: hidden non-images, unreadable formats.
    not_read: list[dict[str, str]] = field(default_factory=list)
    failures: list[FileResult] = field(default_factory=list)

    @property
    def images_per_second(self) -> float:
        return self.written / self.seconds if self.seconds > 0 else 0.0

    def count(self, result: FileResult) -> None:
        setattr(self, result.status, getattr(self, result.status) + 1)
        if result.status == "failed":
            self.failures.append(result)
        elif result.status == "written":
            if result.details.get("protection") == "faces":
                self.face_aware += 1
                self.faces_found += int(result.details.get("faces_found") or 0)
            elif result.details.get("faces_found") == 0:
                self.no_face += 1
            else:
                self.whole_image += 1

    def to_dict(self) -> dict[str, Any]:
        return {"type": "summary", "out_dir": str(self.out_dir), "side_information": self.side_information,
                "model": self.model, "model_sha256": self.model_sha256, "model_file_sha256": self.file_sha256,
                "epsilon": self.epsilon,
                "backend": self.backend, "device": self.device,
                "format": self.image_format, "protection": self.protection, "total": self.total,
                "written": self.written, "skipped": self.skipped, "failed": self.failed,
                "face_aware": self.face_aware, "faces_found": self.faces_found, "no_face": self.no_face,
                "whole_image": self.whole_image, "seconds": round(self.seconds, 3),
                "images_per_second": round(self.images_per_second, 2), "warnings": self.warnings,
                "not_read": self.not_read}


MAX_NAMED = 20  # files named in one warning line; --json lists them all

EventCallback = Callable[[str, Any], None]
"""``("start", ProtectSummary)`` once the plan is known, then ``("file", FileResult)`` per file."""


@dataclass(frozen=True)
class SideInformation:
    description: str  # for the summary
    key: str  # what the codes depend on, for the output folder's settings record
    code_of: Callable[[PlannedFile], int]  # raises InputError for a file it has no code for


def side_information(config: ProtectConfig, inputs: InputSet, space: CodeSpace) -> SideInformation:
    """Where each file's code comes from. The default identity and --identity with the
    input folder's name give the same codes, and the same key."""
    if config.identity is not None:
        code = space.identity(config.identity)
        return SideInformation(f"identity {config.identity!r} (code {code})", f"identity {config.identity}",
                               lambda planned: code)
    if config.label is not None:
        code = space.label(config.label)
        return SideInformation(f"label {config.label} (code {code})", f"label {config.label}", lambda planned: code)
    if config.labels is not None:
        listed = read_labels_csv(config.labels)
        by_path = {os.path.realpath(item.path): item.identity for item in listed.items}

        def from_csv(planned: PlannedFile) -> int:
            identity = by_path.get(os.path.realpath(planned.source))
            if identity is None:
                raise InputError(f"not listed in {config.labels}", "add it to the labels file, or protect it separately")
            return space.folder(identity)

        return SideInformation(f"labels from {config.labels} ({len(listed.identities)} identities)",
                               f"labels file sha256 {file_sha256(config.labels)}", from_csv)
    if config.by_folder:

        def from_folder(planned: PlannedFile) -> int:
            if inputs.kind == "file":
                return space.folder(inputs.root.name)
            if len(planned.relative.parts) < 2:
                raise InputError("is not inside an identity sub-folder (--by-folder)",
                                 "move it into <identity>/, or protect it with --identity NAME")
            return space.folder(planned.relative.parts[0])

        return SideInformation("identity = first sub-folder under the input (--by-folder)", "by folder", from_folder)
    name = inputs.root.name
    if not name:
        raise ConfigError(f"cannot name a default identity after {inputs.root}", "pass --identity NAME")
    code = space.identity(name)
    return SideInformation(f"identity {name!r} (code {code}), the default: the input folder's name; "
                           "pass --identity NAME to choose it", f"identity {name}", lambda planned: code)


def output_settings(config: ProtectConfig, side: SideInformation, model_sha256: str) -> dict[str, Any]:
    """What decides a protected photo's pixels, recorded in OUT so that a re-run under
    other settings is not silently skipped."""
    return {"model_sha256": model_sha256, "side_information": side.key, "faces": config.faces,
            "detector": config.detector if config.faces != "off" else None, "format": config.image_format,
            "quality": config.output_quality, "keep_metadata": config.keep_metadata}


@dataclass
class _Job:
    planned: PlannedFile
    code: int
    image: LoadedImage
    plan: PhotoPlan
    deltas: list[np.ndarray | None]
    pending: int

    @property
    def pixels(self) -> int:
        return self.image.rgb.shape[0] * self.image.rgb.shape[1]


def default_planner(faces: FaceMode, detector_name: str, working_size: int) -> tuple[Planner, str]:
    """The planner ``faces`` asks for, with its detector opened once for the run, and a
    description for the summary."""
    if faces == "off":
        return whole_image_plan, "whole-image (--no-faces)"
    detector = open_detector(detector_name)
    if faces == "on":
        return face_planner(detector, "on"), (f"face-aware on every photo (--faces, detector {detector.name}); "
                                              "photos without a face: whole-image")
    threshold = AUTO_FACES_FACTOR * working_size
    return face_planner(detector, "auto"), (
        f"face-aware (detector {detector.name}) for photos whose shorter side is over {threshold} px "
        f"({AUTO_FACES_FACTOR} x the model's {working_size} px working size), whole-image for smaller ones "
        "(face crops) and photos without a face; --faces / --no-faces to force")


def decode_photo(source: Path | bytes, working_size: int, epsilon: float, max_pixels: int, planner: Planner
                 ) -> tuple[LoadedImage, PhotoPlan]:
    """A photo (a path or its file's bytes) decoded and planned: every engine's first step."""
    image = load_image(source, max_pixels=max_pixels)
    height, width = image.size
    if min(height, width) < MIN_IMAGE_SIDE:
        raise InputError(f"{width}x{height} is too small (need at least {MIN_IMAGE_SIDE} px a side)")
    return image, planner(image.rgb, working_size, epsilon)


def failure_reason(exc: BaseException, path: Path | str) -> str:
    """The user-facing reason, without repeating the path the report already names."""
    if isinstance(exc, InputError):
        text = exc.message.removeprefix(f"{path}: ").removeprefix("<bytes>: ")
        return f"{text} ({exc.hint})" if exc.hint else text
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
    return f"internal error ({exc.__class__.__name__}: {exc})"


class _Pipeline:
    """Runs on the calling thread; only the pool's tasks (decode, compose + encode) run elsewhere."""

    def __init__(self, config: ProtectConfig, backend: PerturbationBackend, planner: Planner,
                 summary: ProtectSummary, emit: EventCallback) -> None:
        self.config, self.backend, self.planner, self.summary, self.emit = config, backend, planner, summary, emit
        self.pool = ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="segue-io")
        self.decoding: deque[tuple[PlannedFile, int, Future]] = deque()
        self.encoding: deque[tuple[int, Future]] = deque()  # (pixels, future)
        self.buckets: dict[tuple[int, ...], list[tuple[_Job, int]]] = {}
        self.live_pixels = 0  # photos decoded and not yet written: in buckets or being encoded
        self.recent_pixels = 0  # the last decoded photo's size, to size the decode prefetch

    def prefetch(self) -> int:
        """Decodes kept in flight: enough to feed a batch while the generator runs, fewer
        for big photos (and for the first ones, whose size is not known yet)."""
        most = max(2 * self.config.workers, self.config.batch_size)
        if not self.recent_pixels:
            return self.config.workers
        return max(self.config.workers, min(most, MAX_LIVE_PIXELS // self.recent_pixels))

    def finish(self, result: FileResult) -> None:
        self.summary.count(result)
        self.emit("file", result)

    def fail(self, planned: PlannedFile, reason: str, code: int | None = None, notes: tuple[str, ...] = ()) -> None:
        self.finish(FileResult(planned.source, planned.output, "failed", reason, notes, code))

    def run(self, planned_files: list[PlannedFile], code_of: Callable[[PlannedFile], int]) -> None:
        try:
            for planned in planned_files:
                if planned.status != "todo":
                    self.finish(FileResult(planned.source, planned.output, planned.status, planned.reason))
                    continue
                try:
                    code = code_of(planned)
                except InputError as exc:
                    self.fail(planned, failure_reason(exc, planned.source))
                    continue
                info = self.backend.info
                future = self.pool.submit(decode_photo, planned.source, info.image_size, info.epsilon, self.config.max_pixels, self.planner)
                self.decoding.append((planned, code, future))
                while len(self.decoding) >= self.prefetch():
                    self._take_decoded()
            while self.decoding:
                self._take_decoded()
            while self.buckets:
                self._run_fullest_batch()
            while self.encoding:
                self._take_encoded()
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def _take_decoded(self) -> None:
        planned, code, future = self.decoding.popleft()
        try:
            image, plan = future.result()
        except Exception as exc:  # noqa: BLE001 (every failure is reported against its file)
            self.fail(planned, failure_reason(exc, planned.source), code)
            return
        job = _Job(planned, code, image, plan, [None] * len(plan.inputs), len(plan.inputs))
        self.live_pixels += job.pixels
        self.recent_pixels = job.pixels
        if not plan.inputs:
            self._encode(job)
        for index, pixels in enumerate(plan.inputs):
            bucket = self.buckets.setdefault(pixels.shape, [])
            bucket.append((job, index))
            if len(bucket) >= self.config.batch_size:
                self._run_batch(pixels.shape)
        while self.live_pixels > MAX_LIVE_PIXELS and (self.buckets or self.encoding):
            if self.buckets:
                self._run_fullest_batch()  # partial batch: memory comes first
            else:
                self._take_encoded()
        while self.encoding and self.encoding[0][1].done():
            self._take_encoded()

    def _run_fullest_batch(self) -> None:
        self._run_batch(max(self.buckets, key=lambda shape: len(self.buckets[shape])))

    def _run_batch(self, shape: tuple[int, ...]) -> None:
        entries = self.buckets.pop(shape)
        images = np.stack([job.plan.inputs[index] for job, index in entries])
        codes = np.array([job.code for job, _ in entries], dtype=np.int64)
        try:
            deltas = self.backend.perturb(images, codes)
        except Exception as exc:  # noqa: BLE001
            deltas, error = None, generator_failure(exc)
        for position, (job, index) in enumerate(entries):
            if job.pending <= 0:
                continue  # already failed through another of its inputs
            if deltas is None:
                job.pending = 0
                self.live_pixels -= job.pixels
                self.fail(job.planned, error, job.code, tuple(job.image.notes + job.plan.notes))
                continue
            job.deltas[index] = deltas[position]
            job.pending -= 1
            if job.pending == 0:
                self._encode(job)

    def _encode(self, job: _Job) -> None:
        self.encoding.append((job.pixels, self.pool.submit(_encode, job, self.config, self.backend.info.epsilon)))
        while len(self.encoding) > 2 * self.config.workers:
            self._take_encoded()

    def _take_encoded(self) -> None:
        pixels, future = self.encoding.popleft()
        self.live_pixels -= pixels
        self.finish(future.result())


def compose_protected(image: LoadedImage, plan: PhotoPlan, deltas: list[np.ndarray], epsilon: float) -> np.ndarray:
    """The protected pixels of one photo from the generator's deltas: composed at full
    resolution by its plan (a black-and-white photo gets their luminance only), then
    checked against the bound. Shared by the folder pipeline and ``Protector``."""
    protected = plan.compose([luma_delta(d) for d in deltas] if image.grayscale else deltas)
    if not within_limit(image.rgb, protected, epsilon):
        raise RuntimeError(f"the planned output moves pixels by more than epsilon = {epsilon:.4f}; not written")
    return protected


def encode_protected(image: LoadedImage, plan: PhotoPlan, deltas: list[np.ndarray], config: ProtectConfig,
                     epsilon: float) -> tuple[bytes, list[str]]:
    """The output file's bytes and the notes for its report: every engine's last step
    before writing, so that engines write byte-identical files."""
    notes = list(image.notes) + list(plan.notes)
    protected = compose_protected(image, plan, deltas, epsilon)
    if image.alpha is not None and config.image_format == "jpeg":
        notes.append("transparency dropped: JPEG has no alpha channel")
    data = encode_image(protected, alpha=image.alpha, image_format=config.image_format,
                        quality=config.output_quality or DEFAULT_QUALITY, icc_profile=image.icc_profile,
                        exif=image.exif if config.keep_metadata else None)
    return data, notes


def _encode(job: _Job, config: ProtectConfig, epsilon: float) -> FileResult:
    image, planned = job.image, job.planned
    height, width = image.size
    done: dict[str, Any] = dict(code=job.code, size=(width, height), details=job.plan.details)
    notes = list(image.notes) + list(job.plan.notes)
    try:
        data, notes = encode_protected(image, job.plan, [d for d in job.deltas if d is not None], config, epsilon)
        atomic_write(planned.output, lambda tmp: tmp.write_bytes(data))
    except Exception as exc:  # noqa: BLE001
        return FileResult(planned.source, planned.output, "failed", write_failure(exc, planned.source, planned.output),
                          tuple(notes), **done)
    return FileResult(planned.source, planned.output, "written", None, tuple(notes), **done)


def write_failure(exc: BaseException, source: Path | str, output: Path | str) -> str:
    """Why composing, encoding or writing one output failed (every engine's wording)."""
    if isinstance(exc, OSError):
        return f"cannot write {output}: {exc.strerror or exc}"
    return failure_reason(exc, source)


def generator_failure(exc: BaseException) -> str:
    """Why a batch's generator call failed, for each of its files (every engine's wording)."""
    return f"the generator failed on this batch ({exc.__class__.__name__}: {exc})"


def protect(
    config: ProtectConfig,
    on_event: EventCallback | None = None,
    *,
    backend: PerturbationBackend | None = None,
    planner: Planner | None = None,
) -> ProtectSummary:
    """Protect every photo ``config`` names; failures are reported per file, never raised.

    ``planner`` replaces the one ``config.faces`` / ``config.detector`` ask for.

    Raises a SegueError only for problems with the run as a whole (bad options, missing
    input, unusable model, output folder inside the input).
    """
    emit = on_event or (lambda event, payload: None)
    remote = is_uri(config.input) or (config.out is not None and is_uri(config.out))
    if remote and config.engine != "ray":
        raise ConfigError(f"{config.input if is_uri(config.input) else config.out} is in an object store, "
                          "which the local engine does not read or write", "add --engine ray (pip install 'segue[ray]')")
    if config.engine == "ray":
        from .extras import require

        require("protect --engine ray")
        from .engines.ray_engine import check_address

        check_address(config.ray_address)
        if planner is not None:
            raise ConfigError("a custom planner runs in this process only", "use the local engine with a planner")
        if remote:
            from .engines.object_store import protect_remote

            return protect_remote(config, emit)
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
        emit("start", summary)
        started = time.perf_counter()
        if config.engine == "ray":
            _run_on_ray(config, planned_files, side.code_of, summary, emit, out_dir)
        else:
            with _inference_threads(backend, config.workers):
                _Pipeline(config, backend, planner, summary, emit).run(planned_files, side.code_of)
        summary.seconds = time.perf_counter() - started
    return summary


def _run_on_ray(config: ProtectConfig, planned_files: list[PlannedFile], code_of: Callable[[PlannedFile], int],
                summary: ProtectSummary, emit: EventCallback, out_dir: Path) -> None:
    from .engines import ray_engine

    def finish(result: FileResult) -> None:
        summary.count(result)
        emit("file", result)

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


def inference_threads(io_workers: int) -> int:
    """Leave the I/O threads their cores: the generator gets the rest (at least one).
    Oversubscribed, the generator's intra-op threads spin against the encoders and both
    slow down (about 4x on a busy 2-core machine)."""
    return max(1, (os.cpu_count() or 1) - io_workers)


@contextmanager
def _inference_threads(backend: PerturbationBackend, io_workers: int) -> Iterator[None]:
    """torch's thread count is process-wide: set it for the run, then put it back."""
    if backend.info.name != "torch" or backend.info.device != "cpu":
        yield
        return
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(inference_threads(io_workers))
    try:
        yield
    finally:
        torch.set_num_threads(previous)
