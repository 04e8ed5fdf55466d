"""``segue protect``'s settings: one frozen dataclass, checked when made.

Imports nothing heavy (no numpy, Pillow or model runtime), so that a bad option is
reported before any of them load (docs/benchmarks.md "A small run")."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..backends import BACKEND_CHOICES
from ..photo.cloak import CloakConfig
from ..faces import DETECTOR_CHOICES
from ..choices import DEFAULT_MAX_PIXELS, DEFAULT_STRENGTH, FACE_MODES, STRENGTHS, FaceMode
from ..errors import ConfigError, check_options, check_ranges
from ..formats import DEFAULT_QUALITY, OUTPUT_FORMATS, lossy_warning
from ..job import engines

FORMATS = tuple(OUTPUT_FORMATS)


def default_workers(cloak: bool = False) -> int:
    """Half the cores (at most 8) decode and encode; the generator gets the other half:
    per photo both sides cost about the same CPU time (docs/benchmarks.md). With --cloak
    every core (at most 8): each worker cloaks one photo on one thread, seconds a photo
    against the generator's milliseconds."""
    return max(1, min(8, (os.cpu_count() or 1) // (1 if cloak else 2)))


# Every numeric option's range (errors.check_ranges): finite, and these bounds, or exit 2.
RANGES = {"label": (0, 2**32 - 1), "quality": (1, 100), "workers": (1, 256), "batch_size": (1, 4096),
          "max_pixels": (1, 10**10), "actors": (1, 100_000)}


@dataclass(frozen=True)
class ProtectConfig:
    input: Path | str  # a folder, an image file, or "-" (the paths are in ``paths``)
    paths: tuple[str, ...] = ()
    out: Path | str | None = None  # default: <input root>-protected beside the input root; a URI for --engine ray
    identity: str | None = None
    label: int | None = None
    labels: Path | None = None
    by_folder: bool = False
    model: str | None = None
    backend: str = "auto"
    device: str = "auto"
    image_format: str = "png"
    quality: int | None = None  # jpeg/webp only; default 95
    keep_metadata: bool = False
    overwrite: bool = False
    workers: int = field(default_factory=default_workers)
    batch_size: int = 16
    max_pixels: int = DEFAULT_MAX_PIXELS
    faces: FaceMode = "auto"  # auto: face-aware above 2 x working size (plans.uses_faces); on; off
    detector: str = "auto"  # face detector: auto (YuNet, else dlib), yunet, dlib
    wait: bool = False  # wait for another run that holds OUT instead of refusing
    engine: str = "local"  # local (this machine's threads) or ray (engines/ray_engine.py)
    ray_address: str | None = None  # None: start a local Ray; "auto" or HOST:PORT: join a cluster
    actors: int | None = None  # Ray actors (None: one per CPU of the cluster)
    engine_progress: bool = True  # the Ray engine's own progress bars (off for --quiet and --json)
    quiet: bool = False  # --quiet: nothing on stderr but the failed files (the Ray engine's own notices silenced)
    cloak: CloakConfig | None = None  # also cloak each face against the face networks of photo/cloak.py
    strength: str = DEFAULT_STRENGTH  # the share of the model's epsilon the perturbation uses (choices.STRENGTHS)

    def __post_init__(self) -> None:
        chosen = [name for name, given in (("--identity", self.identity is not None), ("--label", self.label is not None),
                                           ("--labels", self.labels is not None), ("--by-folder", self.by_folder)) if given]
        if len(chosen) > 1:
            raise ConfigError(f"{' and '.join(chosen)} cannot be combined", "give at most one source of side information")
        if self.image_format not in FORMATS:
            raise ConfigError(f"unknown format {self.image_format!r}", f"use one of {', '.join(FORMATS)}")
        if self.quality is not None:
            if not OUTPUT_FORMATS[self.image_format].lossy:
                lossy = " and ".join(name for name, fmt in OUTPUT_FORMATS.items() if fmt.lossy)
                raise ConfigError(f"--quality applies to {lossy} only", f"{self.image_format.upper()} is lossless; drop --quality")
            if not 1 <= self.quality <= 100:
                raise ConfigError(f"--quality {self.quality} is out of range", "use 1..100")
        if self.strength not in STRENGTHS:
            raise ConfigError(f"unknown --strength {self.strength!r}", f"use one of {', '.join(STRENGTHS)}")
        if self.faces not in FACE_MODES:
            raise ConfigError(f"unknown face mode {self.faces!r}", f"use one of {', '.join(FACE_MODES)}")
        if self.detector not in DETECTOR_CHOICES:
            raise ConfigError(f"unknown face detector {self.detector!r}", f"use one of {', '.join(DETECTOR_CHOICES)}")
        if self.backend not in BACKEND_CHOICES:
            raise ConfigError(f"unknown backend {self.backend!r}", f"use one of {', '.join(BACKEND_CHOICES)}")
        if self.engine not in engines():
            raise ConfigError(f"unknown engine {self.engine!r}", f"use one of {', '.join(engines())}")
        if self.engine != "ray" and (self.ray_address is not None or self.actors is not None):
            raise ConfigError("--ray-address and --actors apply to --engine ray only", "add --engine ray")
        check_options([(value is None or value >= 1, f"{name} must be at least 1 (got {value})")
                       for name, value in (("--actors", self.actors), ("--workers", self.workers),
                                           ("--batch-size", self.batch_size), ("--max-pixels", self.max_pixels))])
        check_ranges(self, RANGES)
    @property
    def generator_threads(self) -> int:
        """Threads the generator may use: the local engine leaves the I/O workers their
        cores (oversubscribed, the generator's intra-op threads spin against the encoders
        and both slow down, about 4x on a busy 2-core machine); a Ray actor has one CPU."""
        return max(1, (os.cpu_count() or 1) - self.workers) if self.engine == "local" else 1

    @property
    def output_quality(self) -> int | None:
        """The JPEG/WebP quality the outputs get; None for lossless PNG."""
        return (self.quality or DEFAULT_QUALITY) if OUTPUT_FORMATS[self.image_format].lossy else None

    @property
    def lossy_warning(self) -> str | None:
        return lossy_warning(self.image_format, self.output_quality)
