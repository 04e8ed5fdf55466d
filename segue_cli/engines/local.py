"""The local engine: a planned job streamed decode -> generator -> encode on this machine.

A thread pool decodes photos ahead of the generator and encodes finished ones behind it,
while the calling thread batches generator inputs of the same shape through the backend.
Memory stays bounded whatever the folder size: at most ``prefetch()`` decodes (fewer
for big photos) and ``2 * max(workers, batch_size)`` encodes are in flight (so the
generator runs the next batch while the last one is encoded), and once the photos decoded
but not yet written hold more than ``MAX_LIVE_PIXELS``, partial batches are run and
encodes waited for before anything else is decoded.

What the generator sees of each photo, and how its output is mapped back, is decided
by a :data:`~segue_cli.photo.compose.Planner`: by default :func:`~segue_cli.photo.compose.face_planner`
(``ProtectConfig.faces``: each face's aligned crop for photos well above the working
size, the whole photo at working scale for face crops and photos without a face), or
any planner passed to ``segue_cli.protect.protect`` without touching the pipeline.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from ..backends import PerturbationBackend
from ..errors import InputError, disk_full, is_disk_full
from ..imageio import LoadedImage
from ..protect.job import FileResult, Job, PlannedFile
from ..photo.compose import PhotoPlan, ShapeBatches, decode_photo, encode_protected, failure_reason, generator_failure, write_failure
from ..storage import write_bytes

# Decoded photos not yet written (waiting for a batch or being encoded) are flushed or
# waited for beyond this many pixels (one 12 MP phone photo; about 240 face crops of 224
# px): with their protected copies about 100 MB, so that a run of 12 MP photos peaks near
# 0.9 GiB including torch (docs/protect.md).
MAX_LIVE_PIXELS = 12_000_000


@dataclass
class PhotoInFlight:
    """A decoded photo between its decode and its encode: its deltas come in batch by batch."""

    planned: PlannedFile
    code: int
    image: LoadedImage
    plan: PhotoPlan
    deltas: list[np.ndarray | None]
    pending: int

    @property
    def pixels(self) -> int:
        return self.image.rgb.shape[0] * self.image.rgb.shape[1]


def run(job: Job, finish: Callable[[FileResult], None]) -> None:
    """The local engine: every planned file, each reported through ``finish`` as it ends."""
    with torch_threads_for_run(job.backend, job.config.generator_threads):
        Pipeline(job, finish).run()


class Pipeline:
    """Runs on the calling thread; only the pool's tasks (decode, compose + encode) run elsewhere."""

    def __init__(self, job: Job, finish: Callable[[FileResult], None]) -> None:
        self.job, self.config, self.backend, self.planner = job, job.config, job.backend, job.planner
        self.finish = finish
        self.pool = ThreadPoolExecutor(max_workers=job.config.workers, thread_name_prefix="segue-io")
        self.decoding: deque[tuple[PlannedFile, int, Future]] = deque()
        self.encoding: deque[tuple[int, Future]] = deque()  # (pixels, future)
        self.batches = ShapeBatches(job.config.batch_size)
        self.live_pixels = 0  # photos decoded and not yet written: waiting for a batch or being encoded
        self.recent_pixels = 0  # the last decoded photo's size, to size the decode prefetch

    def prefetch(self) -> int:
        """Decodes kept in flight: enough to feed a batch while the generator runs, fewer
        for big photos (and for the first ones, whose size is not known yet)."""
        most = max(2 * self.config.workers, 2 * self.config.batch_size)
        if not self.recent_pixels:
            return self.config.workers
        return max(self.config.workers, min(most, MAX_LIVE_PIXELS // self.recent_pixels))

    def fail(self, planned: PlannedFile, reason: str, code: int | None = None, notes: tuple[str, ...] = ()) -> None:
        self.finish(FileResult.of(planned, "failed", reason, notes=notes, code=code))

    def run(self) -> None:
        try:
            for planned in self.job.files:
                if planned.status != "todo":
                    self.finish(FileResult.of(planned, planned.status, planned.reason))
                    continue
                try:
                    code = self.job.code_of(planned)
                except InputError as exc:
                    self.fail(planned, failure_reason(exc, planned.source.reported))
                    continue
                info = self.backend.info
                future = self.pool.submit(decode_photo, Path(planned.source.path), info.image_size, info.epsilon,
                                          self.config.max_pixels, self.planner)
                self.decoding.append((planned, code, future))
                while len(self.decoding) >= self.prefetch():
                    self._take_decoded()
            while self.decoding:
                self._take_decoded()
            while self.batches:
                self._run_batch(self.batches.fullest())
            while self.encoding:
                self._take_encoded()
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def _take_decoded(self) -> None:
        planned, code, future = self.decoding.popleft()
        try:
            image, plan = future.result()
        except Exception as exc:  # noqa: BLE001 (every failure is reported against its file)
            self.fail(planned, failure_reason(exc, planned.source.reported), code)
            return
        photo = PhotoInFlight(planned, code, image, plan, [None] * len(plan.inputs), len(plan.inputs))
        self.live_pixels += photo.pixels
        self.recent_pixels = photo.pixels
        if not plan.inputs:
            self._encode(photo)
        for index, pixels in enumerate(plan.inputs):
            if self.batches.add(photo, index, pixels, code):
                self._run_batch(pixels.shape)
        while self.live_pixels > MAX_LIVE_PIXELS and (self.batches or self.encoding):
            if self.batches:
                self._run_batch(self.batches.fullest())  # partial batch: memory comes first
            else:
                self._take_encoded()
        while self.encoding and self.encoding[0][1].done():
            self._take_encoded()

    def _run_batch(self, shape: tuple[int, ...]) -> None:
        entries, deltas, failure = self.batches.run(self.backend, shape)
        for position, (photo, index) in enumerate(entries):
            if photo.pending <= 0:
                continue  # already failed through another of its inputs
            if deltas is None:
                photo.pending = 0
                self.live_pixels -= photo.pixels
                self.fail(photo.planned, generator_failure(failure), photo.code,  # type: ignore[arg-type]
                          tuple(photo.image.notes + photo.plan.notes))
                continue
            photo.deltas[index] = deltas[position]
            photo.pending -= 1
            if photo.pending == 0:
                self._encode(photo)

    def _encode(self, photo: PhotoInFlight) -> None:
        person = self.job.person_of(photo.planned) if self.job.person_of else None
        self.encoding.append((photo.pixels, self.pool.submit(_encode, photo, self.config, self.backend.info.epsilon, person)))
        while len(self.encoding) > 2 * max(self.config.workers, self.config.batch_size):
            self._take_encoded()

    def _take_encoded(self) -> None:
        pixels, future = self.encoding.popleft()
        self.live_pixels -= pixels
        self.finish(future.result())


def _encode(photo: PhotoInFlight, config: Any, epsilon: float, person: str | None) -> FileResult:
    image, planned = photo.image, photo.planned
    height, width = image.size
    done: dict[str, Any] = dict(code=photo.code, size=(width, height), details=photo.plan.details)
    notes = list(image.notes) + list(photo.plan.notes)
    try:
        data, notes = encode_protected(image, photo.plan, [d for d in photo.deltas if d is not None], config, epsilon,
                                      person)
        written = write_bytes(planned.output, data)
    except Exception as exc:  # noqa: BLE001
        if is_disk_full(exc):  # every later write would fail the same way: the run stops (protect.folder)
            raise disk_full(planned.output.reported, exc) from exc  # type: ignore[arg-type]
        reason = write_failure(exc, planned.source.reported, planned.output.reported)
        return FileResult.of(planned, "failed", reason, notes=tuple(notes), **done)
    return FileResult.of(planned, "written", notes=tuple(notes), written=written, **done)


@contextmanager
def torch_threads_for_run(backend: PerturbationBackend, threads: int) -> Iterator[None]:
    """torch's thread count is process-wide: set it for the run, then put it back."""
    if backend.info.name != "torch" or backend.info.device != "cpu":
        yield
        return
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
