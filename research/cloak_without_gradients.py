"""Purpose: could `--cloak` run without torch (issue 32, item 5)? ONNX Runtime computes no
gradients (onnxruntime-training ended at 1.19 and shares the `onnxruntime` import name with
the core's, so they cannot be installed together), so a torch-free cloak would estimate the
gradient from forward passes alone (SPSA: the change of the objective along random +/-1
directions). This probe measures, on real faces, how far SPSA moves dlib's descriptor with
K forward pairs a step against the true gradient's 10 steps, and what one forward pass of
dlib's network costs in ONNX Runtime (exported here, checked against the twin).

  python research/cloak_without_gradients.py --photos 12
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from segue_cli.imageio import load_image  # noqa: E402
from segue_cli.nn.delta import upsample  # noqa: E402
from segue_cli.photo.cloak import IdentityCloak, _region  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "WebFace10" / "train"


def objective_factory(cloak: IdentityCloak, rgb: np.ndarray, epsilon: float):
    """(similarity(delta) of the cloaked face to the clean one, the delta's grid shape)."""
    matrix, _ = cloak.embedder.chip_map(np.ascontiguousarray(rgb))
    (top, bottom), (left, right) = _region(matrix, *rgb.shape[:2])
    matrix[:, 2] -= (left, top)
    clean = torch.from_numpy(np.array(rgb[top:bottom, left:right])).permute(2, 0, 1)[None].float() / 255
    matrix_t = torch.from_numpy(matrix)[None]
    reference = cloak.net.unit_descriptors(clean * 255, matrix_t).detach()
    height, width = clean.shape[-2:]
    grid = (max(8, min(150, round(height / 2))), max(8, min(150, round(width / 2))))

    def similarity(delta: torch.Tensor) -> torch.Tensor:
        photo = (clean + upsample(delta, (height, width))).clamp(clean - epsilon, clean + epsilon).clamp(0, 1)
        return (cloak.net.unit_descriptors(photo * 255, matrix_t.expand(len(photo), -1, -1)) * reference).sum(dim=1)

    return similarity, grid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=12)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--pairs", type=int, nargs="+", default=[4, 16, 64], help="SPSA forward pairs a step")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cloak = IdentityCloak()
    epsilon, reach, step = 8 / 255, 16 / 255, 2 / 255
    paths = sorted(DATA.rglob("*.jpg"))[:: max(1, 1300 // args.photos)][: args.photos]
    rows: dict[str, list[float]] = {"gradient": [], **{f"spsa {k}": [] for k in args.pairs}}
    seconds: dict[str, float] = {name: 0.0 for name in rows}
    rng = torch.Generator().manual_seed(0)
    for path in paths:
        similarity, grid = objective_factory(cloak, load_image(path).rgb, epsilon)
        started = time.perf_counter()
        delta = torch.zeros(1, 1, *grid, requires_grad=True)
        for _ in range(args.steps):
            (gradient,) = torch.autograd.grad(similarity(delta).sum(), delta)
            with torch.no_grad():
                delta -= step * gradient.sign()
                delta.clamp_(-reach, reach)
        seconds["gradient"] += time.perf_counter() - started
        rows["gradient"].append(float(similarity(delta.detach())))
        for pairs in args.pairs:
            started = time.perf_counter()
            delta = torch.zeros(1, 1, *grid)
            with torch.no_grad():
                for _ in range(args.steps):
                    directions = torch.randint(0, 2, (pairs, 1, *grid), generator=rng).float() * 2 - 1
                    probe = 1 / 255
                    plus = similarity((delta + probe * directions).clamp(-reach, reach))
                    minus = similarity((delta - probe * directions).clamp(-reach, reach))
                    estimate = ((plus - minus)[:, None, None, None] * directions).mean(dim=0, keepdim=True)
                    delta = (delta - step * estimate.sign()).clamp(-reach, reach)
            seconds[f"spsa {pairs}"] += time.perf_counter() - started
            rows[f"spsa {pairs}"].append(float(similarity(delta)))
    with tempfile.TemporaryDirectory() as folder:  # dlib's network alone in ONNX Runtime: one chip's forward
        import onnxruntime as ort

        onnx_path = Path(folder) / "dlib.onnx"
        chips = torch.rand(1, 3, 150, 150) * 255
        torch.onnx.export(cloak.net, (chips,), str(onnx_path), input_names=["chips"], output_names=["descriptor"],
                          dynamic_axes={"chips": {0: "batch"}}, dynamo=False)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        batch = (torch.rand(16, 3, 150, 150) * 255).numpy()
        agree = float(np.abs(session.run(None, {"chips": batch})[0] - cloak.net(torch.from_numpy(batch)).detach().numpy()).max())
        started = time.perf_counter()
        for _ in range(5):
            session.run(None, {"chips": batch})
        per_chip_ms = 1000 * (time.perf_counter() - started) / (5 * len(batch))
    print(f"{len(paths)} WebFace10 photos, {args.steps} steps of 2/255 within 8/255, one torch thread; the cosine of "
          "the cloaked face's dlib descriptor to the clean one (1: unmoved; lower is a stronger cloak):\n")
    print("| how the step's direction is found | mean cosine after | s a photo | forward passes a photo |")
    print("|---|---|---|---|")
    print(f"| true gradient (torch autograd, as `--cloak`) | {np.mean(rows['gradient']):.3f} | "
          f"{seconds['gradient'] / len(paths):.2f} | {args.steps} (+ {args.steps} backward) |")
    for pairs in args.pairs:
        name = f"spsa {pairs}"
        print(f"| SPSA, {pairs} forward pairs a step | {np.mean(rows[name]):.3f} | {seconds[name] / len(paths):.2f} | "
              f"{2 * pairs * args.steps} |")
    print(f"\ndlib's network in ONNX Runtime, one thread: {per_chip_ms:.1f} ms a 150 px chip (batch 16; largest "
          f"difference from the twin {agree:.1e}).")


if __name__ == "__main__":
    main()
