"""The identity cloak (``segue protect --cloak``, ``Protector(cloak=...)``): it moves dlib's
descriptor of real faces, stays within epsilon of the clean photo whatever the generator
spent, keeps black-and-white photos black and white, and is reported per file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from segue_cli.cli.app import app
from segue_cli.photo.cloak import CloakConfig, IdentityCloak
from segue_cli.errors import ConfigError, InputError

EPSILON = 8 / 255


@pytest.fixture(scope="module")
def cloak() -> IdentityCloak:
    return IdentityCloak(CloakConfig(steps=8))


def webface_crop(webface10: Path, identity: int = 0, index: int = 0) -> np.ndarray:
    path = sorted((webface10 / "train" / str(identity)).glob("*.jpg"))[index]
    return np.asarray(Image.open(path).convert("RGB"))


def levels_moved(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(np.int16) - b).max())


def test_cloak_moves_the_descriptor_of_a_real_face_within_epsilon(webface10, cloak):
    clean = webface_crop(webface10)
    result = cloak.cloak(clean, clean, EPSILON)
    assert result.face_found
    assert levels_moved(result.pixels, clean) <= 8
    # every network of the ensemble is moved (clean: 1.0); the mean is what is reported
    assert set(result.similarities) == {"dlib", "faceplugin", "mobilefacenet"}
    assert max(result.similarities.values()) < 0.95
    assert result.similarity == pytest.approx(np.mean(list(result.similarities.values())))
    # the similarity reported is of the written pixels, at the clean photo's alignment; an
    # attacker who locates the face on the cloaked photo aligns it a fraction of a pixel apart
    again = cloak.embedder.embed_many([clean, result.pixels])
    cosine = float(np.dot(*(v.vector / np.linalg.norm(v.vector) for v in again)))
    assert cosine == pytest.approx(result.similarities["dlib"], abs=0.05)
    # YuNet, which places the MobileFaceNets' crops, moves its landmarks by a pixel or two on
    # the cloaked photo, so there the attacker's cosine is higher than the cloak's, and still far from 1
    described = cloak.descriptors(clean), cloak.descriptors(result.pixels)
    assert result.similarities["faceplugin"] < float(described[0]["faceplugin"] @ described[1]["faceplugin"]) < 0.6


def test_a_photo_with_no_face_is_left_uncloaked_and_said_to_be(cloak):
    rng = np.random.default_rng(3)
    noise = rng.integers(0, 256, size=(96, 96, 3), dtype=np.uint8)  # no detector finds a face in noise
    generator_output = np.clip(noise.astype(np.int16) + 3, 0, 255).astype(np.uint8)
    result = cloak.cloak(noise, generator_output, EPSILON)
    assert not result.face_found and result.similarities == {}
    assert (result.pixels == generator_output).all()


def test_model_noise_needs_dlib():
    with pytest.raises(ConfigError, match="model-noise"):
        CloakConfig(model_noise=0.1, networks=("faceplugin",))


def test_cloak_networks_are_checked():
    with pytest.raises(ConfigError, match="cloak-networks"):
        CloakConfig(networks=("dlib", "arcface"))
    with pytest.raises(ConfigError, match="cloak-networks"):
        CloakConfig(networks=("dlib", "dlib"))
    with pytest.raises(ConfigError, match="cloak-networks"):
        CloakConfig(networks=())


def test_cloak_is_luminance_and_keeps_gray_photos_gray(webface10, cloak):
    gray = np.repeat(np.asarray(Image.fromarray(webface_crop(webface10, 1)).convert("L"))[..., None], 3, axis=2)
    result = cloak.cloak(gray, gray, EPSILON)
    assert (result.pixels != gray).mean() > 0.3
    assert (result.pixels[..., 0] == result.pixels[..., 1]).all() and (result.pixels[..., 1] == result.pixels[..., 2]).all()


def test_cloak_shares_the_budget_with_the_generators_perturbation(webface10, cloak):
    clean = webface_crop(webface10, 2)
    rng = np.random.default_rng(0)
    generator_output = np.clip(clean.astype(np.int16) + rng.choice([-8, 8], size=clean.shape), 0, 255).astype(np.uint8)
    result = cloak.cloak(clean, generator_output, EPSILON)
    assert levels_moved(result.pixels, clean) <= 8  # the sum is clipped to the clean photo's bound
    assert result.similarity < 0.95
    assert (result.pixels != generator_output).mean() > 0.2  # the cloak changed the generator's output


def test_cloak_epsilon_limits_the_cloaks_own_change(webface10):
    clean = webface_crop(webface10, 2)
    generator_output = np.clip(clean.astype(np.int16) + 8, 0, 255).astype(np.uint8)
    result = IdentityCloak(CloakConfig(steps=6, epsilon=2)).cloak(clean, generator_output, EPSILON)
    assert levels_moved(result.pixels, generator_output) == 2
    assert levels_moved(result.pixels, clean) <= 8
    assert result.similarity < 1.0


def test_keep_colour_split_leaves_the_generators_colour_exactly(webface10):
    clean = webface_crop(webface10, 2)
    rng = np.random.default_rng(1)
    colour = rng.integers(-4, 5, size=clean.shape)  # a colour pattern with room left for the cloak
    generator_output = np.clip(clean.astype(np.int16) + colour, 0, 255).astype(np.uint8)
    clip = IdentityCloak(CloakConfig(steps=6)).cloak(clean, generator_output, EPSILON)
    kept = IdentityCloak(CloakConfig(steps=6, split="keep-colour")).cloak(clean, generator_output, EPSILON)
    change = kept.pixels.astype(np.int16) - generator_output
    assert (change[..., 0] == change[..., 1]).all() and (change[..., 1] == change[..., 2]).all()
    assert (change != 0).mean() > 0.1 and levels_moved(kept.pixels, clean) <= 8
    assert kept.similarity < 0.97
    clipped = clip.pixels.astype(np.int16) - generator_output  # the default split does change the colour
    assert (clipped[..., 0] != clipped[..., 1]).any()
    with pytest.raises(ConfigError, match="cloak-split"):
        CloakConfig(split="chroma")


def test_cloak_is_deterministic(webface10, cloak):
    clean = webface_crop(webface10, 3)
    assert (cloak.cloak(clean, clean, EPSILON).pixels == cloak.cloak(clean, clean, EPSILON).pixels).all()


def test_jitter_moves_the_crops_each_step_and_stays_repeatable(webface10):
    clean = webface_crop(webface10, 3)
    jittered = IdentityCloak(CloakConfig(steps=4, jitter=0.05))
    first, again = jittered.cloak(clean, clean, EPSILON), jittered.cloak(clean, clean, EPSILON)
    plain = IdentityCloak(CloakConfig(steps=4, jitter=0)).cloak(clean, clean, EPSILON)
    assert CloakConfig().jitter == 0.05  # the default since session 18
    assert (first.pixels == again.pixels).all()  # the draws come from the cloak's seed
    assert (first.pixels != plain.pixels).any() and levels_moved(first.pixels, clean) <= 8
    assert first.similarity < 0.97
    with pytest.raises(ConfigError, match="cloak-jitter"):
        CloakConfig(jitter=0.5)


def test_texture_keeps_flat_skin_closer_and_spends_the_reach_on_contrast(webface10):
    """CloakConfig.texture 1: a pixel's reach is its local contrast's share of it, so the
    flattest parts of the face barely change, the photo stays closer (SSIM), and the cloak
    still moves the descriptor."""
    import torch
    from skimage.metrics import structural_similarity

    from segue_cli.photo.cloak_steps import contrast

    clean = webface_crop(webface10, 2)
    plain = IdentityCloak(CloakConfig(steps=6)).cloak(clean, clean, EPSILON)
    textured = IdentityCloak(CloakConfig(steps=6, texture=1.0)).cloak(clean, clean, EPSILON)
    local = contrast(torch.tensor(clean).permute(2, 0, 1)[None].float() / 255)[0, 0].numpy()
    flat = local < 0.1  # over the whole photo (the cloak normalises over its face region; close here)
    moved = {name: np.abs(result.pixels.astype(np.int16) - clean).max(axis=2) for name, result in
             (("plain", plain), ("textured", textured))}
    assert flat.sum() > 1000 and moved["plain"][flat].mean() > 2 * moved["textured"][flat].mean()
    ssim = {name: structural_similarity(clean, result.pixels, channel_axis=2, data_range=255)
            for name, result in (("plain", plain), ("textured", textured))}
    assert ssim["textured"] > ssim["plain"] + 0.02
    assert textured.similarity < 0.9
    with pytest.raises(ConfigError, match="cloak-texture"):
        CloakConfig(texture=1.5)


def test_cloak_steps_out_of_range_are_refused():
    with pytest.raises(ConfigError, match="cloak-steps"):
        CloakConfig(steps=0)
    with pytest.raises(ConfigError, match="cloak-epsilon"):
        CloakConfig(epsilon=0)


@pytest.mark.slow
def test_protector_cloaks_a_full_portrait_face_by_face(astronaut, cloak):
    from segue_cli import Protector

    plain = Protector().protect(astronaut, identity="Eileen Collins")
    cloaked = Protector(cloak=CloakConfig(steps=8)).protect(astronaut, identity="Eileen Collins")
    assert levels_moved(cloaked, astronaut) <= 8
    assert (cloaked != plain).mean() > 0.02  # the face region only: the rest is the generator's output
    descriptors = cloak.embedder.embed_many([astronaut, plain, cloaked])
    unit = [d.vector / np.linalg.norm(d.vector) for d in descriptors]
    assert np.dot(unit[0], unit[1]) > 0.95  # the generator alone leaves the identity in place
    assert np.dot(unit[0], unit[2]) < 0.95  # dlib is one of three networks sharing the budget
    described = [cloak.descriptors(photo)["faceplugin"] for photo in (astronaut, plain, cloaked)]
    assert described[0] @ described[1] > 0.9 and described[0] @ described[2] < 0.7


def test_protect_cloak_reports_each_file_and_records_the_setting(tmp_path, webface10):
    source = tmp_path / "in" / "ada"
    source.mkdir(parents=True)
    for index in range(2):
        Image.fromarray(webface_crop(webface10, 4, index)).save(source / f"{index}.png")
    out = tmp_path / "out"
    runner = CliRunner()
    result = runner.invoke(app, ["protect", str(tmp_path / "in"), "--out", str(out), "--by-folder", "--cloak",
                                 "--cloak-steps", "4", "--json"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    files = [r for r in records if r["type"] == "file"]
    assert len(files) == 2 and all(r["details"]["cloak_similarity"] < 0.97 for r in files)
    summary = records[-1]
    assert "identity cloak" in summary["protection"]
    assert summary["cloak_no_face"] == sum(not r["details"]["cloak_face_found"] for r in files)
    assert summary["cloaked"] + summary["cloak_no_face"] == 2
    assert summary["cloak_networks"] == ["dlib", "faceplugin", "mobilefacenet"]
    for index in range(2):
        written = np.asarray(Image.open(out / "ada" / f"{index}.png").convert("RGB"))
        assert levels_moved(written, webface_crop(webface10, 4, index)) <= 8
    # the same folder without --cloak would make other pixels: refused, not skipped as done
    again = runner.invoke(app, ["protect", str(tmp_path / "in"), "--out", str(out), "--by-folder"])
    assert again.exit_code == 2
    assert "other settings" in again.output and "cloak_steps" in again.output
    # nor would the cloak against other networks (the default changed with issue 40: it is always recorded)
    other = runner.invoke(app, ["protect", str(tmp_path / "in"), "--out", str(out), "--by-folder", "--cloak",
                                "--cloak-steps", "4", "--cloak-networks", "dlib"])
    assert other.exit_code == 2 and "cloak_networks" in other.output
    # nor would a cloak on one fixed crop (session 18 made the jitter the default)
    fixed = runner.invoke(app, ["protect", str(tmp_path / "in"), "--out", str(out), "--by-folder", "--cloak",
                                "--cloak-steps", "4", "--cloak-jitter", "0"])
    assert fixed.exit_code == 2 and "cloak_jitter" in fixed.output
    textured = runner.invoke(app, ["protect", str(tmp_path / "in"), "--out", str(out), "--by-folder", "--cloak",
                                   "--cloak-steps", "4", "--cloak-texture", "0.5"])
    assert textured.exit_code == 2 and "cloak_texture" in textured.output


def test_cloak_steps_without_cloak_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(app, ["protect", str(tmp_path), "--cloak-steps", "5"])
    assert result.exit_code == 2
    assert "--cloak-steps apply with --cloak only" in result.output


def test_cloak_networks_and_target_are_checked_at_the_edge(tmp_path):
    for option, value in (("--cloak-networks", "dlib"), ("--cloak-target", "none"), ("--cloak-jitter", "0.1"),
                          ("--cloak-texture", "0.5")):
        result = CliRunner().invoke(app, ["protect", str(tmp_path), option, value])
        assert result.exit_code == 2 and f"{option} apply with --cloak only" in result.output
    result = CliRunner().invoke(app, ["protect", str(tmp_path), "--cloak", "--cloak-target", "someone"])
    assert result.exit_code == 2 and "--cloak-target must be example, none, others, or a photo or folder" in result.output
    assert "'someone' is none of them" in result.output
    result = CliRunner().invoke(app, ["protect", str(tmp_path), "--cloak", "--cloak-jitter", "0.5"])
    assert result.exit_code == 2 and "--cloak-jitter" in result.output


def test_the_target_pulls_toward_the_example_face_but_not_a_photo_of_it(webface10):
    """Target "example" moves every photo toward the shipped portrait's face in every network;
    a photo of that face itself is only pushed away from itself (pulling it toward itself
    would undo the cloak)."""
    from segue_cli.imageio import load_image
    from segue_cli.photo.cloak import EXAMPLE_TARGET

    targeted, plain = IdentityCloak(CloakConfig(steps=6, target="example")), IdentityCloak(CloakConfig(steps=6))
    assert CloakConfig().target == "none"  # off by default: a target shared by everyone moves every class together
    assert targeted.target is not None and plain.target is None
    clean = webface_crop(webface10, 5)
    toward = {name: targeted.descriptors(cloaked.pixels) for name, cloaked in
              (("targeted", targeted.cloak(clean, clean, EPSILON)), ("plain", plain.cloak(clean, clean, EPSILON)))}
    for network, target in targeted.target.items():
        assert float(toward["targeted"][network] @ target) > float(toward["plain"][network] @ target) + 0.05
    astronaut = load_image(EXAMPLE_TARGET).rgb
    assert targeted.cloak(astronaut, astronaut, EPSILON).similarity < 0.9
    # dlib alone: another person's photo is still pulled (dlib's own same-person rule, cosine 0.82, not 0.6)
    dlib_only = IdentityCloak(CloakConfig(steps=6, networks=("dlib",), target="example"))
    dlib_plain = IdentityCloak(CloakConfig(steps=6, networks=("dlib",), target="none"))
    assert dlib_only.target is not None
    pulled = [float(cloak.descriptors(cloak.cloak(clean, clean, EPSILON).pixels)["dlib"] @ dlib_only.target["dlib"])
              for cloak in (dlib_only, dlib_plain)]
    assert pulled[0] > pulled[1] + 0.02


def test_a_target_of_the_users_own_pulls_toward_that_persons_faces(tmp_path, webface10):
    """--cloak-target FOLDER: every photo pulled toward the mean of another person's faces
    (Fawkes' own target); a folder with no face is refused by name; the record keys the
    target by its files' bytes, so other photos under the same path are another target."""
    decoy = tmp_path / "decoy"
    decoy.mkdir()
    for index in range(3):
        Image.fromarray(webface_crop(webface10, 7, index)).save(decoy / f"{index}.png")
    targeted = IdentityCloak(CloakConfig(steps=6, target=str(decoy)))
    plain = IdentityCloak(CloakConfig(steps=6))
    decoy_faces = [targeted.descriptors(webface_crop(webface10, 7, index)) for index in range(3)]
    for network, vector in targeted.target.items():  # the unit mean of the decoy's three faces
        mean = np.mean([faces[network] for faces in decoy_faces], axis=0)
        assert np.allclose(vector, mean / np.linalg.norm(mean), atol=1e-5)
    clean = webface_crop(webface10, 5)
    seen = {name: cloak.descriptors(cloak.cloak(clean, clean, EPSILON).pixels) for name, cloak in
            (("targeted", targeted), ("plain", plain))}
    for network, vector in targeted.target.items():  # dlib's cosines between people sit near 0.9: a smaller margin
        assert float(seen["targeted"][network] @ vector) > float(seen["plain"][network] @ vector) + 0.03
    key = CloakConfig(target=str(decoy)).target_key()
    assert key.startswith(f"{decoy} (sha256 ")
    Image.fromarray(webface_crop(webface10, 7, 3)).save(decoy / "0.png")
    assert CloakConfig(target=str(decoy)).target_key() != key
    empty = tmp_path / "no-face"
    empty.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)).save(empty / "noise.png")
    with pytest.raises(InputError, match="no face found in 1 photo"):
        IdentityCloak(CloakConfig(steps=2, target=str(empty)))


def test_cloak_split_is_checked_and_recorded(tmp_path, webface10):
    result = CliRunner().invoke(app, ["protect", str(tmp_path), "--cloak-split", "keep-colour"])
    assert result.exit_code == 2 and "--cloak-split apply with --cloak only" in result.output
    result = CliRunner().invoke(app, ["protect", str(tmp_path), "--cloak", "--cloak-split", "chroma"])
    assert result.exit_code == 2 and "--cloak-split must be one of clip, keep-colour" in result.output
    source = tmp_path / "in"
    source.mkdir()
    Image.fromarray(webface_crop(webface10, 4)).save(source / "0.png")
    out = tmp_path / "out"
    first = CliRunner().invoke(app, ["protect", str(source), "--out", str(out), "--cloak", "--cloak-steps", "2",
                                     "--cloak-split", "keep-colour", "--quiet"])
    assert first.exit_code == 0, first.output
    again = CliRunner().invoke(app, ["protect", str(source), "--out", str(out), "--cloak", "--cloak-steps", "2"])
    assert again.exit_code == 2 and "cloak_split" in again.output  # other pixels: refused, not skipped as done
