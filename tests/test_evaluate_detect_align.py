"""segue evaluate --attacker-pipeline detect-align: the scraper's aligned crops, end to end
on larger photos built from WebFace10 faces (research/make_faces_set.py)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import copy_faces
from segue_cli.cli.app import app
from segue_cli.errors import ConfigError
from segue_cli.evaluation import p112
from segue_cli.evaluation.alignment import ALIGN_SIZE, centre_square, detect_align_images
from segue_cli.imageio import load_image, resize_to, save_image

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


def _faces_set_module():
    if "make_faces_set" in sys.modules:
        return sys.modules["make_faces_set"]
    spec = importlib.util.spec_from_file_location("make_faces_set", ROOT / "research" / "make_faces_set.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_faces_set"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a = a.astype(np.float64).ravel() - a.mean()
    b = b.astype(np.float64).ravel() - b.mean()
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


def _photo_sets(root: Path) -> dict[str, Path]:
    """2 identities x 4 photos (320 x 240) per split, plus one faceless photo in each set."""
    faces = _faces_set_module()
    for split in ("train", "test"):
        copy_faces(root / "crops" / split, split=split, identities=2, per_identity=4, size=None)
    faces.build_faces_set(root / "crops", root / "photos", faces.SetConfig(width=320, height=240))
    rng = np.random.default_rng(0)
    blank = np.clip(rng.normal(128, 3, (240, 320, 3)), 0, 255).astype(np.uint8)  # no face anywhere
    photos = root / "photos"
    identity = sorted(p.name for p in (photos / "train").iterdir() if p.is_dir())[0]
    for split in ("train", "test"):
        save_image(photos / split / identity / "blank.jpg", blank, image_format="jpeg", quality=95)
    # Stand-in "protected" train set: the same photos as PNG (the pipeline, not protection, is under test).
    protected = root / "protected"
    for path in (photos / "train").rglob("*.jpg"):
        save_image((protected / path.relative_to(photos / "train")).with_suffix(".png"), load_image(path).rgb)
    return {"protected": protected, "clean": photos / "train", "test": photos / "test"}


def test_config_checks_pipeline_and_detector(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="attacker-pipeline"):
        p112(tmp_path, tmp_path, tmp_path, attacker_pipeline="crop")
    with pytest.raises(ConfigError, match="detector"):
        p112(tmp_path, tmp_path, tmp_path, attacker_pipeline="detect-align", detector="mtcnn")
    config = p112(tmp_path, tmp_path, tmp_path, attacker_pipeline="detect-align", detector="yunet")
    assert config.departures() == []  # the pipeline is what an evaluation varies, like --arch
    assert "--attacker-pipeline detect-align --detector yunet" in config.as_command()


def test_aligned_crop_of_a_placed_face_matches_the_face(tmp_path: Path, webface10: Path, yunet) -> None:
    faces = _faces_set_module()
    sources = copy_faces(tmp_path / "crops", identities=2, per_identity=1, size=None)
    face_paths = sorted(sources.rglob("*.jpg"))
    face, other = (load_image(p).rgb for p in face_paths)
    photo, (x, y, side) = faces.compose(face, np.random.default_rng(3), faces.SetConfig(width=320, height=240))
    photo_path = tmp_path / "photo.png"
    save_image(photo_path, photo)

    images, counts = detect_align_images([photo_path], ALIGN_SIZE, yunet, workers=1)
    crop = images[0].permute(1, 2, 0).numpy()
    assert counts.face_found == 1 and not counts.no_face
    # The ArcFace crop frames the face ~1.13x tighter than WebFace10's crops: compare with
    # the central part of the face crop, and with another identity's face as a control.
    reference = resize_to(np.ascontiguousarray(face[14:210, 14:210]), ALIGN_SIZE, ALIGN_SIZE)
    control = resize_to(np.ascontiguousarray(other[14:210, 14:210]), ALIGN_SIZE, ALIGN_SIZE)
    same, different = _pearson(crop, reference), _pearson(crop, control)
    print(f"correlation with the placed face {same:.3f}, with another identity {different:.3f}")
    assert same > 0.8, (same, different)
    assert same > different + 0.1, (same, different)


def test_no_face_falls_back_to_centre_square() -> None:
    rgb = np.zeros((60, 100, 3), np.uint8)
    rgb[:, 20:80] = 200  # the centred 60 x 60 square
    out = centre_square(rgb, 30)
    assert out.shape == (30, 30, 3) and out.min() == 200


def test_evaluate_detect_align_end_to_end(tmp_path: Path, webface10: Path) -> None:
    sets = _photo_sets(tmp_path)
    out = tmp_path / "runs" / "eval"
    args = ["evaluate", "--train-protected", str(sets["protected"]), "--train-clean", str(sets["clean"]),
            "--test", str(sets["test"]), "--out", str(out), "--attacker-pipeline", "detect-align",
            "--detector", "yunet", "--image-size", "32", "--quality-size", "32", "--epochs", "1",
            "--batch-size", "4", "--threads", "1", "--workers", "1", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    results = json.loads((Path(summary["run_dir"]) / "results.json").read_text())
    pipeline = results["attacker_pipeline"]
    assert results["config"]["attacker_pipeline"] == "detect-align" and pipeline["name"] == "detect-align"
    assert pipeline["detector"] == "yunet" and pipeline["align_size"] == 112
    assert "--attacker-pipeline detect-align" in results["command"]
    assert set(pipeline["sets"]) == {"protected", "clean", "test"}
    for name, counts in pipeline["sets"].items():
        # 8 photos with a face, the blank one without: counted, listed and kept (fallback).
        assert counts["images"] == 9 and counts["face_found"] == 8 and counts["no_face"] == 1, (name, counts)
        assert counts["no_face_examples"][0].endswith("blank.jpg" if name != "protected" else "blank.png")
    assert results["data"]["images"] == {"protected": 9, "clean": 9, "test": 9}
    assert {run["train_set"] for run in results["runs"]} == {"protected", "clean"}
    report = (Path(summary["run_dir"]) / "report.md").read_text()
    assert "## Attacker pipeline: detect-align" in report and "| test | 9 | 8 | 1 |" in report
    assert summary["attacker_pipeline"]["sets"]["test"]["no_face"] == 1
    shutil.rmtree(tmp_path / "crops")
