"""The registry's face networks in PyTorch, with gradients (issue 40), and where each one
cuts its face from a photo.

- dlib: the twin of dlib's network (``dlib_face_net``) on dlib's own 150 px chip;
- faceplugin, mobilefacenet: the shipped ONNX files (``networks.FACE_NETWORKS``, sha256-
  checked) converted to PyTorch by ``onnx2torch`` when loaded (a fraction of a second;
  descriptors equal to the original runtimes within 1e-3, ``tools/face_networks.py check``),
  on a 112 px crop aligned from YuNet's five landmarks to ArcFace's template.

Every network answers ``unit_descriptors(photos, matrices)``: photos [B, 3, H, W] in 0..255,
matrices [B, 2, 3] from crop pixel to photo pixel (what :class:`FaceLocator` gives), unit
descriptors out, differentiable in the photos. ``FaceNetEmbedder`` is the same network as
``segue evaluate``'s embedding attacker (``--arch embedding-faceplugin``).
"""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from .dlib_face_net import extract_chips
from .embedding import FaceEmbedding
from .geometry import WEBFACE10_TEMPLATE_112, alignment_matrix, template_points
from ..storage import pinned_file
from .networks import FACE_NETWORKS, FaceNetworkSpec, weight_path


class OnnxFaceNet(nn.Module):
    """A shipped ONNX face network as a PyTorch module (onnx2torch), with its preprocessing."""

    def __init__(self, spec: FaceNetworkSpec, graph: nn.Module) -> None:
        super().__init__()
        self.spec = spec
        self.graph = graph

    def raw_descriptors(self, crops: torch.Tensor) -> torch.Tensor:
        """Descriptors as the network gives them, from aligned crops [B, 3, S, S] in 0..255."""
        return self.graph((crops - self.spec.mean) / self.spec.scale)

    def unit_descriptors(self, photos: torch.Tensor, matrices: torch.Tensor, gain: Any = None) -> torch.Tensor:
        crops = extract_chips(photos, matrices, self.spec.input_size)
        return F.normalize(self.raw_descriptors(crops.float()), dim=1)


class DlibFaceNetHandle(nn.Module):
    """dlib's twin under the registry's interface."""

    def __init__(self, twin: Any) -> None:
        super().__init__()
        self.spec = FACE_NETWORKS["dlib"]
        self.twin = twin

    def raw_descriptors(self, crops: torch.Tensor) -> torch.Tensor:
        return self.twin(crops)

    def unit_descriptors(self, photos: torch.Tensor, matrices: torch.Tensor, gain: Any = None) -> torch.Tensor:
        return self.twin.unit_descriptors(photos, matrices, gain)


def _checked_onnx(spec: FaceNetworkSpec) -> bytes:
    return pinned_file(weight_path(spec.name), spec.sha256, f"the {spec.name} face network",
                       "reinstall segue; from a checkout: git checkout segue_cli/faces/weights").read_bytes()


def load_face_net(name: str) -> Any:
    """The named network, in eval mode, weights frozen."""
    if name not in FACE_NETWORKS:
        raise InputError(f"unknown face network {name!r}", f"use one of {', '.join(FACE_NETWORKS)}")
    spec = FACE_NETWORKS[name]
    return spec.load()(spec).eval().requires_grad_(False)


def dlib_face_net(spec: FaceNetworkSpec) -> Any:
    """dlib's network, as its PyTorch twin (the factory of ``networks.FACE_NETWORKS["dlib"]``)."""
    from .dlib_face_net import load_dlib_face_net

    return DlibFaceNetHandle(load_dlib_face_net())


def onnx_face_net(spec: FaceNetworkSpec) -> Any:
    """A shipped ONNX network, checked against its sha256 and converted to PyTorch."""
    try:
        import onnx
        from onnx2torch import convert
    except ImportError as exc:
        raise InputError(f"the {spec.name} face network needs onnx2torch",
                         "pip install 'segue[cloak]' (from a checkout: pip install -e '.[cloak]')") from exc
    return OnnxFaceNet(spec, convert(onnx.load_from_string(_checked_onnx(spec))))


@lru_cache(maxsize=8)
def shared_face_net(name: str) -> Any:
    """One loaded network per process (only read, so threads may share it)."""
    return load_face_net(name)


def crop_to_photo(landmarks: np.ndarray, size: int) -> np.ndarray:
    """The 2 x 3 map from a ``size`` px ArcFace-aligned crop's pixel to the photo's."""
    forward = np.vstack([alignment_matrix(landmarks, size, "arcface"), [0.0, 0.0, 1.0]])
    return np.linalg.inv(forward)[:2]


def tight_crop_landmarks(height: int, width: int) -> np.ndarray:
    """Where the five points sit if the photo is a tight face crop (WebFace10's framing,
    centred): what is assumed when YuNet finds no face, as dlib's centre box does."""
    side = min(height, width)
    points = template_points(side, WEBFACE10_TEMPLATE_112)
    return points + np.array([(width - side) / 2, (height - side) / 2])


class FaceLocator:
    """Where each network cuts its face: dlib's chip map for dlib, YuNet's five points
    for the others; the largest face; a tight crop assumed when nothing is found."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names
        # dlib's detector and shape predictor, and YuNet's buffers, are not shared across threads: one lock each
        self._dlib_lock, self._yunet_lock = threading.Lock(), threading.Lock()
        self.dlib: Any = None
        self._yunet: Any = None
        if any(FACE_NETWORKS[n].alignment == "dlib-chip" for n in names):
            from .embedding import DlibEmbedder

            self.dlib = DlibEmbedder(engine="dlib")
        if any(FACE_NETWORKS[n].alignment == "arcface-5" for n in names):
            from .detectors import YuNetDetector

            self._yunet = YuNetDetector()

    def landmarks(self, rgb: np.ndarray) -> tuple[np.ndarray, bool]:
        """YuNet's five points of the largest face (or the tight-crop guess), and whether found."""
        faces = self._yunet.detect(rgb)
        if not faces:
            return tight_crop_landmarks(*rgb.shape[:2]), False
        largest = max(faces, key=lambda f: f.width * (f.box[3] - f.box[1]))
        return np.asarray(largest.landmarks, np.float64), True

    def locate(self, rgb: np.ndarray) -> tuple[dict[str, np.ndarray], bool]:
        """({network: crop-to-photo 2 x 3 map}, whether any detector found a face). A
        detector that misses while another finds one falls back to the tight-crop guess."""
        rgb = np.ascontiguousarray(rgb)
        maps: dict[str, np.ndarray] = {}
        found = False
        if self.dlib is not None:
            with self._dlib_lock:
                chip, faces = self.dlib.chip_map(rgb)
            found = found or faces > 0
            maps.update({n: chip for n in self.names if FACE_NETWORKS[n].alignment == "dlib-chip"})
        if self._yunet is not None:
            with self._yunet_lock:
                points, seen = self.landmarks(rgb)
            found = found or seen
            maps.update({n: crop_to_photo(points, FACE_NETWORKS[n].input_size)
                         for n in self.names if FACE_NETWORKS[n].alignment == "arcface-5"})
        return maps, found


def describe(nets: dict[str, Any], locator: FaceLocator, rgb: np.ndarray) -> tuple[dict[str, np.ndarray], bool]:
    """({network: unit descriptor of the photo's face, aligned where ``locator`` places each
    network's crop}, whether a face was found): the one way the embedder and the cloak read
    descriptors off a photo."""
    rgb = np.array(rgb, dtype=np.uint8)  # a copy: torch wants a writable array, and a decoded photo may be read-only
    maps, found = locator.locate(rgb)
    photo = torch.from_numpy(rgb).permute(2, 0, 1)[None].float()
    with torch.no_grad():
        return {name: net.unit_descriptors(photo, torch.from_numpy(maps[name])[None])[0].numpy()
                for name, net in nets.items()}, found


class FaceNetEmbedder:
    """A registry network as ``segue evaluate``'s embedding attacker (the interface of
    :class:`~segue_cli.faces.embedding.DlibEmbedder`): YuNet, ArcFace alignment, descriptor."""

    def __init__(self, name: str) -> None:
        if FACE_NETWORKS[name].alignment != "arcface-5":
            raise InputError(f"{name} is judged by its own embedder", "use embedding-dlib for dlib's network")
        self.name = name
        self.net = shared_face_net(name)
        self.locator = FaceLocator((name,))

    def embed_many(self, images: list[np.ndarray]) -> list[FaceEmbedding]:
        results = []
        for rgb in images:
            vectors, found = describe({self.name: self.net}, self.locator, rgb)
            height, width = rgb.shape[:2]
            results.append(FaceEmbedding(vectors[self.name].astype(np.float32), (0.0, 0.0, width - 1.0, height - 1.0),
                                         found, int(found)))
        return results

    def embed(self, rgb: np.ndarray) -> FaceEmbedding:
        return self.embed_many([rgb])[0]
