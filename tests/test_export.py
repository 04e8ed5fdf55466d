"""segue export and the ONNX Runtime backend.

One export per session (conftest ``onnx_export``; the exporter takes 10-30 s on this
CPU) feeds most tests; the end-to-end CLI and fp16 exports are marked slow.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

from conftest import saturating_generator
from segue_cli.export import onnx_export as export_module
from segue_cli.artifacts import load_generator, save_generator
from segue_cli.cli.app import app
from segue_cli.errors import ArtifactError, ConfigError, OutputError
from segue_cli.export import FP32_TOLERANCE, PARITY_SIZES, ExportConfig, ParityError, check_parity, export_model
from segue_cli.backends.onnx_backend import CPU_PROVIDER, CUDA_PROVIDER, DYNAMIC_AXES, FORMAT_VERSION, INPUT_NAMES, KEY_EPSILON, KEY_FORMAT_VERSION, OUTPUT_NAMES, OnnxBackend, OnnxMetadata, choose_providers
from segue_cli.backends.torch_backend import TorchBackend
from segue_cli.backends import open_backend

pytestmark = pytest.mark.onnx
EPSILON = 8 / 255


@pytest.fixture
def exported(onnx_export) -> tuple[Path, Path, export_module.ExportResult]:
    """(checkpoint, onnx file, export result) of the session's export (see conftest)."""
    return onnx_export.source, onnx_export.out, onnx_export


def _rewrite_props(src: Path, dest: Path, changes: dict[str, str] | None) -> Path:
    """Copy ``src`` to ``dest`` with metadata_props updated by ``changes`` (None: all removed)."""
    model = onnx.load(str(src))
    props = {p.key: p.value for p in model.metadata_props}
    del model.metadata_props[:]
    if changes is not None:
        onnx.helper.set_model_props(model, {**props, **changes})
    onnx.save_model(model, str(dest))
    return dest


def test_export_writes_checked_file_with_metadata(exported):
    checkpoint, onnx_path, result = exported
    model = onnx.load(str(onnx_path))
    onnx.checker.check_model(model, full_check=True)
    props = {p.key: p.value for p in model.metadata_props}
    meta = OnnxMetadata.from_props(props, onnx_path)
    source = load_generator(checkpoint).metadata
    assert meta.source_sha256 == source.content_sha256
    assert (meta.epsilon, meta.code_bits, meta.image_size, meta.precision) == (EPSILON, 16, 32, "fp32")
    assert meta.format_version == FORMAT_VERSION
    assert [i.name for i in model.graph.input] == list(INPUT_NAMES)
    assert [o.name for o in model.graph.output] == list(OUTPUT_NAMES)
    for value in [*model.graph.input, *model.graph.output]:
        dims = value.type.tensor_type.shape.dim
        for position, axis in DYNAMIC_AXES[value.name].items():
            assert dims[position].dim_param == axis, f"{value.name} axis {position} is not dynamic"
    assert [(c.height, c.width) for c in result.parity] == [*PARITY_SIZES, (32, 32)]
    assert all(c.max_abs_diff <= FP32_TOLERANCE for c in result.parity)
    assert not list(onnx_path.parent.glob("*.tmp")), "atomic write left a temp file"


@pytest.mark.parametrize(("batch", "height", "width"), [(1, 32, 32), (2, 33, 47), (3, 47, 33), (2, 5, 9), (1, 70, 17)])
def test_onnx_matches_torch_on_odd_and_non_square_sizes(exported, batch, height, width):
    checkpoint, onnx_path, _ = exported
    onnx_backend, torch_backend = OnnxBackend(onnx_path, "cpu"), TorchBackend(checkpoint, "cpu")
    rng = np.random.default_rng(height * width)
    images = rng.random((batch, 3, height, width), dtype=np.float32)
    codes = rng.integers(0, 2**16, batch, dtype=np.int64)
    got, want = onnx_backend.perturb(images, codes), torch_backend.perturb(images, codes)
    assert got.shape == images.shape and got.dtype == np.float32
    assert np.abs(got - want).max() <= FP32_TOLERANCE
    assert np.abs(got).max() <= EPSILON + 1e-6
    assert np.abs(got).max() > EPSILON / 2, "the fixture should make a non-trivial perturbation"


def test_backend_reads_metadata_and_reuses_one_session(exported):
    checkpoint, onnx_path, _ = exported
    backend = open_backend(onnx_path, backend="auto", device="cpu")
    assert isinstance(backend, OnnxBackend)
    info = backend.info
    assert (info.name, info.device, info.image_size, info.code_bits) == ("onnx", CPU_PROVIDER, 32, 16)
    assert info.epsilon == pytest.approx(EPSILON)
    assert info.model_sha256 == load_generator(checkpoint).metadata.content_sha256
    session = backend._session
    images = np.random.default_rng(0).random((2, 3, 20, 24), dtype=np.float32)
    one_code = backend.perturb(images, np.array([7]))
    assert backend._session is session
    np.testing.assert_array_equal(one_code, backend.perturb(images, np.array([7, 7])))
    assert np.abs(one_code - backend.perturb(images, np.array([8, 8]))).max() > 0, "the code must change delta"


def test_backend_refuses_bad_inputs(exported):
    backend = OnnxBackend(exported[1], "cpu")
    with pytest.raises(Exception, match="batch, 3, height, width"):
        backend.perturb(np.zeros((2, 1, 8, 8), np.float32), np.array([1, 2]))
    with pytest.raises(Exception, match="2 images but 3 codes"):
        backend.perturb(np.zeros((2, 3, 8, 8), np.float32), np.array([1, 2, 3]))
    with pytest.raises(Exception, match="out of range"):
        backend.perturb(np.zeros((1, 3, 8, 8), np.float32), np.array([2**16]))
    with pytest.raises(ConfigError, match="threads"):
        OnnxBackend(exported[1], "cpu", threads=0)


def test_onnx_without_segue_metadata_is_refused(exported, tmp_path):
    stripped = _rewrite_props(exported[1], tmp_path / "stripped.onnx", None)
    with pytest.raises(ArtifactError, match="no segue metadata"):
        OnnxBackend(stripped, "cpu")
    foreign = tmp_path / "identity.onnx"
    value = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["x"], ["y"])], "g", [value],
                                   [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])])
    onnx.save_model(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)]), str(foreign))
    with pytest.raises(ArtifactError, match="no segue metadata"):
        open_backend(foreign)


def test_unknown_format_version_and_malformed_metadata_are_refused(exported, tmp_path):
    future = _rewrite_props(exported[1], tmp_path / "future.onnx", {KEY_FORMAT_VERSION: str(FORMAT_VERSION + 1)})
    with pytest.raises(ArtifactError, match="format version '2'"):
        OnnxBackend(future, "cpu")
    broken = _rewrite_props(exported[1], tmp_path / "broken.onnx", {KEY_EPSILON: "eight"})
    with pytest.raises(ArtifactError, match="malformed"):
        OnnxBackend(broken, "cpu")
    with pytest.raises(ArtifactError, match="not found"):
        OnnxBackend(tmp_path / "missing.onnx", "cpu")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a protobuf")
    with pytest.raises(ArtifactError, match="cannot load"):
        OnnxBackend(garbage, "cpu")


def test_parity_check_catches_a_graph_that_disagrees(exported, tmp_path, monkeypatch):
    checkpoint, onnx_path, _ = exported
    other = saturating_generator(seed=1)
    with pytest.raises(ParityError, match="disagrees with PyTorch"):
        check_parity(onnx_path, other, FP32_TOLERANCE)
    # Through export_model: a graph that is not the checkpoint's leaves --out unwritten.
    other_checkpoint = tmp_path / "other.safetensors"
    save_generator(other_checkpoint, other, epsilon=EPSILON, image_size=32)
    proto = onnx.load(str(onnx_path))
    monkeypatch.setattr(export_module, "build_onnx", lambda *args, **kwargs: proto)
    out = tmp_path / "out" / "bad.onnx"
    with pytest.raises(ParityError) as caught:
        export_model(ExportConfig(out=out, model=other_checkpoint))
    assert caught.value.exit_code == 1
    assert not out.exists() and not list(out.parent.glob("*")), "a failed export must leave nothing behind"


def test_export_config_and_inputs_are_validated(exported, tmp_path):
    checkpoint, onnx_path, _ = exported
    with pytest.raises(ConfigError, match=r"must end in \.onnx"):
        ExportConfig(out=tmp_path / "g.pt")
    with pytest.raises(ConfigError, match="opset 17"):
        ExportConfig(out=tmp_path / "g.onnx", opset=17)
    with pytest.raises(OutputError, match="already exists"):
        export_model(ExportConfig(out=onnx_path, model=checkpoint))
    with pytest.raises(ConfigError, match="already an ONNX file"):
        export_model(ExportConfig(out=tmp_path / "again.onnx", model=onnx_path))
    with pytest.raises(ArtifactError, match="not found"):
        export_model(ExportConfig(out=tmp_path / "x.onnx", model=tmp_path / "missing.safetensors"))


def test_providers_are_requested_and_available_with_cpu_last():
    assert choose_providers("auto", [CPU_PROVIDER]) == [CPU_PROVIDER]
    assert choose_providers("auto", [CUDA_PROVIDER, CPU_PROVIDER]) == [(CUDA_PROVIDER, {"device_id": "0"}), CPU_PROVIDER]
    assert choose_providers("cuda:1", [CUDA_PROVIDER, CPU_PROVIDER])[0] == (CUDA_PROVIDER, {"device_id": "1"})
    assert choose_providers("cpu", [CUDA_PROVIDER, CPU_PROVIDER]) == [CPU_PROVIDER]
    with pytest.raises(ConfigError, match="onnxruntime-gpu"):
        choose_providers("cuda", [CPU_PROVIDER])
    with pytest.raises(ConfigError, match="unknown device"):
        choose_providers("tpu", [CPU_PROVIDER])


def test_cli_refuses_to_overwrite(exported):
    checkpoint, onnx_path, _ = exported
    before = onnx_path.read_bytes()
    result = CliRunner().invoke(app, ["export", str(checkpoint), "--out", str(onnx_path)])
    assert result.exit_code == 2
    assert "already exists" in result.output and "--overwrite" in result.output
    assert onnx_path.read_bytes() == before


@pytest.mark.slow
def test_cli_export_json_and_overwrite(exported, tmp_path):
    checkpoint, _, _ = exported
    out = tmp_path / "cli.onnx"
    out.write_bytes(b"old")
    result = CliRunner().invoke(app, ["export", str(checkpoint), "--out", str(out), "--overwrite", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["out"] == str(out) and report["opset"] == 18
    assert report["max_abs_diff"] <= FP32_TOLERANCE
    assert report["metadata"]["segue.source_content_sha256"] == load_generator(checkpoint).metadata.content_sha256
    backend = OnnxBackend(out, "cpu")
    assert backend.perturb(np.zeros((1, 3, 33, 47), np.float32), np.array([3])).shape == (1, 3, 33, 47)


@pytest.mark.slow
def test_fp16_export_within_its_tolerance(exported, tmp_path):
    checkpoint, _, _ = exported
    result = export_model(ExportConfig(out=tmp_path / "half.onnx", model=checkpoint, fp16=True))
    assert result.metadata.precision == "fp16"
    assert result.tolerance == export_module.FP16_TOLERANCE
    worst = max(c.max_abs_diff for c in result.parity)
    assert FP32_TOLERANCE / 100 < worst <= export_module.FP16_TOLERANCE, "fp16 should differ a little, within tolerance"
    assert OnnxBackend(result.out, "cpu").metadata.precision == "fp16"


@pytest.mark.parametrize("epsilon", ["1.0", "5.0", "nan", "0"])
def test_onnx_declaring_an_out_of_range_epsilon_is_refused(exported, tmp_path, epsilon):
    forged = _rewrite_props(exported[1], tmp_path / "forged.onnx", {KEY_EPSILON: epsilon})
    with pytest.raises(ArtifactError, match="epsilon"):
        OnnxBackend(forged, "cpu")
