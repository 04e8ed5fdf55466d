"""``segue protect --engine ray``: a planned job run by Ray Data.

The driver has already planned the job as for the local engine (``protect``: the same
inputs, output names, codes, skips and settings record, local or in an object store).
Each file still to do becomes one row;
a pool of actors, each holding one :class:`~segue_cli.photo.protector.Protector`, reads the
photo's bytes (``storage``: a local path or an object), protects it, encodes it with the
local engine's encoder and writes it whole (a temp file renamed, or one object upload),
then returns the file's result. The driver reports results as they come, like the local
engine. Per-file failures are rows, never job failures.

Faults: actors are restarted and their tasks retried (``max_restarts``/``max_task_retries``
-1), so a killed worker only costs the photos it was on; they are redone with the same
bytes. A killed write leaves at most a temp file, which the driver removes at the end.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import sys
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from ..errors import ConfigError, InputError
from ..protect.job import FileResult, Job
from ..storage import Location, read_bytes, write_bytes

RowResult = dict[str, Any]
RESULT_KEYS = ("source", "output", "code", "status", "reason", "notes", "width", "height", "details", "written_size",
               "written_sha256")


def ray_actors(config: Any) -> int:
    """Actors for the job: ``--actors``, else one per CPU Ray sees."""
    import ray

    return config.actors or max(1, int(ray.cluster_resources().get("CPU", 1)))


class ProtectWorker:
    """One Ray actor: one Protector, opened once, for every batch it is given."""

    def __init__(self, config: Any, source_fs: Any, output_fs: Any) -> None:
        from ..photo.protector import Protector

        self.config, self.source_fs, self.output_fs = config, source_fs, output_fs
        # One thread per actor: Ray gives each actor one CPU, and more would oversubscribe.
        self.protector = Protector(config.model, config.backend, config.device, config.faces, config.detector,
                                   config.max_pixels, threads=1, strength=config.strength)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        rows = [self._decoded(source, output, int(code), person)
                for source, output, code, person in zip(batch["source"], batch["output"], batch["code"], batch["person"])]
        self._perturb([row for row in rows if row["status"] == "decoded"])
        results = [self._written(row) if row["status"] == "decoded" else row for row in rows]
        return {key: [result[key] for result in results] for key in RESULT_KEYS}

    def _decoded(self, source: str, output: str, code: int, person: str) -> dict[str, Any]:
        from ..photo.compose import decode_photo, failure_reason

        info = self.protector.info
        row: dict[str, Any] = {"source": source, "output": output, "code": code, "person": person, "status": "failed",
                               "reason": None, "notes": "[]", "width": -1, "height": -1, "details": "{}",
                               "written_size": -1, "written_sha256": ""}
        try:
            data = read_bytes(Location(self.source_fs, source, source))
            row["image"], row["plan"] = decode_photo(data, info.image_size, info.epsilon, self.config.max_pixels,
                                                     self.protector.planner)
        except Exception as exc:  # noqa: BLE001 (each failure is reported against its file)
            row["reason"] = failure_reason(exc, source)
            return row
        height, width = row["image"].size
        row.update(status="decoded", width=width, height=height, details=json.dumps(row["plan"].details))
        return row

    def _perturb(self, rows: list[dict[str, Any]]) -> None:
        """The generator over the batch's inputs, one call per working shape (``ShapeBatches``,
        as the local engine batches)."""
        from ..photo.compose import ShapeBatches, generator_failure

        batches = ShapeBatches()
        for row in rows:
            row["deltas"] = [None] * len(row["plan"].inputs)
            for index, pixels in enumerate(row["plan"].inputs):
                batches.add(row, index, pixels, row["code"])
        for entries, deltas, failure in batches.run_all(self.protector.backend):
            for position, (row, index) in enumerate(entries):
                if deltas is None:
                    row.update(status="failed", reason=generator_failure(failure))  # type: ignore[arg-type]
                else:
                    row["deltas"][index] = deltas[position]

    def _written(self, row: dict[str, Any]) -> RowResult:
        from ..photo.compose import encode_protected, write_failure

        image, plan = row.pop("image"), row.pop("plan")
        deltas = row.pop("deltas")
        notes = list(image.notes) + list(plan.notes)
        try:
            encoded, notes = encode_protected(image, plan, deltas, self.config, self.protector.info.epsilon,
                                               row["person"] or None)
            row["written_size"], row["written_sha256"] = write_bytes(Location(self.output_fs, row["output"], row["output"]),
                                                                     encoded)
        except Exception as exc:  # noqa: BLE001 (each failure is reported against its file)
            row.update(status="failed", reason=write_failure(exc, row["source"], row["output"]))
        else:
            row["status"] = "written"
            row["details"] = json.dumps(plan.details)  # what compose added (the cloak's figures)
        row["notes"] = json.dumps(notes)
        return row


def _bound_worker(config: Any, source_fs: Any, output_fs: Any) -> type:
    """ProtectWorker with its settings bound in the class, which Ray ships with the code:
    constructor arguments would sit in the object store, where an actor restarted after a
    crash may no longer find them."""

    class BoundProtectWorker(ProtectWorker):
        def __init__(self) -> None:
            super().__init__(config, source_fs, output_fs)

    return BoundProtectWorker


def check(config: Any) -> None:
    """Before anything is planned or written: the ray extra, and the cluster answering."""
    from ..extras import require

    require("protect --engine ray")
    check_address(config.ray_address)


def check_address(address: str | None) -> None:
    """Refuse a HOST:PORT nothing listens on, at once and before anything is written (Ray
    itself retries an unreachable head for minutes). ``auto`` and ``ray://`` are left to Ray."""
    if address is None or address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=5).close()
    except (OSError, ValueError) as exc:
        raise ConfigError(f"no Ray cluster answers at --ray-address {address} ({exc})",
                          "check the head's HOST:PORT (ray start --head prints it), pass auto on a cluster node, "
                          "or leave --ray-address out to start a local Ray") from exc


def start_ray(address: str | None) -> bool:
    """Connect to ``address`` (``auto``, ``ray://...`` or host:port) or start a local Ray;
    returns whether this call started it (and so should stop it)."""
    import ray

    if ray.is_initialized():
        return False
    try:
        if address is None:
            ray.init(include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False,
                     configure_logging=False)
        else:
            ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ConfigError(f"cannot reach the Ray cluster at {address or 'a new local instance'}: {exc}",
                          "start it (ray start --head) or pass --ray-address auto / HOST:PORT") from exc
    return True


def run(job: Job, finish: Callable[[FileResult], None]) -> None:
    """The Ray engine: every planned file, each reported through ``finish`` on the driver."""
    from ..photo.compose import failure_reason

    by_output: dict[str, Any] = {}
    rows: list[dict[str, Any]] = []
    for planned in job.files:
        if planned.status != "todo":
            finish(FileResult.of(planned, planned.status, planned.reason))
            continue
        try:
            code = job.code_of(planned)
        except InputError as exc:
            finish(FileResult.of(planned, "failed", failure_reason(exc, planned.source.reported)))
            continue
        by_output[planned.output.path] = planned
        person = job.person_of(planned) if job.person_of else ""  # "": a column of one type (--cloak-target others)
        rows.append({"source": planned.source.path, "output": planned.output.path, "code": code, "person": person})
    if rows:
        first = by_output[str(rows[0]["output"])]
        run_rows(job.config, rows, first.source.filesystem, first.output.filesystem,
                 lambda row: finish(FileResult.of(by_output[str(row["output"])], **result_fields(row))))


def run_rows(config: Any, rows: list[dict[str, Any]], source_fs: Any, output_fs: Any,
             finish: Callable[[RowResult], None]) -> None:
    """Protect ``rows`` ({source, output, code}: paths in the two filesystems, None for local
    paths) on Ray; ``finish`` gets each file's result on the driver as it arrives."""
    import warnings

    progress = config.engine_progress
    with warnings.catch_warnings(), _stderr_silenced(config.quiet):
        if not progress:
            warnings.simplefilter("ignore")
        _run_rows(config, rows, source_fs, output_fs, finish, progress)


@contextmanager
def _stderr_silenced(quiet: bool) -> Iterator[None]:
    """--quiet means quiet, Ray included: its notices come from its Python loggers (configured
    as it runs), its C++ core and its warnings, so the file descriptor they share is sent to
    /dev/null for the run. The CLI prints a quiet run's failures after it."""
    if not quiet:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    sink = os.open(os.devnull, os.O_WRONLY)
    os.dup2(sink, 2)
    os.close(sink)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def _run_rows(config: Any, rows: list[dict[str, Any]], source_fs: Any, output_fs: Any,
              finish: Callable[[RowResult], None], progress: bool) -> None:
    import ray
    import ray.data

    started = start_ray(config.ray_address)
    try:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = progress
        context.print_on_execution_start = False
        if not progress:  # Ray Data logs its progress when it draws no bars: quiet means quiet
            logging.getLogger("ray.data").setLevel(logging.WARNING)
        actors = min(ray_actors(config), len(rows))  # no more actors than photos
        # One block per batch: a task is one batch, so a killed actor costs one batch of work
        # and results come back as batches finish.
        batch = max(1, min(config.batch_size, len(rows) // (2 * actors) or 1))
        dataset = ray.data.from_items(rows, override_num_blocks=math.ceil(len(rows) / batch))
        # Ray Data restarts a killed actor and retries its batch, as often as it takes
        # (max_restarts and max_task_retries -1 are its defaults for actor pools; the
        # killed-actor test holds it to that).
        results = dataset.map_batches(
            _bound_worker(config, source_fs, output_fs), batch_size=batch,
            compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=1, batch_format="numpy",
        )
        reported: set[str] = set()
        for result in results.iter_rows():
            if result["output"] not in reported:  # a retried batch's rows are reported once
                reported.add(result["output"])
                finish(result)
    finally:
        if started:
            ray.shutdown()


def result_fields(row: RowResult) -> dict[str, Any]:
    """A result row as FileResult's keyword arguments (paths left out: the planned file has them)."""
    size = (int(row["width"]), int(row["height"])) if int(row["width"]) >= 0 else None
    written = (int(row["written_size"]), str(row["written_sha256"])) if int(row["written_size"]) >= 0 else None
    return dict(status=str(row["status"]), reason=row["reason"] if row["reason"] else None,
                notes=tuple(json.loads(row["notes"])), code=int(row["code"]), size=size,
                details=json.loads(row["details"]), written=written)
