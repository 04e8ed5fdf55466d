import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest import copy_faces
from segue_cli.cli.app import app
from segue_cli.cluster import ClusterConfig, cluster, estimate_k, matched_accuracy
from segue_cli.datasets import read_labels_csv
from segue_cli.faces.embedding import LANDMARKS_FILE, RECOGNITION_FILE, SAME_PERSON_DISTANCE, DlibEmbedder, default_weights_dir
from segue_cli.errors import ArtifactError, ConfigError
from segue_cli.imageio import load_image
from segue_cli.train import TrainConfig, train

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, ["cluster", *map(str, args)])


@pytest.fixture(scope="module")
def clustered(tmp_path_factory):
    """3 WebFace10 identities x 8 full-size (224 px) photos, clustered once with --k auto."""
    root = tmp_path_factory.mktemp("cluster")
    faces = copy_faces(root / "faces", identities=3, per_identity=8, size=None)
    result = cluster(ClusterConfig(source=faces, out=root / "labels.csv", k=None, seed=0))
    return faces, result


@pytest.mark.slow
def test_clustering_recovers_identities_and_estimates_k(clustered):
    faces, result = clustered
    assert result.k == 3 and result.k_source == "auto"
    assert len(result.images) == 24 and not result.failed
    # dlib's ResNet is not trained on these people; 3 x 8 tight web crops, measured 100%.
    assert result.accuracy is not None and result.accuracy >= 0.9
    assert sorted(result.cluster_to_folder.values()) == ["0", "1", "2"]
    assert sum(i.face_found for i in result.images) >= 18  # the detector finds most tight crops
    assert result.images[0].label == 0  # clusters are numbered by first appearance


@pytest.mark.slow
def test_labels_csv_round_trips_into_the_reader_and_training(clustered, tmp_path):
    faces, result = clustered
    rows = list(csv.DictReader(result.out.open()))
    assert list(rows[0]) == ["path", "label", "distance", "face", "faces"]
    assert all(not Path(r["path"]).is_absolute() and r["face"] in ("detected", "centre") for r in rows)
    labelled = read_labels_csv(result.out)
    assert [i.path.resolve() for i in labelled.items] == [i.path.resolve() for i in result.images]
    assert [int(i.identity) for i in labelled.items] == [i.label for i in result.images]
    run = train(TrainConfig(data=result.out, out=tmp_path / "run", image_size=32, epochs=2, batch_size=4,
                            max_steps_per_epoch=1, pgd_steps=0, workers=1))
    assert run.generator_path.is_file()


@pytest.mark.slow
def test_faces_are_found_and_told_apart_on_real_photos(face_photos):
    embedder = DlibEmbedder()
    whole_faces = ("obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg")  # not the partial-face ones
    faces = {name: embedder.embed(load_image(face_photos[name]).rgb) for name in whole_faces}
    assert all(f.face_found and f.faces == 1 for f in faces.values())
    obama = [faces[n].vector for n in ("obama.jpg", "obama2.jpg", "obama3.jpg")]
    same = max(np.linalg.norm(a - b) for a in obama for b in obama)
    other = min(np.linalg.norm(v - faces["biden.jpg"].vector) for v in obama)
    assert same < SAME_PERSON_DISTANCE < other


def test_tampered_or_missing_weights_are_refused(tmp_path):
    source = default_weights_dir()
    for name in (LANDMARKS_FILE, RECOGNITION_FILE):
        shutil.copy(source / name, tmp_path / name)
    data = bytearray((tmp_path / LANDMARKS_FILE).read_bytes())
    data[len(data) // 2] ^= 0x01
    (tmp_path / LANDMARKS_FILE).write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="is not the file segue pins"):
        DlibEmbedder(weights_dir=tmp_path)
    (tmp_path / LANDMARKS_FILE).unlink()
    with pytest.raises(ArtifactError, match="missing"):
        DlibEmbedder(weights_dir=tmp_path)


def test_unreadable_images_are_listed_left_out_and_exit_1(webface10, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(webface10 / "train" / "0" / "0.jpg", photos / "a.jpg")
    Image.new("RGB", (120, 120), (128, 128, 128)).save(photos / "blank.png")  # no face in it
    (photos / "broken.jpg").write_bytes(b"not a jpeg")
    (photos / "empty.png").write_bytes(b"")
    result = invoke(photos, "--k", "2", "--out", tmp_path / "labels.csv")
    assert result.exit_code == 1, result.output
    assert "broken.jpg" in result.output and "empty.png" in result.output
    rows = {Path(r["path"]).name: r for r in csv.DictReader((tmp_path / "labels.csv").open())}
    assert set(rows) == {"a.jpg", "blank.png"}
    assert rows["a.jpg"]["face"] == "detected" and rows["blank.png"]["face"] == "centre"


def test_existing_output_is_kept_unless_overwrite(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    out = tmp_path / "labels.csv"
    out.write_text("keep me")
    result = invoke(photos, "--k", "2", "--out", out)
    assert result.exit_code == 2 and "--overwrite" in result.output
    assert out.read_text() == "keep me"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--k", "two"], "'auto'"),
        (["--k", "0"], "between 1 and 65536"),
        (["--out", "labels.txt"], ".csv"),
    ],
)
def test_bad_options_are_reported(tmp_path, args, message):
    (tmp_path / "photos").mkdir()
    base = {"--k": "2", "--out": str(tmp_path / "labels.csv")}
    base.update(dict(zip(args[::2], args[1::2])))
    result = invoke(tmp_path / "photos", *[x for kv in base.items() for x in kv])
    assert result.exit_code == 2 and message in result.output


def test_empty_or_missing_folder_is_reported(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no photos here")
    result = invoke(tmp_path / "empty", "--out", tmp_path / "labels.csv")
    assert result.exit_code == 2 and "no images found" in result.output
    result = invoke(tmp_path / "nowhere", "--out", tmp_path / "labels.csv")
    assert result.exit_code == 2 and "folder not found" in result.output
    assert not (tmp_path / "labels.csv").exists()


def test_k_larger_than_the_photos_is_refused(webface10, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(webface10 / "train" / "0" / "0.jpg", photos / "a.jpg")
    with pytest.raises(ConfigError, match="more than the 1 images"):
        cluster(ClusterConfig(source=photos, out=tmp_path / "labels.csv", k=2))
    (photos / "broken.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(ConfigError, match="more than the 1 usable"):
        cluster(ClusterConfig(source=photos, out=tmp_path / "labels.csv", k=2))


def test_folder_of_only_unreadable_images_names_them(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "broken.jpg").write_bytes(b"not a jpeg")
    result = invoke(photos, "--out", tmp_path / "labels.csv")
    assert result.exit_code == 2 and "could be read" in result.output and "broken.jpg" in result.output
    assert not (tmp_path / "labels.csv").exists()


def test_estimate_k_counts_well_separated_people():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 128)) * 0.2  # people about 2.8 apart, faces 0.3 around each
    points = np.concatenate([c + rng.normal(size=(12, 128)) * 0.03 for c in centres])
    outlier = rng.normal(size=(1, 128)) * 0.2  # one stranger: under the 5% share, not a person
    k, how = estimate_k(np.concatenate([points, outlier]), min_share=0.05, seed=0)
    assert k == 4 and how["clusters_at_threshold"] == 5


def test_matched_accuracy_ignores_cluster_numbering():
    labels = np.array([2, 2, 0, 0, 1, 1])
    accuracy, mapping = matched_accuracy(labels, ["a", "a", "b", "b", "c", "b"])
    assert accuracy == pytest.approx(5 / 6)
    assert mapping == {2: "a", 0: "b", 1: "c"}
