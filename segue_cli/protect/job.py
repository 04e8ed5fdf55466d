"""A planned ``segue protect`` job, as ``protect/`` hands it to an engine, and what a run
reports: one :class:`FileResult` per file and the run's :class:`ProtectSummary` (both
also the ``--json`` records).

``protect/`` plans (inputs, output names, codes, skips, the settings record, the lock);
an engine from the registry in ``engines/`` runs the planned files and reports each one
through the callback it is given. Neither imports the other: both speak this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Callable, Literal

from ..progress import ProgressCallback, ProgressEvent, start_task, step
from ..storage import Location

if TYPE_CHECKING:
    from ..backends import PerturbationBackend
    from ..photo.compose import Planner
    from .config import ProtectConfig

Status = Literal["todo", "skipped", "failed"]


@dataclass(frozen=True)
class PlannedFile:
    source: Location  # the input photo: a local file or an object
    relative: PurePosixPath  # its path under the input's root, mirrored under OUT
    output: Location
    status: Status
    reason: str | None = None


@dataclass
class Job:
    """Everything an engine needs: the planned files and how to protect each one."""

    config: ProtectConfig
    files: list[PlannedFile]
    code_of: Callable[[PlannedFile], int]  # raises InputError for a file it has no code for
    backend: PerturbationBackend  # opened once for the run (the Ray engine opens one per actor)
    planner: Planner
    summary: ProtectSummary
    # Who each file shows, by name (--by-folder, --labels): --cloak-target others' pairing key;
    # None where the side information names one person for all.
    person_of: Callable[[PlannedFile], str] | None = None


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
    written: tuple[int, str] | None = None  # the output's (size in bytes, sha256), for the settings record

    @classmethod
    def of(cls, planned: PlannedFile, status: Literal["written", "skipped", "failed"], reason: str | None = None,
           **fields: Any) -> "FileResult":
        return cls(planned.source.reported, planned.output.reported, status, reason, **fields)

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
    # With --cloak: photos cloaked, and photos where no face was found (written without a
    # cloak); the networks the cloak is made against.
    cloaked: int = 0
    cloak_no_face: int = 0
    cloak_networks: tuple[str, ...] = ()
    warnings: list[str] = field(default_factory=list)
    # Files left unread, each with why and the fix: hidden non-images, unreadable formats.
    not_read: list[dict[str, str]] = field(default_factory=list)
    failures: list[FileResult] = field(default_factory=list)
    # Why the run stopped before every photo was done (a full disk), with the fix; None when it ran to the end.
    stopped: str | None = None

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
            if "cloak_similarity" in result.details:
                found = bool(result.details.get("cloak_face_found", True))
                self.cloaked += found
                self.cloak_no_face += not found

    def to_dict(self) -> dict[str, Any]:
        return {"type": "summary", "out_dir": str(self.out_dir), "side_information": self.side_information,
                "model": self.model, "model_sha256": self.model_sha256, "model_file_sha256": self.file_sha256,
                "epsilon": self.epsilon,
                "backend": self.backend, "device": self.device,
                "format": self.image_format, "protection": self.protection, "total": self.total,
                "written": self.written, "skipped": self.skipped, "failed": self.failed,
                "face_aware": self.face_aware, "faces_found": self.faces_found, "no_face": self.no_face,
                "whole_image": self.whole_image, "cloaked": self.cloaked, "cloak_no_face": self.cloak_no_face,
                "cloak_networks": list(self.cloak_networks),
                "seconds": round(self.seconds, 3),
                "images_per_second": round(self.images_per_second, 2), "warnings": self.warnings,
                "stopped": self.stopped,
                "not_read": self.not_read}


MAX_NAMED = 20  # files named in one warning line; --json lists them all


def run_started(summary: ProtectSummary) -> ProgressEvent:
    """The run's first event: its plan is known (``data``: the summary so far)."""
    return start_task("start", "files", "protecting", summary.total, summary)


def file_finished(result: FileResult) -> ProgressEvent:
    """One event per file, in the order files finish (``data``: its result)."""
    return step("file", "files", f"{result.status} {shown_path(result.source)}", result)


def shown_path(source: Path | str) -> str:
    """A file as a progress line names it: relative to the working folder when inside it,
    else whole (a base name alone is ambiguous in nested folders: 2023/a.jpg, 2024/a.jpg)."""
    if isinstance(source, str):
        return source  # an object's URI
    try:
        return source.relative_to(Path.cwd()).as_posix()
    except (ValueError, OSError):  # outside the working folder, or no working folder
        return str(source)


def result_recorder(summary: ProtectSummary, emit: ProgressCallback) -> Callable[[FileResult], None]:
    """What every engine does with a finished file: count it in the summary, then report it."""

    def record(result: FileResult) -> None:
        summary.count(result)
        emit(file_finished(result))

    return record


def default_identity(name: str, code: str, where: str, one_photo: bool = False) -> str:
    """The one line that says a run took its identity from a folder's name, and how to
    change it: a silent default would protect a family's photos as one person."""
    if one_photo:
        return (f"identity {name!r} ({code}): the default, the name of {where}. Pass --identity NAME for the "
                "person the photo shows")
    return (f"identity {name!r} ({code}) for every photo: the default, the name of {where}. Pass --identity NAME "
            "for the person the photos show, or --by-folder when each sub-folder holds one person")
