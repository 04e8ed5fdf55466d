"""The in-memory API: `from segue_cli import Protector`, on real photos."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from segue_cli.errors import ConfigError, InputError


@pytest.fixture(scope="module")
def protector():
    from segue_cli import Protector

    return Protector()  # the shipped default model


def _pixels(image) -> np.ndarray:
    return np.asarray(image.convert("RGB")).astype(int)


def test_a_pil_photo_comes_back_protected_as_a_pil_image(protector, astronaut):
    photo = Image.fromarray(astronaut)
    protected = protector.protect(photo, identity="Eileen Collins")
    assert isinstance(protected, Image.Image) and protected.size == photo.size
    change = np.abs(_pixels(protected) - astronaut.astype(int))
    assert 0 < change.max() <= 8 and (change > 0).mean() > 0.01
    # The same identity gives the same pixels; another identity other pixels.
    again = protector.protect(photo, identity="Eileen Collins")
    other = protector.protect(photo, identity="Ada Lovelace")
    assert np.array_equal(_pixels(again), _pixels(protected)) and not np.array_equal(_pixels(other), _pixels(protected))


def test_arrays_bytes_and_paths_come_back_as_their_own_kind(protector, webface10, tmp_path):
    crop_path = sorted((webface10 / "train" / "0").glob("*.jpg"))[0]
    rgb = np.asarray(Image.open(crop_path).convert("RGB"))
    out = protector.protect(rgb, label=0)
    assert isinstance(out, np.ndarray) and out.shape == rgb.shape and out.dtype == np.uint8
    assert 0 < np.abs(out.astype(int) - rgb).max() <= 8
    jpeg_bytes = crop_path.read_bytes()
    protected_bytes = protector.protect(jpeg_bytes, label=0)
    assert isinstance(protected_bytes, bytes) and Image.open(io.BytesIO(protected_bytes)).format == "JPEG"
    png = io.BytesIO()
    Image.fromarray(rgb).save(png, format="PNG")
    decoded = Image.open(io.BytesIO(protector.protect(png.getvalue(), label=0)))
    assert decoded.format == "PNG" and np.array_equal(_pixels(decoded), out.astype(int))  # PNG: lossless, same pixels
    # A JPEG in, PNG asked for: lossless, so the same pixels as the array route.
    as_png = Image.open(io.BytesIO(protector.protect(jpeg_bytes, label=0, image_format="png")))
    assert as_png.format == "PNG" and np.array_equal(_pixels(as_png), out.astype(int))
    with pytest.raises(ConfigError, match="unknown format .gif."):
        protector.protect(jpeg_bytes, label=0, image_format="gif")
    from_path = protector.protect(crop_path, label=0)
    assert isinstance(from_path, Image.Image) and np.abs(_pixels(from_path) - rgb).max() <= 8


def test_gray_alpha_and_orientation_are_kept(protector, astronaut):
    gray = Image.fromarray(astronaut).convert("L")
    out = protector.protect(gray, code=12)
    assert out.mode == "L" and 0 < np.abs(np.asarray(out).astype(int) - np.asarray(gray)).max() <= 8
    rgba = np.dstack([astronaut, np.full(astronaut.shape[:2], 77, np.uint8)])
    out = protector.protect(rgba, code=12)
    assert out.shape == rgba.shape and (out[..., 3] == 77).all()
    sideways = Image.fromarray(astronaut).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    sideways.save(buffer, format="JPEG", quality=95, exif=exif)
    upright = Image.open(io.BytesIO(protector.protect(buffer.getvalue(), code=12)))
    assert upright.size == (astronaut.shape[1], astronaut.shape[0])


def test_side_information_is_required_once(protector, astronaut):
    for kwargs in ({}, {"identity": "a", "label": 1}):
        with pytest.raises(InputError, match="exactly one of identity=, label= or code="):
            protector.protect(astronaut, **kwargs)
    with pytest.raises(InputError, match="uint8"):
        protector.protect(astronaut.astype(np.float32), code=1)
