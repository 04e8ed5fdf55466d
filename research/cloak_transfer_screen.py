"""A quick screen of cloak settings for transfer to SFace (issue 40), before any full run.

For a few photos of a few people it makes the cloak under each setting and prints, for
every network, the mean cosine between the clean photo's descriptor and the cloaked one's
(1: unmoved), each network locating the face on the cloaked photo itself as its attacker
would. SFace (the judge) is never in the cloak's loss; the lower its cosine, the more the
cloak transfers. A full judgement (enrol cloaked, match clean) is `segue evaluate --arch
embedding-sface`; this is only a ranking, minutes instead of an hour.

    python research/cloak_transfer_screen.py --people 6 --per-person 3 \\
        --setting base: --setting steps30:steps=30 --setting toward:toward=1

A setting is NAME:key=value,...; keys are CloakConfig fields (steps, step, grid_divisor,
momentum, smoothing, model_noise, networks as a+b+c) plus ``toward=1``: every photo is also
pulled toward the mean descriptor of another person of the screen (Fawkes' target: the
person ``people`` places further in the list).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from segue_cli.datasets import scan_image_folder  # noqa: E402
from segue_cli.faces.sface import SFaceEmbedder  # noqa: E402
from segue_cli.imageio import load_image  # noqa: E402
from segue_cli.photo.cloak import CloakConfig, IdentityCloak  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "LFW48" / "train"


def parse_setting(text: str) -> tuple[str, dict[str, Any], bool]:
    name, _, rest = text.partition(":")
    known = {f.name: f.type for f in fields(CloakConfig)}
    values: dict[str, Any] = {}
    toward = False
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        if key == "toward":
            toward = value == "1"
        elif key == "networks":
            values[key] = tuple(value.split("+"))
        elif key in known:
            values[key] = int(value) if key in ("steps", "grid_divisor", "seed") else float(value)
        else:
            raise SystemExit(f"unknown key {key!r} in {text!r}")
    return name, values, toward


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--people", type=int, default=6)
    parser.add_argument("--per-person", type=int, default=3)
    parser.add_argument("--epsilon", type=float, default=8.0, help="in 1/255")
    parser.add_argument("--setting", action="append", required=True)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    dataset = scan_image_folder(args.data)
    people = dataset.identities[: 2 * args.people]
    photos = {p: [load_image(i.path).rgb for i in dataset.items if i.identity == p][: args.per_person] for p in people}
    judge = SFaceEmbedder()
    clean_sface = {p: [judge.embed(rgb).vector for rgb in photos[p]] for p in people[: args.people]}
    for text in args.setting:
        name, values, toward = parse_setting(text)
        cloak = IdentityCloak(CloakConfig(**values))
        targets = {}
        if toward:  # another person's mean descriptor in every network of the ensemble
            for rank, person in enumerate(people[: args.people]):
                other = people[args.people + rank]
                described = [cloak.descriptors(rgb) for rgb in photos[other]]
                targets[person] = {n: np.mean([d[n] for d in described], axis=0) for n in cloak.nets}
        cosines: dict[str, list[float]] = {n: [] for n in (*cloak.nets, "sface")}
        started = time.perf_counter()
        count = 0
        for person in people[: args.people]:
            for rgb, clean_vector in zip(photos[person], clean_sface[person]):
                result = cloak.cloak(rgb, rgb, args.epsilon / 255, None, targets.get(person))
                before, after = cloak.descriptors(rgb), cloak.descriptors(result.pixels)
                for n in cloak.nets:
                    cosines[n].append(float(before[n] @ after[n]))
                cosines["sface"].append(float(clean_vector @ judge.embed(result.pixels).vector))
                count += 1
        print(json.dumps({"setting": name, **values, "toward": toward, "photos": count,
                          "seconds_per_photo": round((time.perf_counter() - started) / count, 2),
                          **{f"cos_{n}": round(float(np.mean(v)), 3) for n, v in cosines.items()}}), flush=True)


if __name__ == "__main__":
    main()
