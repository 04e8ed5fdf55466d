"""The one way the probes write a protected ImageFolder tree for `segue evaluate`: each photo
decoded, its delta (in 8-bit levels, H x W x 1 or x 3) added and clipped, saved as PNG under
OUT/<identity>/<stem>.png; a person the probe leaves alone gets no delta (identical pixels,
which evaluate counts as untouched)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from segue_cli.datasets import LabelledImage, LabelledSet
from segue_cli.imageio import load_image, save_image

Delta = Callable[[LabelledImage, np.ndarray], "np.ndarray | None"]  # (photo, its pixels) -> levels, or None


def write_tree(dataset: LabelledSet, out: Path, delta_of: Delta) -> None:
    for item in dataset.items:
        rgb = load_image(item.path).rgb
        delta = delta_of(item, rgb)
        if delta is not None:
            delta = delta if delta.ndim == 3 else delta[..., None]
            rgb = np.clip(rgb.astype(np.float64) + delta, 0, 255).astype(np.uint8)
        target = out / item.identity / (item.path.stem + ".png")
        target.parent.mkdir(parents=True, exist_ok=True)
        save_image(target, rgb)
