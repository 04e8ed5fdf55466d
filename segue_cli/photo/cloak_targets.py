"""``--cloak-target others``: a target for each person of one run, taken from the run's other people.

A platform that protects many people at once (``segue protect ROOT --by-folder --cloak``) has
what a single user lacks: other people's faces. The cloak study found that everyone
cloaked, each pulled toward a *different* person, moved SFace (a network the cloak is not
made against) furthest, where one face shared by everyone moved every class together
(docs/research/2026-12-07-cloak-targets.md). So each person (a code of the run's side
information) is pulled toward the mean face of the farthest other person of the run (the
lowest mean cosine over the cloak's networks), each person taken once while any is left.

The pairing is computed while the job is planned, from the original photos, and travels in
the cloak's config (``CloakConfig.person_targets``: person -> each network's unit mean, as
bytes so the config stays hashable and ships to a Ray actor as it is). A person is who the
side information names (the ``--by-folder`` folder, the ``--labels`` identity), not their
code: two people may share a code (a decoy model has only K), never a target.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Hashable, Iterable, Mapping, TypeVar

from ..errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

    from .cloak import IdentityCloak

Person = TypeVar("Person", bound=Hashable)
Descriptors = Mapping[str, "np.ndarray"]  # {network: unit descriptor}
# (person, target person, ((network, float32 bytes of the target's unit mean), ...)), one entry a
# person: CloakConfig.person_targets
PersonTargets = tuple[tuple[str, str, tuple[tuple[str, bytes], ...]], ...]


def farthest_targets(people: Mapping[Person, Descriptors], pool: Mapping[Person, Descriptors]) -> dict[Person, Person]:
    """Each person's target: the pool person least like them (mean cosine over the networks),
    never themselves, each pool person taken once while any is left (in the order of ``people``)."""
    import numpy as np

    taken: set[Person] = set()
    targets: dict[Person, Person] = {}
    for person, own in people.items():
        others = [p for p in pool if p != person]
        if not others:
            raise ConfigError("--cloak-target others needs at least two people with a face in the run",
                              "protect several people at once (--by-folder or --labels), or give --cloak-target PATH")
        candidates = [p for p in others if p not in taken] or others

        def closeness(candidate: Person) -> float:
            return float(np.mean([float(own[n] @ pool[candidate][n]) for n in own]))

        targets[person] = min(candidates, key=closeness)
        taken.add(targets[person])
    return targets


def run_person_targets(cloak: IdentityCloak, photos: Iterable[tuple[Path, str]], max_pixels: int,
                       on_photo: Callable[[], None] = lambda: None) -> tuple[PersonTargets, int, int]:
    """``--cloak-target others`` for one run: ``photos`` ((path, person) for every photo of the
    run, done or not, so that a re-run of the same photos pairs people as the first run did) ->
    (the config's person_targets, people read, photos that could not be read). A person none of
    whose photos shows a face gets no target (their photos are cloaked away from themselves
    only); a photo that cannot be read is left out here and fails on its own when protected."""
    by_person: dict[str, list[Path]] = defaultdict(list)
    for path, person in photos:
        by_person[person].append(path)
    means, unreadable = {}, 0
    for person in sorted(by_person):
        mean, failed = cloak.face_mean(by_person[person], on_photo, max_pixels=max_pixels, skip_unreadable=True)
        unreadable += failed
        if mean is not None:
            means[person] = mean
    if len(means) < 2:
        raise ConfigError(f"--cloak-target others needs at least two people with a face in the run: of {len(by_person)} "
                          f"people read, {len(means)} had a face found",
                          "add clear, large photos of more people, or give --cloak-target PATH (another person's photos)")
    pairs = farthest_targets(means, means)
    targets = tuple((person, target, tuple((name, means[target][name].astype("float32").tobytes())
                                           for name in sorted(means[target])))
                    for person, target in pairs.items())
    return targets, len(by_person), unreadable
