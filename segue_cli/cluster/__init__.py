"""``segue cluster``: pseudo labels for unlabelled photos (dlib face embeddings + K-means),
the unsupervised side information of the paper. The logic is in ``clustering``."""

from __future__ import annotations

from .clustering import ClusterConfig, ClusterResult, cluster, estimate_k, kmeans, matched_accuracy

__all__ = ["ClusterConfig", "ClusterResult", "cluster", "estimate_k", "kmeans", "matched_accuracy"]
