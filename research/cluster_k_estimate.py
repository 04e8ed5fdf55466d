"""How well does `segue cluster --k auto` guess K? Random identity subsets of an ImageFolder.

Embeds every photo once (cached as .npz: the slow part), then for subsets of 2..10
identities with 8..130 photos each compares the estimate with the true K, beside the
common alternative (best silhouette over K = 2..20). Also prints K-means accuracy with the
true K on the whole set and the estimate for the whole set.

    nice -n 10 python research/cluster_k_estimate.py ../shared/data/WebFace10/train \
        --cache .cache/webface10-train-embeddings.npz
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from segue_cli.cluster import estimate_k, kmeans, matched_accuracy  # noqa: E402
from segue_cli.datasets import scan_image_folder  # noqa: E402
from segue_cli.faces.embedding import DlibEmbedder  # noqa: E402
from segue_cli.imageio import load_image  # noqa: E402


def embeddings(root: Path, cache: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if cache.is_file():
        data = np.load(cache)
        return data["V"], data["F"], data["Y"]
    dataset = scan_image_folder(root)
    embedder = DlibEmbedder()
    vectors, found = [], []
    for n, item in enumerate(dataset.items, 1):
        face = embedder.embed(load_image(item.path).rgb)
        vectors.append(face.vector)
        found.append(face.face_found)
        if n % 100 == 0:
            print(f"embedded {n}/{len(dataset.items)}", file=sys.stderr)
    V, F, Y = np.stack(vectors), np.array(found), np.array(dataset.targets)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, V=V, F=F, Y=Y)
    return V, F, Y


def silhouette_k(points: np.ndarray, seed: int) -> int:
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    scores = {k: silhouette_score(points, KMeans(k, n_init=10, random_state=seed).fit_predict(points))
              for k in range(2, min(20, len(points) - 1) + 1)}
    return max(scores, key=lambda k: scores[k])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path)
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--trials", type=int, default=2, help="subsets per (identities, photos) cell; 0: whole set only")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    V, F, Y = embeddings(args.data, args.cache)
    ids = int(Y.max()) + 1
    labels, _ = kmeans(V, ids, args.seed, 10)
    accuracy, _ = matched_accuracy(labels, [str(y) for y in Y])
    print(f"{len(V)} photos, {ids} identities, face detected in {int(F.sum())}; "
          f"K-means K={ids} accuracy {accuracy:.4f}; estimate on all: K={estimate_k(V, 0.05, args.seed)[0]}")
    if args.trials < 1:
        return
    rng = np.random.default_rng(args.seed)
    rows = []
    for n_ids in (2, 3, 5, 7, 10):
        for per in (8, 20, 60, 130):
            for _ in range(args.trials):
                chosen = rng.choice(ids, min(n_ids, ids), replace=False)
                idx = np.concatenate([rng.choice(np.flatnonzero(Y == c), min(per, int((Y == c).sum())), replace=False)
                                      for c in chosen])
                rows.append((len(chosen), per, estimate_k(V[idx], 0.05, args.seed)[0], silhouette_k(V[idx], args.seed)))
                print("ids %2d x %3d photos: auto K=%2d, silhouette K=%2d" % rows[-1], flush=True)
    table = np.array(rows)
    for column, name in ((2, "segue --k auto"), (3, "best silhouette")):
        print(f"{name}: exact {np.mean(table[:, column] == table[:, 0]):.0%} of {len(table)}, "
              f"mean |error| {np.mean(np.abs(table[:, column] - table[:, 0])):.2f}")


if __name__ == "__main__":
    main()
