"""``--cloak-target others``: in a run of several people each is cloaked toward the least
similar other person of the run (photo/cloak_targets.py), read from the run's originals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from segue_cli.cli.app import app
from segue_cli.errors import ConfigError
from segue_cli.photo.cloak import CloakConfig, IdentityCloak
from segue_cli.photo.cloak_targets import farthest_targets

PEOPLE = {"ada": 4, "bob": 5, "cy": 7}  # a folder name each, and the WebFace10 person whose photos it holds


def unit(*values: float) -> np.ndarray:
    vector = np.array(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def test_each_person_gets_the_least_similar_other_person_each_taken_once():
    people = {"a": {"n": unit(1, 0, 0)}, "b": {"n": unit(0.9, 0.1, 0)}, "c": {"n": unit(0, 1, 0)},
              "d": {"n": unit(-1, 0, 0.1)}}
    targets = farthest_targets(people, people)
    assert targets["a"] == "d"  # the most opposed face
    assert all(target != person for person, target in targets.items())
    assert len(set(targets.values())) == len(people)  # a derangement: nobody is everyone's decoy
    # when every other person is taken, the farthest is used again rather than nobody
    assert farthest_targets({"x": {"n": unit(1, 0)}, "y": {"n": unit(0, 1)}}, {"z": {"n": unit(-1, 0)}}) == {"x": "z", "y": "z"}
    with pytest.raises(ConfigError, match="at least two people"):
        farthest_targets({"a": people["a"]}, {"a": people["a"]})


def people_folder(root: Path, webface10: Path, people: dict[str, int] = PEOPLE, photos: int = 2) -> Path:
    for name, identity in people.items():
        (root / name).mkdir(parents=True)
        for index, path in enumerate(sorted((webface10 / "train" / str(identity)).glob("*.jpg"))[:photos]):
            Image.open(path).save(root / name / f"{index}.png")
    return root


def test_a_run_of_several_people_pulls_each_toward_their_pair(tmp_path, webface10):
    source = people_folder(tmp_path / "in", webface10)
    (source / "zed").mkdir()  # a person with no face found: cloaked away from nobody, and said
    noise = np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)
    Image.fromarray(noise).save(source / "zed" / "noise.png")
    (source / "ada" / "broken.jpg").write_bytes(b"not a jpeg")  # fails on its own; the pairing goes on
    out, plain_out = tmp_path / "out", tmp_path / "plain"
    common = ["--by-folder", "--cloak", "--cloak-steps", "6", "--json"]
    result = CliRunner().invoke(app, ["protect", str(source), "--out", str(out), *common, "--cloak-target", "others"])
    assert result.exit_code == 1, result.output  # the broken file
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    summary = records[-1]
    assert summary["cloaked"] == 6 and summary["cloak_no_face"] == 1 and summary["failed"] == 1
    assert "each of 3 people cloaked toward the least similar other person of the run (1 with no face found" \
        in summary["protection"]
    assert any("1 photo(s) could not be read for the pairing" in warning for warning in summary["warnings"])
    recorded = json.loads((out / ".segue-protect.json").read_text())["settings"]
    assert [settings["cloak_target"] for settings in recorded.values()] == ["others"]
    # the pairing each file reports is the rule's over the people's mean faces
    reader = IdentityCloak(CloakConfig())
    means = {name: reader.face_mean(sorted((source / name).glob("*.png")))[0] for name in PEOPLE}
    pairs = farthest_targets(means, means)
    reported = {Path(r["output"]).parent.name: r["details"].get("cloak_toward") for r in records
                if r["type"] == "file" and r["status"] == "written"}
    assert reported == {**pairs, "zed": None}
    plain = CliRunner().invoke(app, ["protect", str(source), "--out", str(plain_out), *common])
    assert plain.exit_code == 1, plain.output
    # each person's photos end nearer their pair's mean face than the untargeted cloak leaves them
    for name, target in pairs.items():
        for photo in sorted((out / name).glob("*.png")):
            toward, untargeted = (reader.descriptors(np.array(Image.open(folder / name / photo.name).convert("RGB")))
                                  for folder in (out, plain_out))
            pulled = np.mean([float(toward[n] @ means[target][n]) - float(untargeted[n] @ means[target][n])
                              for n in toward])
            assert pulled > 0.1, (name, target, photo.name, pulled)  # 0.28-0.59 here
    # a re-run of the same photos: every good output is done, and nobody is paired again
    (source / "ada" / "broken.jpg").unlink()
    again = CliRunner().invoke(app, ["protect", str(source), "--out", str(out), *common, "--cloak-target", "others"])
    assert again.exit_code == 0, again.output
    again_summary = json.loads(again.stdout.splitlines()[-1])
    assert again_summary["skipped"] == 7 and "least similar" not in again_summary["protection"]


def test_others_is_refused_where_a_run_has_no_other_people(tmp_path, webface10):
    source = people_folder(tmp_path / "in", webface10, {"ada": 4}, photos=1)
    runner = CliRunner()
    unnamed = runner.invoke(app, ["protect", str(source), "--cloak", "--cloak-target", "others"])
    assert unnamed.exit_code == 2 and "needs local photos of several people named by --by-folder or --labels" in unnamed.output
    alone = runner.invoke(app, ["protect", str(source), "--out", str(tmp_path / "out"), "--by-folder", "--cloak",
                                "--cloak-target", "others", "--cloak-steps", "1"])
    assert alone.exit_code == 2 and "needs at least two people with a face" in alone.output
    assert not list((tmp_path / "out").rglob("*.png"))  # refused before any photo is written
    one = runner.invoke(app, ["protect", str(source / "ada" / "0.png"), "--out", str(tmp_path / "one.png"),
                              "--identity", "ada", "--cloak", "--cloak-target", "others"])
    assert one.exit_code == 2 and "one image has no other people" in one.output


def test_the_library_refuses_others_without_a_planned_pairing(webface10):
    from segue_cli.photo.protector import Protector

    photo = np.asarray(Image.open(sorted((webface10 / "train" / "4").glob("*.jpg"))[0]).convert("RGB"))
    with pytest.raises(ConfigError, match="pairs the people of one folder run"):
        Protector(cloak=CloakConfig(steps=1, target="others")).protect(photo, identity="ada")
