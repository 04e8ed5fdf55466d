import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from segue_cli.artifacts import FORMAT_VERSION, load_generator, read_metadata, save_generator
from segue_cli.errors import ArtifactError
from segue_cli.nn.generator import GeneratorConfig, SegueGenerator


def test_round_trip_keeps_weights_and_metadata(tmp_path):
    torch.manual_seed(1)
    model = SegueGenerator(GeneratorConfig()).eval()
    path = tmp_path / "g.safetensors"
    save_generator(path, model, epsilon=4 / 255, image_size=64, training={"epochs": 3})
    loaded = load_generator(path)
    assert loaded.metadata.epsilon == pytest.approx(4 / 255)
    assert loaded.metadata.image_size == 64
    assert loaded.metadata.code_bits == 16
    assert loaded.metadata.format_version == FORMAT_VERSION
    assert loaded.metadata.training == {"epochs": 3}
    images = torch.rand(2, 3, 40, 40)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model.perturbation(images, [1, 2], 0.03), model.perturbation(images, [1, 2], 0.03))
    assert not list(tmp_path.glob("*.tmp")), "atomic write left a temp file"


def _rewrite(path, tensors=None, metadata=None):
    with safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata()
    tensors = tensors if tensors is not None else load_file(str(path))
    save_file(tensors, str(path), metadata=metadata if metadata is not None else meta)


def test_tampered_weights_are_refused(tiny_generator_path):
    tensors = load_file(str(tiny_generator_path))
    name = sorted(tensors)[0]
    tensors[name] = tensors[name] + 0.01
    _rewrite(tiny_generator_path, tensors=tensors)
    with pytest.raises(ArtifactError, match="integrity"):
        load_generator(tiny_generator_path)


def test_tampered_metadata_is_refused(tiny_generator_path):
    with safe_open(str(tiny_generator_path), framework="pt") as handle:
        record = json.loads(handle.metadata()["segue"])
    record["epsilon"] = 12 / 255  # within the allowed range, so only the integrity check can catch it
    _rewrite(tiny_generator_path, metadata={"segue": json.dumps(record)})
    with pytest.raises(ArtifactError, match="integrity"):
        load_generator(tiny_generator_path)


def test_unknown_format_version_is_refused(tiny_generator_path):
    with safe_open(str(tiny_generator_path), framework="pt") as handle:
        record = json.loads(handle.metadata()["segue"])
    record["format_version"] = 99
    _rewrite(tiny_generator_path, metadata={"segue": json.dumps(record)})
    with pytest.raises(ArtifactError, match="format version"):
        read_metadata(tiny_generator_path)


def test_pickle_and_foreign_files_are_refused(tmp_path):
    pickled = tmp_path / "evil.safetensors"
    torch.save({"x": torch.zeros(1)}, pickled)
    with pytest.raises(ArtifactError):
        load_generator(pickled)
    plain = tmp_path / "plain.safetensors"
    save_file({"x": torch.zeros(1)}, str(plain))
    with pytest.raises(ArtifactError, match="no segue metadata"):
        load_generator(plain)
    with pytest.raises(ArtifactError, match="not found"):
        load_generator(tmp_path / "missing.safetensors")


def test_atomic_write_gives_normal_permissions(tmp_path):
    import os

    from segue_cli.storage import atomic_write

    target = tmp_path / "shared.txt"
    atomic_write(target, lambda tmp: tmp.write_text("x"))
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize(("field", "value"), [("epsilon", 1.0), ("epsilon", 5.0), ("epsilon", float("nan")),
                                              ("epsilon", 0.0), ("image_size", 4), ("code_bits", 0)])
def test_a_resigned_checkpoint_with_out_of_range_settings_is_refused(tmp_path, field, value):
    # Re-signed: the content sha256 is recomputed, so only the range check can catch it.
    from segue_cli.artifacts import _content_sha256

    path = tmp_path / "g.safetensors"
    save_generator(path, SegueGenerator(GeneratorConfig()), epsilon=8 / 255, image_size=32)
    record = read_metadata(path).to_dict()
    record[field] = value
    tensors = load_file(str(path))
    record["content_sha256"] = _content_sha256(tensors, record)
    save_file(tensors, str(path), metadata={"segue": json.dumps(record)})
    with pytest.raises(ArtifactError, match="refuses to run"):
        load_generator(path)
