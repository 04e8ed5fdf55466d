"""Labelled photo sets: an ImageFolder tree (``<identity>/<images>``) or a labels CSV
(``path,label[,...]`` as written by ``segue cluster``), decoded once into a uint8
tensor cache that training and evaluation share.
"""

from __future__ import annotations

import csv
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

import numpy as np

from .errors import InputError
from .nn.codes import is_label

if TYPE_CHECKING:
    import torch
from .imageio import discover_images, is_image_path, load_image, resize_rgb, too_small

@dataclass(frozen=True)
class LabelledImage:
    path: Path
    identity: str


@dataclass
class LabelledSet:
    """Images with identities; ``identities`` is sorted and gives the class index."""

    items: list[LabelledImage]
    identities: list[str]
    source: Path

    @property
    def targets(self) -> list[int]:
        index = {name: i for i, name in enumerate(self.identities)}
        return [index[item.identity] for item in self.items]


def _identity_sort_key(name: str) -> tuple[int, int | str]:
    return (0, int(name)) if is_label(name) else (1, name)


def _finish(items: list[LabelledImage], source: Path) -> LabelledSet:
    identities = sorted({item.identity for item in items}, key=_identity_sort_key)
    return LabelledSet(items=items, identities=identities, source=source)


def scan_image_folder(root: Path) -> LabelledSet:
    root = Path(root)
    if not root.exists():
        raise InputError(f"data folder not found: {root}", "give a folder laid out as <identity>/<images>")
    if not root.is_dir():
        raise InputError(f"{root} is not a folder", "give a folder laid out as <identity>/<images>, or a labels .csv")
    items: list[LabelledImage] = []
    stray = [p.name for p in root.iterdir() if p.is_file() and is_image_path(p)]
    if stray:
        raise InputError(
            f"{root} has images at its top level ({', '.join(sorted(stray)[:3])}...)",
            "put each identity's photos in a sub-folder named after it, or label them with `segue cluster`",
        )
    for identity_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for image_path in discover_images(identity_dir):
            items.append(LabelledImage(image_path, identity_dir.name))
    if not items:
        raise InputError(f"no images found under {root}", "expected <identity>/<image>.jpg|png|... files")
    return _finish(items, root)


LABELS_HEADER = ("path", "label")


def read_labels_csv(csv_path: Path) -> LabelledSet:
    """Rows ``path,label,...``; relative paths are relative to the CSV's folder."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise InputError(f"labels file not found: {csv_path}", "write one with `segue cluster DIR --out labels.csv`")
    items: list[LabelledImage] = []
    with open(csv_path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not set(LABELS_HEADER) <= set(reader.fieldnames):
            raise InputError(f"{csv_path}: header must start with 'path,label'", "see docs/artifacts.md for the format")
        for line_no, row in enumerate(reader, start=2):
            raw_path, label = (row.get("path") or "").strip(), (row.get("label") or "").strip()
            if not raw_path or not label:
                raise InputError(f"{csv_path}:{line_no}: empty path or label")
            path = Path(raw_path)
            items.append(LabelledImage(path if path.is_absolute() else csv_path.parent / path, label))
    if not items:
        raise InputError(f"{csv_path} lists no images")
    return _finish(items, csv_path)


def write_labels_csv(csv_path: Path, rows: Iterable[dict[str, object]], extra_columns: tuple[str, ...] = ()) -> None:
    """Write ``path,label,<extra...>``; paths are stored relative to the CSV's folder when possible."""
    import os

    from .storage import atomic_write

    csv_path = Path(csv_path)
    base = csv_path.resolve().parent

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=[*LABELS_HEADER, *extra_columns])
            writer.writeheader()
            for row in rows:
                path = Path(str(row["path"])).resolve()
                try:
                    stored = os.path.relpath(path, base)
                except ValueError:
                    stored = str(path)
                writer.writerow({**row, "path": stored})

    atomic_write(csv_path, write)


def load_labelled(source: Path) -> LabelledSet:
    """A folder (ImageFolder layout) or a labels ``.csv``."""
    source = Path(source)
    if source.suffix.lower() == ".csv":
        return read_labels_csv(source)
    return scan_image_folder(source)


def require_identities(dataset: LabelledSet, minimum: int = 2) -> None:
    if len(dataset.identities) < minimum:
        raise InputError(
            f"{dataset.source} has {len(dataset.identities)} identity ({', '.join(dataset.identities)}); "
            f"training needs at least {minimum}",
            "add photos of other people as further sub-folders: the generator learns to tell identities apart",
        )


def decode_images(
    paths: list[Path],
    size: int,
    *,
    skip_bad: bool = False,
    workers: int = 2,
    on_done: Callable[[], None] | None = None,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
    prepare: Callable[[Path, np.ndarray], np.ndarray] | None = None,
) -> tuple[torch.Tensor, list[int], list[str]]:
    """Decode and resize every path to ``size`` x ``size``.

    ``transform`` (H x W x 3 uint8 -> same) runs on the full-resolution photo before the
    resize: an attacker's JPEG re-encoding or grayscale happens there (``segue evaluate``).
    ``prepare(path, rgb)`` runs after it, e.g. the attacker's face detection and alignment.

    Returns (uint8 tensor [N_ok, 3, size, size], indices of the decoded paths, problems).
    Without ``skip_bad`` any unreadable or tiny file raises one error that lists them all.
    """

    def decode(path: Path) -> torch.Tensor | str:
        try:
            loaded = load_image(path)
            problem = too_small(*loaded.size)
            if problem:
                return f"{path}: {problem}"
            rgb = loaded.rgb if transform is None else transform(loaded.rgb)
            return resize_rgb(rgb if prepare is None else prepare(path, rgb), size)
        except InputError as exc:
            return exc.message
        finally:
            if on_done is not None:
                on_done()

    import torch

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = list(pool.map(decode, paths))
    problems = [r for r in results if isinstance(r, str)]
    if problems and not skip_bad:
        listed = "\n  ".join(problems[:20]) + ("\n  ..." if len(problems) > 20 else "")
        raise InputError(
            f"{len(problems)} image(s) cannot be used:\n  {listed}",
            "fix or remove these files, or pass --skip-bad-images to leave them out (they are listed in the run log)",
        )
    kept = [i for i, r in enumerate(results) if not isinstance(r, str)]
    if not kept:
        raise InputError("no usable images", "check the files listed above")
    return torch.stack([r for r in results if not isinstance(r, str)]), kept, problems


def batch_order(count: int, batch_size: int, rng: torch.Generator, limit: int | None = None) -> list[torch.Tensor]:
    """One shuffled epoch of ``count`` items (train's and the attackers'); a last batch of
    one item is dropped (BatchNorm cannot train on it); ``limit``: at most that many batches."""
    import torch

    order = torch.randperm(count, generator=rng)
    batches = [order[i : i + batch_size] for i in range(0, count, batch_size)]
    batches = [b for b in batches if len(b) >= 2]
    return batches[:limit] if limit else batches
