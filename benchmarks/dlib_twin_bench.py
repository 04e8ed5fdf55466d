"""dlib's face-recognition network against its PyTorch twin, on the same photos.

Embeds every photo (default: the 1,500 WebFace10 photos, train and test) twice with
`DlibEmbedder`: once with dlib's own loop (``engine="dlib"``: detect, 5 landmarks,
``compute_face_descriptor``) and once with the twin (``engine="twin"``: the same detection,
landmarks and dlib chip, the network in batches of 16). Prints the wall time of each, the
ratio, and the largest difference between the two descriptors of a photo.

    python benchmarks/dlib_twin_bench.py            # the figure in docs/benchmarks.md
    python benchmarks/dlib_twin_bench.py --limit 64 # a quick check
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "WebFace10"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--threads", type=int, default=0, help="torch threads for the twin (0: torch's default)")
    args = parser.parse_args()

    import torch

    from segue_cli.faces.embedding import DlibEmbedder
    from segue_cli.imageio import load_image

    if args.threads:
        torch.set_num_threads(args.threads)
    paths = sorted(p for split in ("train", "test") for p in (args.data / split).rglob("*.jpg"))[: args.limit]
    photos = [load_image(p).rgb for p in paths]
    timings, vectors = {}, {}
    for engine in ("twin", "dlib"):
        embedder = DlibEmbedder(engine=engine)
        started = time.perf_counter()
        faces = [face for i in range(0, len(photos), 16) for face in embedder.embed_many(photos[i : i + 16])]
        timings[engine] = time.perf_counter() - started
        vectors[engine] = np.stack([face.vector for face in faces])
    print(json.dumps({
        "photos": len(photos), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "dlib_seconds": round(timings["dlib"], 1), "twin_seconds": round(timings["twin"], 1),
        "twin_share_of_dlib_time": round(timings["twin"] / timings["dlib"], 3),
        "max_abs_difference": float(np.abs(vectors["twin"] - vectors["dlib"]).max()),
    }, indent=2))


if __name__ == "__main__":
    main()
