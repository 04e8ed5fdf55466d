"""The identity cloak of ``segue protect --cloak`` (issues 17 and 40): a per-photo
perturbation against pretrained face-recognition networks.

The generator's perturbation makes photos unlearnable for a model trained on them from
scratch; it does nothing against a system that matches faces with a network trained
elsewhere. Per-photo optimisation does move such a network's descriptor, within the same
budget, so the cloak is made for each photo, Fawkes' route (about a second a photo):

- each network of the ensemble (``CloakConfig.networks``; by default every one in the
  registry ``faces.networks``: dlib's ResNet and two MobileFaceNets) locates and aligns the
  face as its attacker does (``faces.face_nets.FaceLocator``: dlib's chip, or YuNet's five
  points to ArcFace's template; a detector that misses while the other finds the face falls
  back to a tight crop's framing; a photo where none finds a face is left uncloaked);
- the cloak is one luminance channel (the same change on R, G and B: a black-and-white
  photo stays black and white, and an attacker's grayscale keeps it) on a grid of about
  half the face region's pixels (at most 150 px), upsampled to the region;
- it is added to the generator's protected photo and the sum is clipped to epsilon of the
  clean photo, so the two share the budget and the bound holds exactly;
- ``steps`` signed-gradient steps lower the mean, over the networks, of the cosine
  similarity between the cloaked face's descriptor (seen through the training distortion
  layer: a fresh draw of blur, resize and JPEG each step, no flips) and the clean photo's
  own descriptor (a feature-level objective that needs no other photo of the person).

SFace (OpenCV Zoo) is never in the ensemble: it judges whether the cloak transfers to a
network it was not made against (docs/model-card.md).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from ..errors import ConfigError, InputError
from ..choices import DEFAULT_MAX_PIXELS, check_ranges
from ..faces.networks import FACE_NETWORKS, SURROGATES
from .cloak_steps import optimise
from .cloak_targets import PersonTargets

if TYPE_CHECKING:  # numpy and torch load when a cloak is made: ProtectConfig imports this module
    import numpy as np

# The face every photo is pulled toward with target "example": NASA's public-domain portrait of
# Eileen Collins, which also serves `segue protect --example`.
EXAMPLE_TARGET = Path(__file__).resolve().parents[1] / "data" / "example-astronaut.png"
REGION_MARGIN = 8  # px around the chip's footprint: the distortion layer's blur reaches past it
CLOAK_SPLITS = ("clip", "keep-colour")
CLOAK_TARGETS = ("example", "none", "others")


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
    # The face networks it is made against (faces.networks.FACE_NETWORKS), each with its own
    # alignment; the objective is the mean of their cosines. ("dlib",) is issue 17's cloak.
    networks: tuple[str, ...] = SURROGATES
    # > 0: LowKey's smoothing, the objective also on a Gaussian-smoothed copy (kernel 7,
    # sigma 3) with this weight, so the cloak does not hide in the finest pixels.
    smoothing: float = 0.0
    # > 0: every step sees each network's crop moved by up to this share of its side (and
    # scaled by up to 1 +/- it), as another detector would place it: input diversity. 0.05
    # lowered SFace's recall of 12 cloaked LFW48 people in every one of them or left it
    # (82.1% -> 72.7%, nearest class mean); 0.1 raised it (93.4%), the cloak too blurred at 10
    # steps (docs/research/2026-12-07-cloak-targets.md).
    jitter: float = 0.05
    # > 0: the cloak's reach at each pixel follows the face's texture, (1 - texture) + texture x
    # the local contrast (the clean luminance's 7 x 7 standard deviation over its 90th
    # percentile in the region, at most 1), so flat skin, where a change shows most and SSIM
    # counts it most, changes less (issue 40, item 2: spend the budget where it is seen least).
    texture: float = 0.0
    # "none": only away from the photo's own descriptor. "example": also pulled toward one
    # other face, the same for everyone (the public-domain portrait segue ships as its example),
    # Fawkes' target identity. Not the default: when everyone is cloaked toward the same face,
    # every class moves together and an enrolling attacker still tells them apart (LFW48, all
    # 48 people: dlib's nearest class mean 55.6% with it; docs/research/2026-12-07-ensemble-cloak.md).
    # A path: a photo or folder of photos of another person the user picks (Fawkes' choice: a
    # target of one's own), pulled toward the mean of their faces; each person their own
    # target (docs/research/2026-12-07-cloak-targets.md).
    # "others": in a run of several people, each pulled toward the least similar other person of
    # the run (photo/cloak_targets.py); the planned pairing is ``person_targets``.
    target: str = "none"
    # With target "others": each person's target and its unit mean per network, filled when a
    # folder job is planned (None: not planned). Left out of equality and hash: one IdentityCloak
    # (shared_cloak) serves every pairing, so compose asks this config, never the shared
    # handle's, for each photo's target (``toward``).
    person_targets: PersonTargets | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        # --cloak-epsilon and the step are in 1/255.
        check_ranges(self, {"steps": (1, 1000), "epsilon": (0.001, 16), "step": (0.001, 16), "seed": (0, 2**32 - 1),
                            "grid_divisor": (1, 32), "momentum": (0, 1), "model_noise": (0, 1), "smoothing": (0, 4),
                            "jitter": (0, 0.2), "texture": (0, 1)},
                     flag="--cloak-{}")
        if self.split not in CLOAK_SPLITS:
            raise ConfigError(f"--cloak-split must be one of {', '.join(CLOAK_SPLITS)}, not {self.split!r}")
        if self.model_noise > 0 and "dlib" not in self.networks:
            raise ConfigError("--cloak-model-noise perturbs dlib's network, which --cloak-networks leaves out",
                              "add dlib to --cloak-networks, or drop the model noise")
        if self.target not in CLOAK_TARGETS and not Path(self.target).exists():
            raise ConfigError(f"--cloak-target must be {', '.join(CLOAK_TARGETS)}, or a photo or folder of another "
                              f"person's face; {self.target!r} is none of them (no such file or folder)",
                              "e.g. --cloak-target ./decoy-photos (someone else's face, clear and large)")
        unknown = [name for name in self.networks if name not in FACE_NETWORKS]
        if unknown or not self.networks or len(set(self.networks)) != len(self.networks):
            raise ConfigError(f"--cloak-networks takes distinct names from {', '.join(FACE_NETWORKS)}, not "
                              f"{','.join(self.networks) or 'nothing'}", "e.g. --cloak-networks dlib,faceplugin")

    def target_key(self) -> str:
        """The target as the settings record holds it: a path with a digest of its files'
        bytes, so that other photos under the same path do not count as the same target."""
        if self.target in CLOAK_TARGETS:  # "others": the rule; the pairing follows from the run's photos
            return self.target
        import hashlib

        from ..imageio import discover_images

        digest = hashlib.sha256()
        for path in discover_images(Path(self.target)):
            digest.update(path.read_bytes())
        return f"{self.target} (sha256 {digest.hexdigest()[:16]})"

    @property
    def pairs_people(self) -> bool:
        """Target "others": the people of a run are paired while it is planned."""
        return self.target == "others"

    def toward(self, person: str | None) -> tuple[str, dict[str, np.ndarray]] | None:
        """With target "others", the person's own (target person, its descriptors); None: the
        cloak's one target for every photo (or none), or a person with no face found."""
        if not self.pairs_people:
            return None
        if self.person_targets is None or person is None:
            raise ConfigError("--cloak-target others pairs the people of one folder run, and this photo was not "
                              "planned in such a run", "protect a folder of several people with --by-folder or --labels "
                              "(in Python: protect_folder; one photo at a time has no other people)")
        return self._targets_by_person.get(person)

    @cached_property
    def _targets_by_person(self) -> dict[str, tuple[str, dict[str, np.ndarray]]]:
        import numpy as np

        return {person: (target, {name: np.frombuffer(data, dtype=np.float32).copy() for name, data in vectors})
                for person, target, vectors in self.person_targets or ()}

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
    similarity: float  # mean over the networks of the cloaked face's descriptor's cosine to the reference (1: unmoved)
    face_found: bool  # False: no detector found a face, and the photo was left uncloaked
    similarities: dict[str, float]  # each network's cosine


class IdentityCloak:
    """The ensemble's networks and their face locator, opened once; :meth:`cloak` per photo.
    Safe to call from several threads (the networks are only read; detection is locked)."""

    def __init__(self, config: CloakConfig = CloakConfig()) -> None:
        from ..extras import require

        require("protect --cloak")
        from ..faces.face_nets import FaceLocator, shared_face_net
        from ..nn.distortions import DistortionConfig

        self.config = config
        self.nets = {name: shared_face_net(name) for name in config.networks}
        self.locator = FaceLocator(config.networks)
        self.layer = DistortionConfig()
        # dlib's embedder and twin, for the research probes that use them directly (None without dlib).
        self.embedder: Any = self.locator.dlib
        self.net: Any = self.nets["dlib"].twin if "dlib" in self.nets else None
        self.target: dict[str, np.ndarray] | None = None
        if config.target not in ("none", "others"):
            self.target = self.target_descriptors(config.target)

    def cloak(self, clean: np.ndarray, protected: np.ndarray, epsilon: float,
              reference: dict[str, np.ndarray] | None = None, toward: dict[str, np.ndarray] | None = None
              ) -> CloakResult:
        """``protected`` (the generator's output, H x W x 3 uint8) cloaked against ``clean``'s
        own descriptors, or against ``reference`` ({network: descriptor}, e.g. the mean of the
        person's clean photos), every pixel within ``epsilon`` of ``clean``; with ``toward``
        ({network: descriptor of another face}) also pulled toward it, one direction for all
        of a person's photos (research/identity_cloak.py --toward)."""
        import numpy as np
        import torch

        toward = self.target if toward is None else toward
        maps, found = self.locator.locate(clean)
        if not found:  # no detector sees a face: nothing to cloak, and the photo is said to be uncloaked
            return CloakResult(protected.copy(), 1.0, False, {})
        (top, bottom), (left, right) = _region(maps, clean.shape[0], clean.shape[1])
        matrices = {}
        for name, matrix in maps.items():
            matrix = matrix.copy()
            matrix[:, 2] -= (left, top)  # the crop's map within the region
            matrices[name] = torch.from_numpy(matrix)[None]

        def tensors(vectors: dict[str, np.ndarray] | None) -> dict[str, Any] | None:
            return None if vectors is None else {n: torch.from_numpy(np.asarray(v, np.float32)) for n, v in vectors.items()}

        with _one_torch_thread():
            region, similarities = optimise(
                self, torch.from_numpy(np.array(clean[top:bottom, left:right])),
                torch.from_numpy(np.array(protected[top:bottom, left:right])), matrices, epsilon,
                tensors(reference), tensors(toward))
        pixels = protected.copy()
        pixels[top:bottom, left:right] = region
        return CloakResult(pixels, sum(similarities.values()) / len(similarities), found, similarities)

    def target_descriptors(self, target: str) -> dict[str, np.ndarray]:
        """The face every photo is pulled toward: the example portrait's descriptors, or
        each network's mean over the faces found in a photo or folder (``target``)."""
        from ..imageio import discover_images

        paths = [EXAMPLE_TARGET] if target == "example" else discover_images(Path(target))
        mean, _ = self.face_mean(paths)
        if mean is None:
            raise InputError(f"--cloak-target {target}: no face found in {len(paths)} photo(s)",
                             "give photos of another person where the face is clear and large")
        return mean

    def face_mean(self, paths: list[Path], on_photo: Callable[[], None] = lambda: None, *,
                  max_pixels: int = DEFAULT_MAX_PIXELS, skip_unreadable: bool = False
                  ) -> tuple[dict[str, np.ndarray] | None, int]:
        """(each network's unit mean over the faces found in ``paths``, one face: its own
        descriptors, None when no photo shows a face; photos that could not be read, which
        ``skip_unreadable`` leaves out instead of raising). ``on_photo`` is called after each photo."""
        import numpy as np

        from ..faces.face_nets import describe
        from ..imageio import load_image

        found, unreadable = [], 0
        with _one_torch_thread():  # as every cloak is computed: the same bytes on every machine and engine
            for path in paths:
                try:
                    rgb = load_image(path, max_pixels).rgb
                except InputError:
                    if not skip_unreadable:
                        raise
                    unreadable += 1
                else:
                    vectors, seen = describe(self.nets, self.locator, rgb)
                    if seen:
                        found.append(vectors)
                on_photo()
        if len(found) <= 1:
            return (found[0] if found else None), unreadable
        means = {name: np.mean([vectors[name] for vectors in found], axis=0) for name in self.nets}
        return {name: (mean / np.linalg.norm(mean)).astype(np.float32) for name, mean in means.items()}, unreadable

    def descriptors(self, rgb: np.ndarray) -> dict[str, np.ndarray]:
        """Each network's unit descriptor of the photo's face, aligned as the cloak aligns it
        (for a person's centroid, or another face to pull toward)."""
        from ..faces.face_nets import describe

        return describe(self.nets, self.locator, rgb)[0]


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


def _region(maps: dict[str, np.ndarray], height: int, width: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """Rows and columns of the photo the networks' crops are cut from (their footprints plus a margin)."""
    import numpy as np

    points = []
    for name, matrix in maps.items():
        last = float(FACE_NETWORKS[name].input_size - 1)
        points += [matrix @ np.array([x, y, 1.0]) for x, y in ((0.0, 0.0), (last, 0.0), (0.0, last), (last, last))]
    corners = np.array(points)
    left, top = np.floor(corners.min(axis=0)).astype(int) - REGION_MARGIN
    right, bottom = np.ceil(corners.max(axis=0)).astype(int) + REGION_MARGIN + 1
    top, left = max(0, int(top)), max(0, int(left))
    bottom, right = min(height, max(top + 16, int(bottom))), min(width, max(left + 16, int(right)))
    return (top, bottom), (left, right)


@lru_cache(maxsize=4)
def shared_cloak(config: CloakConfig) -> IdentityCloak:
    """One cloak per process and setting (the folder pipeline's threads, each Ray actor)."""
    return IdentityCloak(config)
