"""The identity cloak of ``segue protect --cloak`` (issue 17): a per-photo perturbation
against a pretrained face-recognition network.

The generator's perturbation makes photos unlearnable for a model trained on them from
scratch; it does nothing against a system that matches faces with a network trained
elsewhere (docs/evaluation.md: dlib's embedding recognises 95% of the people protected by
the shipped model). No generator trained here learned to move dlib's descriptor, but
per-photo optimisation does, within the same 8/255 of luminance. So the cloak is made for
each photo, Fawkes' route (most of a second a photo, not the generator's milliseconds):

- the face is located and aligned as dlib's attacker does it (the largest face; a tight
  crop's centre box when the detector finds none, as the attacker also assumes);
- the cloak is one luminance channel (the same change on R, G and B: a black-and-white
  photo stays black and white, and an attacker's grayscale keeps it) on a grid of about
  half the face region's pixels, at most dlib's 150 px chip, upsampled to the region;
- it is added to the generator's protected photo and the sum is clipped to epsilon of the
  clean photo, so the two share the budget and the bound holds exactly;
- ``steps`` signed-gradient steps (10 by default, about 0.6 s a photo on one CPU thread) lower the cosine similarity between the descriptor of
  the cloaked face (through the PyTorch twin of dlib's network, seen through the training
  distortion layer: a fresh draw of blur, resize and JPEG each step, no flips) and the
  clean photo's own descriptor, which needs no other photo of the person.

White box: dlib's network is the one it is made against; other face networks could not be
measured offline and may see through it.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Iterator

from ..errors import ConfigError, check_ranges
from ..faces.dlib_weights import CHIP_SIZE

if TYPE_CHECKING:  # numpy and torch load when a cloak is made: ProtectConfig imports this module
    import numpy as np

_LAST = float(CHIP_SIZE - 1)
CHIP_CORNERS = ((0.0, 0.0), (_LAST, 0.0), (0.0, _LAST), (_LAST, _LAST))  # dlib's chip, in its own pixels
REGION_MARGIN = 8  # px around the chip's footprint: the distortion layer's blur reaches past it
CLOAK_SPLITS = ("clip", "keep-colour")


@dataclass(frozen=True)
class CloakConfig:
    steps: int = 10  # 30 moves the descriptor further at 2.3x the time and a lower SSIM (docs/evaluation.md)
    # The most the cloak changes any pixel of the generator's output, in 1/255 (None: as far
    # as the model's bound allows; the sum stays within the model's epsilon of the clean
    # photo either way). Less keeps the photo closer (SSIM) and cloaks less.
    epsilon: float | None = None
    step: float | None = None  # in 1/255 per step; None: a quarter of the cloak's reach, at most 2/255
    seed: int = 0  # the distortion draws; the same photo always gets the same cloak
    # Knobs for transfer to networks the cloak is not made against (issue 32; research/identity_cloak.py):
    grid_divisor: int = 2  # the cloak's grid is the face region's size over this (larger: smoother)
    momentum: float = 0.0  # > 0: MI-FGSM, steps follow a running mean of normalised gradients
    model_noise: float = 0.0  # > 0: every step sees a copy of the network with its channel scales x (1 + N(0, s))
    # How the cloak shares the bound with the generator's perturbation (issue 32, item 4):
    # "clip": the sum is clipped to the bound channel by channel, so where the cloak pushes
    # past it the generator's colour pattern is lost; "keep-colour": the cloak only takes the
    # room every channel has, so the differences between R, G and B (the generator's colour
    # code) stay exactly as the generator made them.
    split: str = "clip"

    def __post_init__(self) -> None:
        # --cloak-epsilon and the step are in 1/255.
        check_ranges(self, {"steps": (1, 1000), "epsilon": (0.001, 16), "step": (0.001, 16), "seed": (0, 2**32 - 1),
                            "grid_divisor": (1, 32), "momentum": (0, 1), "model_noise": (0, 1)}, flag="--cloak-{}")
        if self.split not in CLOAK_SPLITS:
            raise ConfigError(f"--cloak-split must be one of {', '.join(CLOAK_SPLITS)}, not {self.split!r}")

    def reach(self, model_epsilon: float) -> tuple[float, float]:
        """(the cloak's largest change to the generator's output, its step), [0, 1] units.
        Unlimited, it may reach twice the model's epsilon: where the generator spent
        +epsilon, the cloak can still take the pixel to -epsilon."""
        reach = 2 * model_epsilon if self.epsilon is None else self.epsilon / 255
        step = min(reach / 4, 2 / 255) if self.step is None else self.step / 255
        return reach, step


@dataclass(frozen=True)
class CloakResult:
    pixels: np.ndarray  # H x W x 3 uint8: within epsilon of the clean photo
    similarity: float  # cosine of the cloaked face's descriptor to the reference (by default the clean face's; 1: unmoved)
    face_found: bool  # False: no face detected, the centre box was cloaked as a face crop


class IdentityCloak:
    """dlib's aligner and the twin of its network, opened once; :meth:`cloak` per photo.
    Safe to call from several threads (the network is only read)."""

    def __init__(self, config: CloakConfig = CloakConfig()) -> None:
        from ..extras import require

        require("protect --cloak")
        from ..faces.embedding import DlibEmbedder
        from ..nn.distortions import DistortionConfig

        self.config = config
        self.embedder = DlibEmbedder(engine="twin")
        self.net = self.embedder.twin.requires_grad_(False)
        self.layer = DistortionConfig()
        self._locate_lock = threading.Lock()  # dlib's detector and shape predictor are not shared across threads

    def cloak(self, clean: np.ndarray, protected: np.ndarray, epsilon: float,
              reference: np.ndarray | None = None, toward: np.ndarray | None = None) -> CloakResult:
        """``protected`` (the generator's output, H x W x 3 uint8) cloaked against ``clean``'s
        own descriptor, or against ``reference`` (a 128-d descriptor, e.g. the mean of the
        person's clean photos), every pixel within ``epsilon`` of ``clean``; with ``toward``
        (a 128-d descriptor of another face) also pulled toward it, one direction for all of a
        person's photos (research/identity_cloak.py --toward)."""
        import numpy as np
        import torch

        with self._locate_lock:
            matrix, found = self.embedder.chip_map(np.ascontiguousarray(clean))
        (top, bottom), (left, right) = _region(matrix, clean.shape[0], clean.shape[1])
        matrix[:, 2] -= (left, top)  # the chip's map within the region
        with _one_torch_thread():
            region, similarity = _optimise(
                self, torch.from_numpy(np.array(clean[top:bottom, left:right])),
                torch.from_numpy(np.array(protected[top:bottom, left:right])), torch.from_numpy(matrix)[None], epsilon,
                None if reference is None else torch.from_numpy(np.asarray(reference, np.float32)),
                None if toward is None else torch.from_numpy(np.asarray(toward, np.float32)))
        pixels = protected.copy()
        pixels[top:bottom, left:right] = region
        return CloakResult(pixels, similarity, found > 0)


_threads_lock = threading.Lock()
_threads_users = 0
_threads_before = 0


@contextmanager
def _one_torch_thread() -> Iterator[None]:
    """torch on one thread while any photo is being cloaked, then as it was. A signed-
    gradient step flips with the last bit of a sum, and how torch splits a sum depends on
    its thread count, so this is what makes a photo's cloak the same bytes on every
    machine and engine (a Ray actor runs on one thread). Photos are cloaked in parallel
    on the engine's worker threads instead (``--workers``)."""
    import torch

    global _threads_users, _threads_before
    with _threads_lock:
        if _threads_users == 0:
            _threads_before = torch.get_num_threads()
        _threads_users += 1
    torch.set_num_threads(1)  # OpenMP's setting is per thread: each cloaking thread sets its own
    try:
        yield
    finally:
        with _threads_lock:
            _threads_users -= 1
            if _threads_users == 0:
                torch.set_num_threads(_threads_before)


def _region(matrix: np.ndarray, height: int, width: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """Rows and columns of the photo the chip is cut from (its footprint plus a margin)."""
    import numpy as np

    corners = np.array([matrix @ np.array([x, y, 1.0]) for x, y in CHIP_CORNERS])
    left, top = np.floor(corners.min(axis=0)).astype(int) - REGION_MARGIN
    right, bottom = np.ceil(corners.max(axis=0)).astype(int) + REGION_MARGIN + 1
    top, left = max(0, int(top)), max(0, int(left))
    bottom, right = min(height, max(top + 16, int(bottom))), min(width, max(left + 16, int(right)))
    return (top, bottom), (left, right)


def _optimise(cloak: IdentityCloak, clean_u8: Any, start_u8: Any, matrix: Any, epsilon: float,
              reference: Any, toward: Any = None) -> tuple[np.ndarray, float]:
    """(the cloaked region, H x W x 3 uint8; its descriptor's cosine to the reference)."""
    import torch
    import torch.nn.functional as F

    from ..nn import distortions
    from ..nn.delta import upsample

    config = cloak.config
    clean = clean_u8.permute(2, 0, 1)[None].float() / 255
    start = start_u8.permute(2, 0, 1)[None].float() / 255
    height, width = clean.shape[-2:]
    grid = (max(8, min(150, round(height / config.grid_divisor))), max(8, min(150, round(width / config.grid_divisor))))
    low, high = (clean - epsilon).clamp(0, 1), (clean + epsilon).clamp(0, 1)
    rng = torch.Generator().manual_seed(config.seed)

    def descriptor(photo: Any, gain: Any = None) -> Any:
        return cloak.net.unit_descriptors(photo * 255.0, matrix, gain)

    keep_colour = config.split == "keep-colour"
    if keep_colour:  # the room all three channels share, so R-G and B-G never change
        room_low, room_high = (low - start).amax(1, keepdim=True), (high - start).amin(1, keepdim=True)

    def shared_change(delta: Any) -> Any:  # keep-colour's one change for R, G and B
        return torch.minimum(torch.maximum(upsample(delta, (height, width)), room_low), room_high)

    def cloaked(delta: Any) -> Any:
        if keep_colour:
            return start + shared_change(delta)
        return torch.minimum(torch.maximum(start + upsample(delta, (height, width)), low), high)

    with torch.no_grad():
        reference = descriptor(clean) if reference is None else F.normalize(reference[None], dim=1)
        target = None if toward is None else F.normalize(toward[None], dim=1)
    reach, step = config.reach(epsilon)  # the clip to the clean photo's bound is in ``cloaked``
    delta = torch.zeros(1, 1, *grid, requires_grad=True)
    velocity = torch.zeros_like(delta)
    for _ in range(config.steps):
        params = distortions.sample(1, cloak.layer, rng).without_flips()  # the chip is cut where the face is
        gain = None
        if config.model_noise > 0:
            gain = 1 + config.model_noise * torch.randn(cloak.net.gammas.shape, generator=rng)
        seen = descriptor(distortions.apply(cloaked(delta), params, cloak.layer), gain)
        similarity = (seen * reference).sum() - (0 if target is None else (seen * target).sum())
        (gradient,) = torch.autograd.grad(similarity, delta)
        with torch.no_grad():
            if config.momentum > 0:
                velocity = config.momentum * velocity + gradient / gradient.abs().mean().clamp_min(1e-12)
                gradient = velocity
            delta -= step * gradient.sign()
            delta.clamp_(-reach, reach)
    with torch.no_grad():
        if keep_colour:  # one rounded change for all three channels: R-G and B-G stay exact
            pixels = start_u8.permute(2, 0, 1)[None].float() + torch.round(shared_change(delta) * 255)
        else:
            pixels = torch.round(cloaked(delta) * 255)  # integer levels within the bound: rounding keeps it
        final = float((descriptor(pixels / 255) * reference).sum())
    return pixels[0].permute(1, 2, 0).to(torch.uint8).numpy(), final


@lru_cache(maxsize=4)
def shared_cloak(config: CloakConfig) -> IdentityCloak:
    """One cloak per process and setting (the folder pipeline's threads, each Ray actor)."""
    return IdentityCloak(config)
