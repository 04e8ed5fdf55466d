"""The three image sets of an evaluation, checked against each other and decoded once.

- identities must be the same folder names in the protected train, clean train and test
  sets (the class index is the position in the sorted list, shared by all three);
- each protected train image is paired with its clean original by relative path
  WITHOUT suffix (``3/12.png`` <-> ``3/12.jpg``), for the image-quality metrics;
- each set is decoded at the attacker's size into a uint8 tensor cache, once per
  full-resolution transform (a JPEG or grayscale counter-measure needs its own cache)
  and attacker pipeline (detect-align crops are cached the same way, with what the
  detector found kept in ``alignment``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..progress import ProgressCallback, ignore, start_task, step
from ..datasets import LabelledImage, LabelledSet, decode_images, scan_image_folder
from ..errors import InputError
from ..faces.geometry import FaceDetector
from .alignment import AlignmentCounts, detect_align_images

SET_NAMES = ("protected", "clean", "test")
MAX_LISTED = 5


@dataclass
class EvaluationData:
    sets: dict[str, LabelledSet]  # keyed by SET_NAMES
    identities: list[str]
    pairs: list[tuple[Path, Path]]  # (protected, clean) train images
    workers: int = 2
    _cache: dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    _embedding_cache: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    embedding_faces: dict[str, dict[str, int]] = field(default_factory=dict)  # "<set> (<transform>)" -> counts
    alignment: dict[str, AlignmentCounts] = field(default_factory=dict)  # "<set> (<transform>)" -> counts

    @property
    def num_classes(self) -> int:
        return len(self.identities)

    def counts(self) -> dict[str, int]:
        return {name: len(labelled.items) for name, labelled in self.sets.items()}

    def tensors(
        self, name: str, size: int, transform: Callable[[np.ndarray], np.ndarray] | None = None, key: str = "plain",
        progress: ProgressCallback | None = None, detector: FaceDetector | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(uint8 images [N, 3, size, size], targets [N]) of one set, decoded once per ``key``
        (the name of ``transform``). With ``detector`` each image is the attacker's aligned
        face crop (:func:`detect_align_images`) instead of the resized photo. ``progress``
        hears decode_start and one decoded per image."""
        pipeline = "plain" if detector is None else "detect-align"
        cache_key = (name, f"{size}:{key}:{pipeline}")
        if cache_key not in self._cache:
            emit = progress or ignore
            labelled = self.sets[name]
            paths = [item.path for item in labelled.items]
            aligned = ", detect-align" if pipeline == "detect-align" else ""
            emit(start_task("decode_start", "decode", f"decoding {name} ({key}{aligned})", len(paths),
                            {"set": name, "images": len(paths), "transform": key, "pipeline": pipeline}))
            if detector is None:
                images, _, _ = decode_images(paths, size, workers=self.workers, on_done=lambda: emit(step("decoded", "decode")),
                                             transform=transform)
            else:
                images, counts = detect_align_images(paths, size, detector, transform=transform, workers=self.workers,
                                                     on_done=lambda: emit(step("decoded", "decode")))
                self.alignment[name if key == "plain" else f"{name} ({key})"] = counts
            self._cache[cache_key] = (images, torch.tensor(labelled.targets))
        return self._cache[cache_key]


    EMBED_BATCH = 16  # photos a call: the twin network runs them in one batch

    def embeddings(
        self, name: str, embedder: Any, transform: Callable[[np.ndarray], np.ndarray] | None = None, key: str = "plain",
        progress: ProgressCallback | None = None, pipeline: str = "none",
    ) -> tuple[np.ndarray, np.ndarray]:
        """(embeddings [N, D] float32, targets [N]) of one set: every full-resolution photo
        (after ``transform``) embedded once per ``key`` and pipeline by ``embedder``
        (:class:`~segue_cli.faces.embedding.DlibEmbedder`), which finds and aligns the face
        itself. How many faces its detector found is kept in ``embedding_faces``."""
        cache_key = (name, f"{embedder.name}:{key}:{pipeline}")
        if cache_key not in self._embedding_cache:
            from ..imageio import load_image

            emit = progress or ignore
            labelled = self.sets[name]
            emit(start_task("decode_start", "decode", f"embedding ({embedder.name}) {name} ({key})", len(labelled.items),
                            {"set": name, "images": len(labelled.items), "transform": key, "pipeline": pipeline,
                             "embedding": embedder.name}))
            vectors, found = [], 0
            for start in range(0, len(labelled.items), self.EMBED_BATCH):
                photos = [load_image(item.path).rgb for item in labelled.items[start : start + self.EMBED_BATCH]]
                for face in embedder.embed_many([transform(rgb) if transform is not None else rgb for rgb in photos]):
                    vectors.append(face.vector)
                    found += int(face.face_found)
                    emit(step("decoded", "decode"))
            self.embedding_faces[name if key == "plain" else f"{name} ({key})"] = {
                "images": len(vectors), "face_found": found, "no_face": len(vectors) - found}
            self._embedding_cache[cache_key] = (np.stack(vectors).astype(np.float32), np.asarray(labelled.targets))
        return self._embedding_cache[cache_key]


def _listed(names: list[str]) -> str:
    return ", ".join(names[:MAX_LISTED]) + (f" (and {len(names) - MAX_LISTED} more)" if len(names) > MAX_LISTED else "")


def check_identities(sets: dict[str, LabelledSet]) -> list[str]:
    reference = sets["protected"].identities
    for name in ("clean", "test"):
        other = sets[name].identities
        if set(other) != set(reference):
            missing = sorted(set(reference) - set(other))
            extra = sorted(set(other) - set(reference))
            raise InputError(
                f"identity folders differ between {sets['protected'].source} and {sets[name].source}: "
                + "; ".join(part for part in (
                    f"only in the protected train set: {_listed(missing)}" if missing else "",
                    f"only in {sets[name].source}: {_listed(extra)}" if extra else "",
                ) if part),
                "the protected train, clean train and test sets must have the same <identity> sub-folders",
            )
    return reference


def _stem_key(item: LabelledImage, root: Path) -> str:
    return item.path.relative_to(root).with_suffix("").as_posix()


def pair_by_relative_path(protected: LabelledSet, clean: LabelledSet) -> list[tuple[Path, Path]]:
    """Match every protected image to the clean image at the same relative path, any suffix."""
    keyed: dict[str, dict[str, Path]] = {}
    for name, labelled in (("protected", protected), ("clean", clean)):
        table: dict[str, Path] = {}
        for item in labelled.items:
            key = _stem_key(item, labelled.source)
            if key in table:
                raise InputError(
                    f"{labelled.source}: {table[key].name} and {item.path.name} differ only by suffix",
                    "images are paired with their clean originals by path without suffix; keep one of them",
                )
            table[key] = item.path
        keyed[name] = table
    only_protected = sorted(set(keyed["protected"]) - set(keyed["clean"]))
    only_clean = sorted(set(keyed["clean"]) - set(keyed["protected"]))
    if only_protected or only_clean:
        problems = []
        if only_protected:
            problems.append(f"{len(only_protected)} protected image(s) have no clean original in {clean.source} "
                            f"({_listed(only_protected)})")
        if only_clean:
            problems.append(f"{len(only_clean)} clean image(s) have no protected version in {protected.source} "
                            f"({_listed(only_clean)})")
        raise InputError(
            "the protected and clean train sets do not pair up: " + "; ".join(problems),
            "--train-clean must be the originals of --train-protected, at the same <identity>/<name> paths "
            "(the suffix may differ: protected PNG, clean JPG)",
        )
    return [(keyed["protected"][key], keyed["clean"][key]) for key in sorted(keyed["protected"])]


def _limit(labelled: LabelledSet, per_identity: int | None) -> LabelledSet:
    if per_identity is None:
        return labelled
    taken: dict[str, int] = {}
    items = []
    for item in labelled.items:
        if taken.get(item.identity, 0) < per_identity:
            taken[item.identity] = taken.get(item.identity, 0) + 1
            items.append(item)
    return LabelledSet(items=items, identities=labelled.identities, source=labelled.source)


def load_evaluation_data(
    train_protected: Path, train_clean: Path, test: Path, *, limit_per_identity: int | None = None, workers: int = 2
) -> EvaluationData:
    roots = {"protected": Path(train_protected), "clean": Path(train_clean), "test": Path(test)}
    sets = {name: scan_image_folder(root) for name, root in roots.items()}
    if limit_per_identity is not None:
        # The clean train subset is the originals of the protected subset, so the two stay paired.
        sets["protected"], sets["test"] = (_limit(sets[name], limit_per_identity) for name in ("protected", "test"))
        wanted = {_stem_key(item, sets["protected"].source) for item in sets["protected"].items}
        clean = sets["clean"]
        sets["clean"] = LabelledSet([i for i in clean.items if _stem_key(i, clean.source) in wanted],
                                    clean.identities, clean.source)
    identities = check_identities(sets)
    pairs = pair_by_relative_path(sets["protected"], sets["clean"])
    return EvaluationData(sets=sets, identities=identities, pairs=pairs, workers=workers)
