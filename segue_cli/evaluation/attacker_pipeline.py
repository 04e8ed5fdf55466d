"""What a scraper does before training: detect and align the face in every photo.

``detect_align_folder`` reads an ImageFolder (``<identity>/<photos>``), finds the faces
in each photo, keeps the largest one (the person the photo is labelled with, as a
scraper would assume), aligns it to the canonical crop with the same code the defender
uses (:func:`segue_cli.faces.align_face`) and writes it as PNG to the same relative
place under ``dst``. Photos without a face are left out and listed in the report, as a
scraper would drop them; so are photos that cannot be read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..datasets import scan_image_folder
from ..errors import InputError, OutputError
from ..faces.geometry import ARCFACE_TEMPLATE_112, FaceDetector, align_face, alignment_matrix
from ..imageio import load_image, save_image


@dataclass
class AlignReport:
    detector: str
    size: int
    written: int = 0
    multi_face: int = 0  # photos where more than one face was found (largest kept)
    no_face: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    empty_identities: list[str] = field(default_factory=list)  # identities left with no crop

    def to_dict(self) -> dict[str, Any]:
        return {
            "detector": self.detector,
            "size": self.size,
            "written": self.written,
            "multi_face": self.multi_face,
            "no_face": [str(p) for p in self.no_face],
            "failed": [{"path": str(p), "error": e} for p, e in self.failed],
            "empty_identities": self.empty_identities,
        }


def _check_destination(src: Path, dst: Path) -> None:
    src_real, dst_real = src.resolve(), dst.resolve()
    if dst_real == src_real or src_real in dst_real.parents:
        raise OutputError(f"output folder {dst} is inside the input {src}", "write the aligned crops somewhere else")
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise OutputError(f"output folder {dst} already exists and is not empty", "give a new folder")


def _align_one(path: Path, target: Path, detector: FaceDetector, size: int, template: np.ndarray | str,
               antialias: bool, report: AlignReport) -> bool:
    try:
        rgb = load_image(path).rgb
    except InputError as exc:
        report.failed.append((path, exc.message))
        return False
    crop, found = align_largest(rgb, detector, size, template=template, antialias=antialias)
    if crop is None:
        report.no_face.append(path)
        return False
    report.multi_face += found > 1
    save_image(target, crop)
    report.written += 1
    return True


def align_largest(
    rgb: np.ndarray, detector: FaceDetector, size: int = 112, *, template: np.ndarray | str = ARCFACE_TEMPLATE_112,
    antialias: bool = True,
) -> tuple[np.ndarray | None, int]:
    """(the largest face aligned to ``size`` x ``size`` uint8, or None; faces found): the
    scraper's step for one photo, shared by :func:`detect_align_folder` and ``segue evaluate``."""
    faces = detector.detect(rgb)
    if not faces:
        return None, 0
    largest = max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
    return align_face(rgb, alignment_matrix(largest.landmarks, size, template), size, antialias), len(faces)


def detect_align_folder(
    src: Path,
    dst: Path,
    detector: FaceDetector,
    size: int = 112,
    *,
    template: np.ndarray | str = ARCFACE_TEMPLATE_112,
    antialias: bool = True,
    progress: Callable[[Path], None] | None = None,
) -> AlignReport:
    """Align the largest face of every photo in ImageFolder ``src`` into ``dst`` (PNG)."""
    src, dst = Path(src), Path(dst)
    labelled = scan_image_folder(src)
    _check_destination(src, dst)
    planned: dict[Path, Path] = {}
    for item in labelled.items:
        target = dst / item.path.relative_to(src).with_suffix(".png")
        if target in planned:
            raise InputError(f"{item.path} and {planned[target]} would both be written to {target}",
                             "rename one of them (photos that differ only by extension collide)")
        planned[target] = item.path
    report = AlignReport(detector=detector.name, size=size)
    per_identity = {name: 0 for name in labelled.identities}
    for item, target in zip(labelled.items, planned):
        try:
            if _align_one(item.path, target, detector, size, template, antialias, report):
                per_identity[item.identity] += 1
        finally:
            if progress is not None:
                progress(item.path)
    report.empty_identities = [name for name, count in per_identity.items() if count == 0]
    return report


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a = a.astype(np.float64).ravel() - a.mean()
    b = b.astype(np.float64).ravel() - b.mean()
    norm = float(np.sqrt((a @ a) * (b @ b)))
    return float(a @ b / norm) if norm > 0 else 0.0


def attacker_crop_correlation(
    clean: np.ndarray,
    protected: np.ndarray,
    detector: FaceDetector,
    pattern: np.ndarray,
    size: int = 112,
    *,
    template: np.ndarray | str = ARCFACE_TEMPLATE_112,
    antialias: bool = True,
) -> list[float]:
    """How much of ``pattern`` (3 x size x size) the attacker's aligned crops carry.

    The attacker detects faces on the PROTECTED photo and aligns them; the same
    transform applied to the clean photo isolates the perturbation in the crop
    (``residual = crop(protected) - crop(clean)``). Returns the Pearson correlation of
    each face's residual with ``pattern``, one per face the attacker finds.
    """
    correlations = []
    for face in detector.detect(protected):
        matrix = alignment_matrix(face.landmarks, size, template)
        residual = align_face(protected, matrix, size, antialias).astype(np.float32) - align_face(clean, matrix, size, antialias)
        correlations.append(_pearson(residual.transpose(2, 0, 1), pattern))
    return correlations


def probe_pattern(grid: int, size: int = 112, epsilon: float = 8 / 255, seed: int = 0) -> np.ndarray:
    """A fixed random perturbation (3 x size x size, |values| < epsilon) with structure at
    ``size / grid`` pixels: stands in for the generator when measuring what survives the
    attacker's pipeline (``grid = size`` is independent noise per pixel)."""
    import cv2

    noise: np.ndarray = np.random.default_rng(seed).standard_normal((grid, grid, 3)).astype(np.float32)
    if grid != size:
        noise = cv2.resize(noise, (size, size), interpolation=cv2.INTER_CUBIC)
    return (epsilon * np.tanh(noise)).transpose(2, 0, 1).astype(np.float32)
