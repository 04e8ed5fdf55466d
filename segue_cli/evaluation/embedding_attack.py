"""The pretrained face-recognition attacker: enrol the (protected) train photos with a
face-embedding network trained elsewhere and match the clean test photos against them.

This is how most deployed face recognition works: nothing is trained on the protected
photos, so an unlearnable-example perturbation only helps if it moves the embedding.
Three matchers, all on the same embeddings:

- ``ncm``: nearest class mean (Euclidean), the enrolment-gallery matcher;
- ``1nn``: nearest single enrolled photo (Euclidean, dlib's own convention);
- ``linear``: a linear probe, multinomial logistic regression on the embeddings.

``embedding-dlib`` is dlib's 128-d ResNet (the CC0 weights ``segue cluster`` uses, pinned
by sha256), with dlib's 5-landmark alignment to its 150 px chip; ``embedding-sface`` is
OpenCV Zoo's SFace with its YuNet detector (``faces/sface.py``, the ``sface`` extra), a
second, independent network that no protection in segue is optimised against;
``embedding-faceplugin`` and ``embedding-mobilefacenet`` are the two MobileFaceNets of the
cloak's ensemble (``faces/networks.py``: white box for the cloak, so their rows measure the
networks it is made against, and the leave-one-out runs measure transfer). Embeddings are computed
once per set and decoding counter-measure and cached in :class:`EvaluationData`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..choices import EMBEDDING_ATTACKER_NAMES, EMBEDDING_METHODS
from ..errors import ConfigError
from ..faces.geometry import FaceDetector
from ..faces.networks import FACE_NETWORKS


@dataclass
class EmbeddingRun:
    """One matcher's result, shaped like a from-scratch run so reports list both alike:
    an embedding attacker has no epochs, so final and peak are the same figure."""

    arch: str  # e.g. "embedding-dlib/ncm"
    attack: str
    train_set: str  # "protected" or "clean" (the baseline)
    final_accuracy: float
    peak_accuracy: float
    peak_epoch: int
    per_identity: dict[str, float]
    kind: str = "embedding"
    attacker: str = ""
    method: str = ""
    history: tuple = ()
    steps: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["history"] = []
        return record


def open_embedder(name: str, detector: FaceDetector | None = None) -> Any:
    """The embedding network behind an attacker name; ``detector`` under detect-align
    (None: dlib's tight-crop detector, whose miss on a crop falls back to a centred box)."""
    if name not in EMBEDDING_ATTACKER_NAMES:
        raise ConfigError(f"unknown embedding attacker {name!r}", f"use one of {', '.join(EMBEDDING_ATTACKER_NAMES)}")
    if name == "embedding-sface":
        from ..extras import require

        require("evaluate --arch embedding-sface")
        from ..faces.sface import SFaceEmbedder

        return SFaceEmbedder()  # its own YuNet finds the face and its landmarks (alignCrop needs YuNet's)
    network = name.removeprefix("embedding-")
    if network in FACE_NETWORKS and FACE_NETWORKS[network].alignment == "arcface-5":  # the registry's MobileFaceNets
        from ..extras import require

        require(f"evaluate --arch {name}")
        from ..faces.face_nets import FaceNetEmbedder

        return FaceNetEmbedder(network)  # YuNet's five points, ArcFace's template
    from ..faces.embedding import DlibEmbedder

    return DlibEmbedder(detector=detector)


def _accuracy(predicted: np.ndarray, targets: np.ndarray, identities: list[str]) -> tuple[float, dict[str, float]]:
    correct = predicted == targets
    per_identity = {name: float(100.0 * correct[targets == i].mean()) for i, name in enumerate(identities)
                    if (targets == i).any()}
    return float(100.0 * correct.mean()), per_identity


def predict(method: str, train: np.ndarray, train_y: np.ndarray, test: np.ndarray, seed: int) -> np.ndarray:
    """Predicted class of each test embedding under one matcher."""
    if method == "ncm":
        classes = np.unique(train_y)
        means = np.stack([train[train_y == c].mean(axis=0) for c in classes])
        return classes[np.argmin(((test[:, None, :] - means[None]) ** 2).sum(-1), axis=1)]
    if method == "1nn":
        distances = ((test[:, None, :] - train[None]) ** 2).sum(-1)
        return train_y[np.argmin(distances, axis=1)]
    if method == "linear":
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        scaler = StandardScaler().fit(train)
        probe = LogisticRegression(max_iter=5000, random_state=seed).fit(scaler.transform(train), train_y)
        return probe.predict(scaler.transform(test))
    raise ConfigError(f"unknown matcher {method!r}", f"use one of {', '.join(EMBEDDING_METHODS)}")


def score_embeddings(attacker: str, attack: str, train_set: str, train: tuple[np.ndarray, np.ndarray],
                     test: tuple[np.ndarray, np.ndarray], identities: list[str], seed: int,
                     seconds: float = 0.0) -> list[EmbeddingRun]:
    """One run record per matcher (see module docstring)."""
    runs = []
    for method in EMBEDDING_METHODS:
        started = time.perf_counter()
        predicted = predict(method, train[0], train[1], test[0], seed)
        accuracy, per_identity = _accuracy(predicted, test[1], identities)
        runs.append(EmbeddingRun(
            arch=f"{attacker}/{method}", attack=attack, train_set=train_set, final_accuracy=accuracy,
            peak_accuracy=accuracy, peak_epoch=0, per_identity=per_identity, attacker=attacker, method=method,
            seconds=round(seconds + time.perf_counter() - started, 2),
        ))
    return runs
