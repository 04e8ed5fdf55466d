"""Shared fixtures: tiny real face sets copied from ../shared, tiny generators."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch
from PIL import Image

from segue_cli.artifacts import save_generator
from segue_cli.nn.generator import GeneratorConfig, SegueGenerator

def _find_webface10() -> Path:
    """The nearest ``shared/data/WebFace10`` above this file: beside the repo in /work/main,
    two levels up from a helper's worktree in /work/wt/<name>, or inside a checkout."""
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "data" / "WebFace10"
        if candidate.is_dir():
            return candidate
    return Path(__file__).resolve().parents[1].parent / "shared" / "data" / "WebFace10"


WEBFACE10 = _find_webface10()
CACHE = Path(__file__).resolve().parents[1] / ".cache"  # gitignored
FACE_RECOGNITION_SDIST = "face-recognition==1.3.0"


def _webface_root() -> Path:
    if not (WEBFACE10 / "train").is_dir():
        pytest.skip(f"real data not found at {WEBFACE10}")
    return WEBFACE10


@pytest.fixture(scope="session")
def webface10() -> Path:
    """The read-only WebFace10 root (train/ and test/)."""
    return _webface_root()


def copy_faces(dest: Path, split: str = "train", identities: int = 3, per_identity: int = 6, size: int | None = 48) -> Path:
    """Copy a few real face crops into ``dest/<label>/`` (resized to keep tests fast)."""
    root = _webface_root() / split
    for label in sorted(p.name for p in root.iterdir())[:identities]:
        (dest / label).mkdir(parents=True, exist_ok=True)
        for src in sorted((root / label).glob("*.jpg"))[:per_identity]:
            if size is None:
                shutil.copy(src, dest / label / src.name)
            else:
                Image.open(src).convert("RGB").resize((size, size)).save(dest / label / src.name, quality=95)
    return dest


@pytest.fixture
def tiny_faces(tmp_path: Path) -> Path:
    """3 identities x 6 real faces at 48 px, ImageFolder layout, in a temp folder."""
    return copy_faces(tmp_path / "faces")


@pytest.fixture
def tiny_generator_path(tmp_path: Path) -> Path:
    """A randomly initialised but valid generator checkpoint (working size 32)."""
    torch.manual_seed(0)
    model = SegueGenerator(GeneratorConfig())
    path = tmp_path / "tiny.safetensors"
    save_generator(path, model, epsilon=8 / 255, image_size=32, training={"note": "test fixture, untrained"})
    return path


def saturating_generator(seed: int = 0) -> SegueGenerator:
    """A fresh generator whose output layer is scaled up so delta spans +/-epsilon like a
    trained one's (at initialisation it stays near 0.1 epsilon, which makes comparisons
    between backends too easy to pass)."""
    torch.manual_seed(seed)
    model = SegueGenerator(GeneratorConfig())
    with torch.no_grad():
        model.decoder[-1].weight.mul_(20.0)
    return model.eval()


@pytest.fixture(scope="session")
def onnx_export(tmp_path_factory: pytest.TempPathFactory):
    """ExportResult of `segue export` on a saturating generator (working size 32, epsilon
    8/255): ``.source`` is the checkpoint, ``.out`` the ONNX file. Exported once per
    session because the exporter takes 10-30 s on this CPU."""
    from segue_cli.export import ExportConfig, export_model

    folder = tmp_path_factory.mktemp("onnx-export")
    checkpoint = folder / "generator.safetensors"
    save_generator(checkpoint, saturating_generator(0), epsilon=8 / 255, image_size=32, training={"note": "test fixture"})
    return export_model(ExportConfig(out=folder / "generator.onnx", model=checkpoint))


@pytest.fixture(scope="session")
def face_photos() -> dict[str, Path]:
    """Name -> path of the six real portrait JPEGs in the face-recognition 1.3.0 sdist
    (MIT; tests/test_images/: obama, obama2, obama3, biden, obama_partial_face,
    obama_partial_face2), fetched once with pip into .cache/ and never committed; skipped,
    saying why, when PyPI cannot be reached. CI can prefetch the sdist with
    ``python -m pip download --no-binary :all: --no-deps face-recognition==1.3.0 -d .cache/face_recognition_sdist``."""
    photos = CACHE / "face_recognition_photos"
    if len(list(photos.glob("*.jpg"))) < 6:
        sdist_dir = CACHE / "face_recognition_sdist"
        archives = list(sdist_dir.glob("face_recognition-1.3.0.tar.gz"))
        if not archives:
            command = [sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps",
                       FACE_RECOGNITION_SDIST, "-d", str(sdist_dir), "--quiet"]
            try:
                subprocess.run(command, check=True, capture_output=True, timeout=300)
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
                pytest.skip(f"cannot download the {FACE_RECOGNITION_SDIST} sdist with pip (offline?): {exc}")
            archives = list(sdist_dir.glob("face_recognition-1.3.0.tar.gz"))
        photos.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archives[0]) as archive:
            for member in archive.getmembers():
                if member.isfile() and "/tests/test_images/" in member.name and member.name.endswith(".jpg"):
                    source = archive.extractfile(member)
                    assert source is not None
                    (photos / Path(member.name).name).write_bytes(source.read())
    found = {p.name: p for p in sorted(photos.glob("*.jpg"))}
    if len(found) < 6:
        pytest.skip(f"the {FACE_RECOGNITION_SDIST} sdist no longer holds the six test portraits")
    return found


@pytest.fixture(scope="session")
def astronaut():
    """scikit-image's astronaut photo (512 x 512 RGB uint8, one face: Eileen Collins)."""
    from skimage.data import astronaut as load

    return load()


@pytest.fixture(scope="session")
def yunet():
    """One YuNet face detector for the session (safe to share between threads)."""
    from segue_cli.faces.detectors import YuNetDetector

    return YuNetDetector()
