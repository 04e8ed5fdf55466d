"""The streaming pipeline: decode -> generator -> encode.

A thread pool decodes photos ahead of the generator and encodes finished ones behind it,
while the calling thread batches generator inputs of the same shape through the backend.
Memory stays bounded whatever the folder size: at most ``prefetch()`` decodes (fewer
for big photos) and ``2 * max(workers, batch_size)`` encodes are in flight (so the
generator runs the next batch while the last one is encoded), and once the photos decoded
but not yet written hold more than ``MAX_LIVE_PIXELS``, partial batches are run and
encodes waited for before anything else is decoded.

What the generator sees of each photo, and how its output is mapped back, is decided
by a :data:`~segue_cli.protect.plans.Planner`: by default :func:`~segue_cli.protect.plans.face_planner`
(``ProtectConfig.faces``: each face's aligned crop for photos well above the working
size, the whole photo at working scale for face crops and photos without a face), or
any planner passed to :func:`protect` without touching the pipeline.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from ..artifacts import atomic_write
from ..cloak import IdentityCloak, shared_cloak
from ..datasets import too_small
from ..errors import InputError
from ..faces.detectors import open_detector
from ..formats import DEFAULT_QUALITY
from ..imageio import LoadedImage, encode_image, load_image
from ..backends.base import PerturbationBackend
from .config import ProtectConfig
from .outputs import PlannedFile
from .plans import AUTO_FACES_FACTOR, PhotoPlan, Planner, face_planner, luma_delta, whole_image_plan, within_limit
from ..choices import FaceMode
from ..progress import ProgressCallback
from .results import FileResult, ProtectSummary, result_recorder

# Decoded photos not yet written (waiting for a batch or being encoded) are flushed or
# waited for beyond this many pixels (one 12 MP phone photo; about 240 face crops of 224
# px): with their protected copies about 100 MB, so that a run of 12 MP photos peaks near
# 0.9 GiB including torch (docs/protect.md).
MAX_LIVE_PIXELS = 12_000_000


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
    problem = too_small(*image.size)
    if problem:
        raise InputError(problem)
    return image, planner(image.rgb, working_size, epsilon)


def failure_reason(exc: BaseException, path: Path | str) -> str:
    """The user-facing reason, without repeating the path the report already names."""
    if isinstance(exc, InputError):
        text = exc.message.removeprefix(f"{path}: ").removeprefix("<bytes>: ")
        return f"{text} ({exc.hint})" if exc.hint else text
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
    return f"internal error ({exc.__class__.__name__}: {exc})"


class Pipeline:
    """Runs on the calling thread; only the pool's tasks (decode, compose + encode) run elsewhere."""

    def __init__(self, config: ProtectConfig, backend: PerturbationBackend, planner: Planner,
                 summary: ProtectSummary, emit: ProgressCallback) -> None:
        self.config, self.backend, self.planner, self.summary, self.emit = config, backend, planner, summary, emit
        self.record = result_recorder(summary, emit)
        self.pool = ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="segue-io")
        self.decoding: deque[tuple[PlannedFile, int, Future]] = deque()
        self.encoding: deque[tuple[int, Future]] = deque()  # (pixels, future)
        self.buckets: dict[tuple[int, ...], list[tuple[_Job, int]]] = {}
        self.live_pixels = 0  # photos decoded and not yet written: in buckets or being encoded
        self.recent_pixels = 0  # the last decoded photo's size, to size the decode prefetch

    def prefetch(self) -> int:
        """Decodes kept in flight: enough to feed a batch while the generator runs, fewer
        for big photos (and for the first ones, whose size is not known yet)."""
        most = max(2 * self.config.workers, 2 * self.config.batch_size)
        if not self.recent_pixels:
            return self.config.workers
        return max(self.config.workers, min(most, MAX_LIVE_PIXELS // self.recent_pixels))

    def finish(self, result: FileResult) -> None:
        self.record(result)

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
        while len(self.encoding) > 2 * max(self.config.workers, self.config.batch_size):
            self._take_encoded()

    def _take_encoded(self) -> None:
        pixels, future = self.encoding.popleft()
        self.live_pixels -= pixels
        self.finish(future.result())


def compose_protected(image: LoadedImage, plan: PhotoPlan, deltas: list[np.ndarray], epsilon: float,
                      cloak: IdentityCloak | None = None) -> np.ndarray:
    """The protected pixels of one photo from the generator's deltas: composed at full
    resolution by its plan (a black-and-white photo gets their luminance only), cloaked
    against dlib's face network when ``cloak`` is given (its figures go into the plan's
    details), then checked against the bound. Shared by every engine and ``Protector``."""
    protected = plan.compose([luma_delta(d) for d in deltas] if image.grayscale else deltas)
    if cloak is not None:
        cloaked = cloak.cloak(image.rgb, protected, epsilon)
        protected = cloaked.pixels
        plan.details.update(cloak_similarity=round(cloaked.similarity, 4), cloak_face_found=cloaked.face_found)
        if not cloaked.face_found:
            plan.notes.append("identity cloak: no face found; the centre of the photo was cloaked as a face crop, "
                              "as a face-recognition system that finds no face would take it")
    if not within_limit(image.rgb, protected, epsilon):
        raise RuntimeError(f"the planned output moves pixels by more than epsilon = {epsilon:.4f}; not written")
    return protected


def encode_protected(image: LoadedImage, plan: PhotoPlan, deltas: list[np.ndarray], config: ProtectConfig,
                     epsilon: float) -> tuple[bytes, list[str]]:
    """The output file's bytes and the notes for its report: every engine's last step
    before writing, so that engines write byte-identical files."""
    protected = compose_protected(image, plan, deltas, epsilon, shared_cloak(config.cloak) if config.cloak else None)
    notes = list(image.notes) + list(plan.notes)
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


def inference_threads(io_workers: int) -> int:
    """Leave the I/O threads their cores: the generator gets the rest (at least one).
    Oversubscribed, the generator's intra-op threads spin against the encoders and both
    slow down (about 4x on a busy 2-core machine)."""
    return max(1, (os.cpu_count() or 1) - io_workers)


@contextmanager
def torch_threads_for_run(backend: PerturbationBackend, io_workers: int) -> Iterator[None]:
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
