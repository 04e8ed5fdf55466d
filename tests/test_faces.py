"""Face-aware protection on real photos: scikit-image's astronaut and the portraits that
ship in the face-recognition 1.3.0 sdist (``face_photos`` in conftest.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from segue_cli.evaluation.attacker_pipeline import attacker_crop_correlation, detect_align_folder, probe_pattern
from segue_cli.errors import ConfigError, OutputError
from segue_cli.faces.detectors import DLIB5_TEMPLATE_112, DlibDetector, open_detector
from segue_cli.faces.geometry import (ARCFACE_TEMPLATE_112, Face, align_face, alignment_matrix, merge_face_deltas,
                                      similarity_transform, template_points)
from segue_cli.imageio import load_image
from segue_cli.backends.torch_backend import TorchBackend
from segue_cli.photo.compose import PhotoPlan, face_planner

REPO = Path(__file__).resolve().parents[1]
EPS = 8 / 255


@pytest.fixture(scope="module")
def dlib_detector() -> DlibDetector:
    return DlibDetector()


def pattern_fn(pattern: np.ndarray, calls: list | None = None):
    """A stand-in generator: the same ``pattern`` for every crop of a batch."""
    def perturb(crops: np.ndarray) -> np.ndarray:
        if calls is not None:
            calls.append(crops.shape)
        return np.repeat(pattern[None], len(crops), axis=0)

    return perturb


def protect_faces(rgb: np.ndarray, detector, perturb, *, epsilon: float = EPS, working_size: int = 112
                  ) -> tuple[PhotoPlan, np.ndarray]:
    """What ``segue protect --faces`` does to one photo: the face planner's plan, the
    generator on its inputs as one batch, and the plan's compose step."""
    plan = face_planner(detector, "on")(rgb, working_size, epsilon)
    return plan, plan.compose(list(perturb(np.stack(plan.inputs))))


def protect(rgb: np.ndarray, delta: np.ndarray) -> np.ndarray:
    return np.clip(rgb + np.rint(delta * 255.0), 0, 255).astype(np.uint8)


class FixedFaces:
    """A detector that "finds" the faces it is given (to place faces exactly)."""
    name = "fixed"

    def __init__(self, faces: list[Face]) -> None:
        self.faces = faces

    def detect(self, rgb: np.ndarray) -> list[Face]:
        return list(self.faces)


# --- geometry -------------------------------------------------------------------------


def test_similarity_transform_recovers_a_known_similarity() -> None:
    angle, scale, shift = 0.3, 2.5, np.array([40.0, -7.0])
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = ARCFACE_TEMPLATE_112 @ rotation.T + shift
    matrix = similarity_transform(moved, ARCFACE_TEMPLATE_112)
    np.testing.assert_allclose(np.hstack([moved, np.ones((5, 1))]) @ matrix.T, ARCFACE_TEMPLATE_112, atol=1e-9)
    with pytest.raises(ConfigError):
        similarity_transform(np.ones((5, 2)), ARCFACE_TEMPLATE_112)


def test_template_scales_about_pixel_centres() -> None:
    np.testing.assert_allclose(template_points(112), ARCFACE_TEMPLATE_112)
    np.testing.assert_allclose(template_points(224), ARCFACE_TEMPLATE_112 * 2 + 0.5)


def test_antialiased_crop_does_not_depend_on_photo_resolution(astronaut, yunet) -> None:
    """The same face aligned from the 512 px photo and from an 8x upscale gives the same
    crop (coordinates map consistently), and sensor-like grain in the large photo is
    averaged away instead of aliased into the crop."""
    face = yunet.detect(astronaut)[0]
    small = align_face(astronaut, alignment_matrix(face.landmarks), 112).astype(np.float32)
    big_rgb = cv2.resize(astronaut, (4096, 4096), interpolation=cv2.INTER_CUBIC)
    matrix = alignment_matrix((face.landmarks + 0.5) * 8 - 0.5)
    big = align_face(big_rgb, matrix, 112).astype(np.float32)
    assert np.abs(big - small).mean() < 2.0
    grain = np.random.default_rng(0).normal(0, 20, big_rgb.shape)
    noisy = np.clip(big_rgb + grain, 0, 255).astype(np.uint8)
    kept_antialiased = (align_face(noisy, matrix, 112).astype(np.float32) - big).std()
    kept_aliased = (align_face(noisy, matrix, 112, antialias=False).astype(np.float32)
                    - align_face(big_rgb, matrix, 112, antialias=False)).std()
    assert kept_antialiased < kept_aliased / 3


# --- detectors ------------------------------------------------------------------------


def _check_landmark_order(face: Face) -> None:
    (lx, ly), (rx, ry), (nx, ny), (mlx, mly), (mrx, mry) = face.landmarks
    assert lx < nx < rx and mlx < mrx
    assert max(ly, ry) < ny < min(mly, mry)
    x0, y0, x1, y1 = face.box
    assert x0 - 5 < lx and rx < x1 + 5 and y0 - 5 < min(ly, ry) and max(mly, mry) < y1 + 5


def test_yunet_finds_the_face_in_every_real_photo(face_photos, astronaut, yunet) -> None:
    faces = yunet.detect(astronaut)
    assert len(faces) == 1 and faces[0].score > 0.8
    _check_landmark_order(faces[0])
    for name, path in face_photos.items():
        faces = yunet.detect(load_image(path).rgb)
        assert len(faces) == 1, name
        _check_landmark_order(faces[0])


def test_dlib_fallback_agrees_with_yunet_after_mapping(face_photos, astronaut, yunet, dlib_detector) -> None:
    """dlib's five points are eye corners and the nose base; mapped through the fitted
    template they land near YuNet's eyes, nose and mouth in the aligned crop."""
    assert DLIB5_TEMPLATE_112.shape == (5, 2)
    photos = [astronaut] + [load_image(p).rgb for p in face_photos.values()]
    errors = []
    for rgb in photos:
        (reference,), (face,) = yunet.detect(rgb), dlib_detector.detect(rgb)
        _check_landmark_order(face)
        in_crop = np.hstack([face.landmarks, np.ones((5, 1))]) @ alignment_matrix(reference.landmarks).T
        errors.append(np.linalg.norm(in_crop - ARCFACE_TEMPLATE_112, axis=1).mean())
    assert max(errors) < 6.0, errors  # pixels of the 112 px crop


def test_open_detector_names() -> None:
    assert open_detector("auto").name == "yunet"
    assert open_detector("dlib").name == "dlib-hog"
    with pytest.raises(ConfigError):
        open_detector("retinaface")


# --- the face planner on real photos --------------------------------------------------


def test_delta_is_bounded_and_local(face_photos, yunet) -> None:
    rgb = load_image(face_photos["biden.jpg"]).rgb
    calls: list = []
    plan, protected = protect_faces(rgb, yunet, pattern_fn(probe_pattern(16, epsilon=EPS), calls))
    assert calls == [(1, 3, 112, 112)]
    assert protected.shape == rgb.shape and protected.dtype == np.uint8
    change = protected.astype(int) - rgb
    assert np.abs(change).max() <= 8
    changed = np.abs(change).max(axis=2) > 0
    rows, cols = np.nonzero(changed)
    outside = np.ones(rgb.shape[:2], bool)
    outside[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1] = False
    assert outside.any() and not changed[outside].any()  # nothing outside the face's feathered square
    (face,) = plan.details["faces"]
    x0, y0, x1, y1 = face["box"]
    cx, cy = int((x0 + x1) / 2), int((y0 + y1) / 2)
    assert np.abs(change[cy - 20 : cy + 20, cx - 20 : cx + 20]).mean() > 8 / 4
    assert plan.details["faces_found"] == 1 and plan.details["detector"] == "yunet" and len(face["landmarks"]) == 5


def test_no_face_falls_back_to_the_whole_image_and_says_so(yunet) -> None:
    ramp = np.tile(np.linspace(0, 255, 640, dtype=np.uint8)[None, :, None], (480, 1, 3))
    plan, protected = protect_faces(ramp, yunet, pattern_fn(probe_pattern(16)))
    assert plan.details["faces_found"] == 0 and plan.details["protection"] == "whole-image"
    assert any("no face found" in note for note in plan.notes)
    assert np.abs(protected.astype(int) - ramp).max() > 0


def test_every_face_in_a_group_photo_is_protected(astronaut, face_photos, yunet) -> None:
    obama = cv2.resize(load_image(face_photos["obama.jpg"]).rgb, (400, 500))
    group = np.full((600, 1100, 3), 128, np.uint8)
    group[50:562, 20:532] = astronaut
    group[60:560, 650:1050] = obama
    calls: list = []
    plan, protected = protect_faces(group, yunet, pattern_fn(probe_pattern(16), calls))
    assert plan.details["faces_found"] == 2 and calls == [(2, 3, 112, 112)]
    for face in plan.details["faces"]:
        x0, y0, x1, y1 = (int(v) for v in face["box"])
        assert np.abs(protected[y0:y1, x0:x1].astype(int) - group[y0:y1, x0:x1]).mean() > 8 / 4


def test_overlapping_faces_average_and_stay_within_epsilon(astronaut, yunet) -> None:
    (face,) = yunet.detect(astronaut)
    shifted = Face(tuple(v + 6 for v in face.box), face.landmarks + 6, face.score)

    def opposite(crops: np.ndarray) -> np.ndarray:
        return np.stack([np.full((3, 112, 112), EPS if i == 0 else -EPS, np.float32) for i in range(len(crops))])

    _, protected = protect_faces(astronaut, FixedFaces([face, shifted]), opposite)
    change = protected.astype(int) - astronaut
    assert np.abs(change).max() <= 8
    cx, cy = (int(v) for v in face.landmarks[2])
    assert np.abs(change[cy, cx]).max() <= 1  # +eps and -eps averaged


def test_merge_refuses_a_feather_outside_its_range(astronaut) -> None:
    with pytest.raises(ConfigError, match="feather"):
        merge_face_deltas(100, 100, np.zeros((1, 3, 112, 112), np.float32), [np.eye(2, 3)], epsilon=EPS, feather=0.8)


def test_exif_rotated_photo_is_protected_upright(tmp_path, astronaut, yunet) -> None:
    """Stored sideways with EXIF orientation 6: load_image turns it upright, the face is
    found, and the output has the upright size (what protect writes)."""
    path = tmp_path / "sideways.jpg"
    stored = Image.fromarray(np.ascontiguousarray(np.rot90(astronaut[:, :400], k=1)))
    exif = stored.getexif()
    exif[0x0112] = 6
    stored.save(path, quality=95, exif=exif)
    loaded = load_image(path)
    assert loaded.size == (512, 400)
    assert np.abs(loaded.rgb.astype(int) - astronaut[:, :400]).mean() < 4
    plan, protected = protect_faces(loaded.rgb, yunet, pattern_fn(probe_pattern(16)))
    assert plan.details["faces_found"] == 1 and protected.shape == (512, 400, 3)


def test_real_generator_through_backend_is_bounded(tiny_generator_path, astronaut, yunet) -> None:
    backend = TorchBackend(tiny_generator_path, device="cpu")
    size, epsilon = backend.info.image_size, backend.info.epsilon
    plan, protected = protect_faces(astronaut, yunet, lambda crops: backend.perturb(crops, np.full(len(crops), 4242)),
                                    epsilon=epsilon, working_size=size)
    change = np.abs(protected.astype(int) - astronaut)
    assert plan.details["faces_found"] == 1 and plan.inputs[0].shape == (3, size, size)
    assert 0 < change.max() <= round(epsilon * 255)


# --- what the attacker's crop carries ---------------------------------------------------


def test_attackers_aligned_crop_carries_the_perturbation(face_photos, astronaut, yunet) -> None:
    """Protect with a fixed pattern, let the attacker re-detect and re-align the protected
    photo: the crop residual correlates with the pattern. Whole-image protection of the
    same large photo (pattern made at 112 px and upscaled) gives next to nothing."""
    pattern = probe_pattern(16, epsilon=EPS)
    photos = {"astronaut-2048": cv2.resize(astronaut, (2048, 2048), interpolation=cv2.INTER_CUBIC)}
    photos.update({name: load_image(path).rgb for name, path in face_photos.items()})
    face_aware, whole = {}, {}
    for name, rgb in photos.items():
        _, protected = protect_faces(rgb, yunet, pattern_fn(pattern))
        (face_aware[name],) = attacker_crop_correlation(rgb, protected, yunet, pattern)
        upscaled = cv2.resize(pattern.transpose(1, 2, 0), rgb.shape[1::-1], interpolation=cv2.INTER_LINEAR)
        (whole[name],) = attacker_crop_correlation(rgb, protect(rgb, upscaled), yunet, pattern)
    print("\nattacker crop vs pattern, face-aware:", {k: round(v, 2) for k, v in face_aware.items()})
    print("attacker crop vs pattern, whole-image:", {k: round(v, 2) for k, v in whole.items()})
    assert face_aware["astronaut-2048"] > 0.8
    assert np.median(list(face_aware.values())) > 0.7 and min(face_aware.values()) > 0.4
    assert max(abs(v) for v in whole.values()) < 0.2


# --- attacker pipeline and benchmark set ------------------------------------------------


def _portrait_folder(root: Path, astronaut: np.ndarray, face_photos: dict[str, Path]) -> Path:
    (root / "astro").mkdir(parents=True)
    (root / "obama").mkdir()
    Image.fromarray(astronaut).save(root / "astro" / "a.jpg")
    Image.fromarray(np.full((300, 300, 3), 90, np.uint8)).save(root / "astro" / "blank.png")
    (root / "astro" / "broken.jpg").write_bytes(b"not a jpeg")
    for name in ("obama.jpg", "obama2.jpg"):
        (root / "obama" / name).write_bytes(face_photos[name].read_bytes())
    return root


def test_detect_align_folder_writes_crops_and_reports_misses(tmp_path, astronaut, face_photos, yunet) -> None:
    src = _portrait_folder(tmp_path / "photos", astronaut, face_photos)
    seen: list = []
    report = detect_align_folder(src, tmp_path / "aligned", yunet, progress=seen.append)
    assert report.written == 3 and len(seen) == 5
    assert [p.name for p in report.no_face] == ["blank.png"]
    assert [p.name for p, _ in report.failed] == ["broken.jpg"]
    crops = sorted((tmp_path / "aligned").rglob("*.png"))
    assert [c.relative_to(tmp_path / "aligned").as_posix() for c in crops] == ["astro/a.png", "obama/obama.png", "obama/obama2.png"]
    assert all(Image.open(c).size == (112, 112) for c in crops)
    assert report.to_dict()["empty_identities"] == []
    with pytest.raises(OutputError):
        detect_align_folder(src, tmp_path / "aligned", yunet)
    with pytest.raises(OutputError):
        detect_align_folder(src, src / "astro" / "out", yunet)


def _load_make_faces_set():
    spec = importlib.util.spec_from_file_location("make_faces_set", REPO / "research" / "make_faces_set.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_make_faces_set_is_seeded_and_faces_stay_detectable(tmp_path, astronaut, face_photos, yunet) -> None:
    module = _load_make_faces_set()
    src = tmp_path / "crops"
    for split, names in (("train", ("obama.jpg", "obama2.jpg")), ("test", ("obama3.jpg",))):
        (src / split / "0").mkdir(parents=True)
        for name in names:
            rgb = load_image(face_photos[name]).rgb
            (face,) = yunet.detect(rgb)
            crop = align_face(rgb, alignment_matrix(face.landmarks, 224, "webface10"), 224)
            Image.fromarray(crop).save(src / split / "0" / name)
    config = module.SetConfig(width=512, height=384)
    counts = module.build_faces_set(src, tmp_path / "a", config)
    module.build_faces_set(src, tmp_path / "b", config)
    assert counts == {"train": 2, "test": 1}
    photos = sorted((tmp_path / "a").rglob("*.jpg"))
    assert [p.read_bytes() for p in photos] == [p.read_bytes() for p in sorted((tmp_path / "b").rglob("*.jpg"))]
    for photo in photos:
        assert Image.open(photo).size == (512, 384)
        assert len(yunet.detect(load_image(photo).rgb)) == 1
    assert (tmp_path / "a" / "placements.csv").read_text().startswith("path,label,x,y,side")
    with pytest.raises(OutputError):
        module.build_faces_set(src, tmp_path / "a", config)
