"""The PyTorch twin of dlib's face-recognition ResNet: read from the pinned .dat file,
equal to dlib on real faces, batched and differentiable; its chip extraction equals
dlib's get_face_chip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from segue_cli.faces.dlib_face_net import CHIP_SIZE, chip_matrix, extract_chips, load_dlib_face_net, read_dlib_network
from segue_cli.faces.embedding import DlibEmbedder
from segue_cli.errors import ArtifactError, ConfigError


@pytest.fixture(scope="module")
def embedder():
    return DlibEmbedder(engine="dlib")


@pytest.fixture(scope="module")
def twin():
    return load_dlib_face_net()


def real_faces(webface10: Path, face_photos: dict[str, Path], astronaut) -> list[np.ndarray]:
    """51 real faces: 44 WebFace10 crops (4 or 5 of each identity), six portraits, the astronaut."""
    crops = [p for identity in sorted((webface10 / "test").iterdir()) for p in sorted(identity.glob("*.jpg"))[:5]][:44]
    photos = [np.asarray(Image.open(p).convert("RGB")) for p in crops]
    photos += [np.asarray(Image.open(p).convert("RGB")) for p in face_photos.values()]
    return photos + [astronaut]


@pytest.mark.slow
def test_twin_descriptors_equal_dlibs_on_51_real_faces(webface10, face_photos, astronaut, embedder, twin):
    photos = real_faces(webface10, face_photos, astronaut)
    chips = np.stack([embedder.chip(rgb, embedder.locate(rgb)[0]) for rgb in photos])
    assert len(chips) >= 50 and chips.shape[1:] == (CHIP_SIZE, CHIP_SIZE, 3)
    recognition = embedder._recognition
    expected = np.stack([np.asarray(recognition.compute_face_descriptor(chip)) for chip in chips])
    with torch.no_grad():
        got = twin(torch.from_numpy(chips).permute(0, 3, 1, 2).float()).numpy()
    assert np.abs(got - expected).max() <= 1e-3
    # Not a trivial match: descriptors differ between people by far more than that.
    assert np.abs(expected[0] - expected[-1]).max() > 0.05


@pytest.mark.slow
def test_chip_extraction_equals_dlibs_get_face_chip(webface10, astronaut, embedder):
    crops = [np.asarray(Image.open(p).convert("RGB")) for p in sorted((webface10 / "train" / "3").glob("*.jpg"))[:12]]
    for rgb in crops + [astronaut]:
        shape = embedder.locate(rgb)[0]
        details = embedder.chip_details(shape)
        photo = torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None].double()
        ours = extract_chips(photo, torch.from_numpy(chip_matrix(details))[None])[0].permute(1, 2, 0).numpy()
        # dlib truncates its bilinear values to 8 bits; the same truncation gives its chip exactly.
        assert np.array_equal(np.floor(ours + 1e-9).astype(np.uint8), embedder.chip(rgb, shape))


def test_twin_is_batched_and_differentiable(twin):
    chips = torch.rand(3, 3, CHIP_SIZE, CHIP_SIZE, generator=torch.Generator().manual_seed(0)) * 255
    chips.requires_grad_(True)
    batched = twin(chips)
    one_by_one = torch.cat([twin(chips[i : i + 1]) for i in range(3)])
    assert batched.shape == (3, 128) and torch.allclose(batched, one_by_one, atol=1e-5)
    batched[:, 0].sum().backward()
    assert chips.grad is not None and chips.grad.abs().sum() > 0


def test_embedder_engines_agree(webface10, embedder):
    photos = [np.asarray(Image.open(p).convert("RGB")) for p in sorted((webface10 / "test" / "1").glob("*.jpg"))[:4]]
    on_twin = DlibEmbedder(engine="twin").embed_many(photos)
    on_dlib = [embedder.embed(rgb) for rgb in photos]
    for a, b in zip(on_twin, on_dlib):
        assert a.box == b.box and np.abs(a.vector - b.vector).max() <= 1e-3


def test_a_file_that_is_not_dlibs_network_is_refused(tmp_path):
    bogus = tmp_path / "net.dat"
    bogus.write_bytes(b"\x01\x15input_rgb_image_sized" + bytes(200))
    with pytest.raises(ArtifactError, match="not dlib's face-recognition network"):
        read_dlib_network(bogus)
    with pytest.raises(ConfigError, match="jitter"):
        DlibEmbedder(engine="twin", jitter=2)
