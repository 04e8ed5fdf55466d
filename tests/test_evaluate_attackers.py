"""The attackers an informed adversary has: a pretrained face-recognition network
(embedding-dlib) and pattern estimation (estimate-remove); the screening preset."""

from __future__ import annotations

import json
import shutil
import numpy as np
import pytest
import torch

from conftest import copy_faces
from segue_cli.errors import ConfigError
from segue_cli.evaluation import p112, parse_scenario, run_evaluation
from segue_cli.evaluation.countermeasure_ops import estimate_remove
from segue_cli.evaluation.embedding_attack import predict


def test_estimate_remove_takes_out_a_class_wise_pattern_and_keeps_per_image_content():
    rng = torch.Generator().manual_seed(0)
    # Per-image content; 10 identities of 100 photos, so an identity's mean is steady (as
    # with WebFace10's 130) and what it shares is the pattern. What stays is the patterns'
    # own mean over identities, which the estimate cannot tell from the average face.
    faces = torch.rand(1000, 3, 16, 16, generator=rng) * 0.3 + 0.35
    targets = torch.arange(1000) % 10
    patterns = (torch.randint(0, 2, (10, 3, 16, 16), generator=rng).float() * 2 - 1) * 8 / 255
    protected = faces + patterns[targets]
    as_uint8 = (protected * 255).round().to(torch.uint8)
    cleaned = estimate_remove(as_uint8, targets, budget=8).float() / 255
    before = (protected - faces).abs().mean()
    after = (cleaned - faces).abs().mean()
    assert after < 0.4 * before  # most of the pattern is gone
    # Without a class-wise pattern there is little to take: the per-image content stays.
    plain = estimate_remove((faces * 255).round().to(torch.uint8), targets, budget=8).float() / 255
    assert (plain - faces).abs().max() <= 8 / 255 + 1 / 255


def test_estimate_remove_parses_with_a_budget_and_refuses_nonsense():
    assert parse_scenario("estimate-remove").get("estimate") == 8
    assert parse_scenario("estimate-remove-4+gray").name == "gray+estimate-remove-4"
    for bad in ("estimate-remove-0", "estimate-x", "estimate-remove-300"):
        with pytest.raises(ConfigError):
            parse_scenario(bad)


def test_matchers_recognise_clustered_embeddings():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 8))
    train_y = np.repeat(np.arange(3), 10)
    train = centres[train_y] + 0.1 * rng.normal(size=(30, 8))
    test_y = np.repeat(np.arange(3), 4)
    test = centres[test_y] + 0.1 * rng.normal(size=(12, 8))
    for method in ("ncm", "1nn", "linear"):
        assert (predict(method, train, train_y, test, seed=0) == test_y).all(), method
    with pytest.raises(ConfigError):
        predict("svm", train, train_y, test, seed=0)


def test_embedding_attacker_takes_only_decoding_counter_measures(tmp_path):
    with pytest.raises(ConfigError, match="embedding attacker trains nothing"):
        p112(tmp_path, tmp_path, tmp_path, archs=("embedding-dlib",), attacks=("none", "at-4"))
    with pytest.raises(ConfigError, match="embedding attacker trains nothing"):
        p112(tmp_path, tmp_path, tmp_path, archs=("embedding-dlib",), attacks=("estimate-remove",))
    p112(tmp_path, tmp_path, tmp_path, archs=("embedding-dlib", "resnet18"), attacks=("none", "gray", "jpeg-30"))


def test_screen_preset_is_p112_with_fewer_epochs_recorded_as_a_departure(tmp_path):
    config = p112(tmp_path, tmp_path, tmp_path, protocol="p112-screen")
    assert config.protocol == "p112-screen" and config.epochs == 8
    assert config.departures() == ["epochs=8 (P112: 20)"]
    assert p112(tmp_path, tmp_path, tmp_path, protocol="p112-screen", epochs=20).departures() == []
    with pytest.raises(ConfigError, match="unknown protocol"):
        p112(tmp_path, tmp_path, tmp_path, protocol="p99")


def _linear(results: dict, train_set: str = "protected") -> float:
    return next(r["final_accuracy"] for r in results["runs"]
                if r["arch"] == "embedding-dlib/linear" and r["train_set"] == train_set)


@pytest.mark.slow
def test_embedding_attacker_recognises_enrolled_people_and_uses_the_photos_given(tmp_path):
    # Full-size real crops: dlib's aligner needs the face at its native scale.
    train = copy_faces(tmp_path / "train", "train", identities=3, per_identity=5, size=None)
    test = copy_faces(tmp_path / "test", "test", identities=3, per_identity=4, size=None)
    config = p112(train, train, test, archs=("embedding-dlib",), out=tmp_path / "eval", baseline=False, workers=1)
    results = run_evaluation(config).results
    by_method = {r["method"]: r["final_accuracy"] for r in results["runs"]}
    assert set(by_method) == {"ncm", "1nn", "linear"}
    assert min(by_method.values()) >= 75.0  # chance is 33%
    assert results["embedding_faces"]["protected"]["images"] == 15
    saved = json.loads((config.out / "results.json").read_text())
    assert saved["status"] == "complete" and len(saved["runs"]) == 3
    # Swap two identities' enrolled photos: the matcher now names the wrong person for them.
    swapped = tmp_path / "swapped"
    shutil.copytree(train, swapped)
    labels = sorted(p.name for p in swapped.iterdir())
    (swapped / labels[0]).rename(swapped / "tmp")
    (swapped / labels[1]).rename(swapped / labels[0])
    (swapped / "tmp").rename(swapped / labels[1])
    swapped_results = run_evaluation(p112(swapped, swapped, test, archs=("embedding-dlib",), out=tmp_path / "eval-s",
                                          baseline=False, workers=1)).results
    assert _linear(swapped_results) <= _linear(results) - 50.0
    per_identity = next(r["per_identity"] for r in swapped_results["runs"] if r["method"] == "ncm")
    assert per_identity[labels[0]] == 0.0 and per_identity[labels[1]] == 0.0


def test_ciede2000_and_lab_match_scikit_image():
    skcolor = pytest.importorskip("skimage.color")
    from segue_cli.evaluation.colour import ciede2000, srgb_to_lab

    rng = np.random.default_rng(0)
    a, b = rng.random((2, 1, 3, 8, 8))
    lab_a, lab_b = srgb_to_lab(torch.from_numpy(a)), srgb_to_lab(torch.from_numpy(b))
    reference_a = skcolor.rgb2lab(a[0].transpose(1, 2, 0))
    np.testing.assert_allclose(lab_a[0].permute(1, 2, 0).numpy(), reference_a, atol=0.05)
    reference = skcolor.deltaE_ciede2000(reference_a, skcolor.rgb2lab(b[0].transpose(1, 2, 0)))
    np.testing.assert_allclose(ciede2000(lab_a, lab_b)[0].numpy(), reference, atol=0.05)


def test_tint_chroma_share_and_cosine_tell_colour_from_luminance():
    from segue_cli.evaluation.colour import WithinIdentityCosine, chroma_energy, tint

    rng = torch.Generator().manual_seed(0)
    clean = torch.rand(4, 3, 32, 32, generator=rng) * 0.5 + 0.25
    luma = (torch.rand(4, 1, 32, 32, generator=rng) * 2 - 1).expand(-1, 3, -1, -1) * 8 / 255
    magenta = torch.tensor([1.0, -1.0, 1.0]).view(1, 3, 1, 1).expand(4, 3, 32, 32) * 8 / 255
    colour_energy, energy = chroma_energy(luma)
    assert float(colour_energy.sum()) < 1e-12 * float(energy.sum())
    colour_energy, energy = chroma_energy(magenta)
    assert float(colour_energy.sum() / energy.sum()) > 0.85  # (+1, -1, +1): 8/9 is colour
    assert float(tint(clean, clean + luma, sigma=2).mean()) < 1.0 < float(tint(clean, clean + magenta, sigma=2).mean())
    same, different = WithinIdentityCosine(), WithinIdentityCosine()
    same.add(["a"] * 4, magenta)
    different.add(["a"] * 4, luma)
    assert same.value() == pytest.approx(1.0) and abs(different.value()) < 0.1


def test_the_separable_gaussian_blur_equals_the_two_dimensional_kernel():
    import torch.nn.functional as F

    from segue_cli.nn.distortions import gaussian_blur

    x = torch.rand(2, 3, 40, 40, generator=torch.Generator().manual_seed(1))
    taps = torch.exp(-((torch.arange(13.0) - 6) ** 2) / (2 * 2.0**2))
    taps = taps / taps.sum()
    kernel_2d = (taps[:, None] * taps[None, :]).expand(3, 1, 13, 13)
    reference = F.conv2d(F.pad(x, [6] * 4, mode="reflect"), kernel_2d, groups=3)
    torch.testing.assert_close(gaussian_blur(x, 13, 2.0), reference, atol=1e-5, rtol=0)
