"""The identity-moving term of ``segue train --identity-weight W`` (issue 17).

A face-recognition system matches a photo by its embedding: the unlearnable term does
nothing against one that was trained elsewhere. This term pushes the embedding of each
protected photo away from its identity: the cosine similarity between dlib's descriptor
of the protected face (through its PyTorch twin, :mod:`segue_cli.faces.dlib_face_net`) and the
mean descriptor of that identity's clean training photos, which the generator lowers.

What the twin sees is what dlib would: each training photo's 150 px chip is located once,
on the clean photo, with dlib's detector, 5 landmarks and chip geometry; in training the
same chip is cut from the protected photo (after the distortion layer, without its flips,
which would move the face) by the differentiable extraction. The photo's alignment does
not move with the perturbation: 8/255 moves landmarks by a fraction of a pixel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..faces.dlib_face_net import DlibFaceNet


@dataclass
class IdentityObjective:
    net: DlibFaceNet
    matrices: torch.Tensor  # [N, 2, 3] float64: chip pixel -> photo pixel, per training photo
    centroids: torch.Tensor  # [K, 128] unit mean clean descriptor of each identity

    def similarity(self, photos: torch.Tensor, indices: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean cosine similarity of the photos' descriptors ([0, 1] photos, the training
        photos ``indices``) to their identities' clean centroids."""
        descriptors = self.net.unit_descriptors(photos * 255.0, self.matrices[indices.cpu()].to(photos.device))
        return (descriptors * self.centroids.to(photos.device)[targets]).sum(dim=1).mean()


def prepare(images: torch.Tensor, targets: torch.Tensor, num_classes: int,
            on_photo: Callable[[], None] | None = None) -> IdentityObjective:
    """Locate every training photo's chip (uint8 photos [N, 3, H, W]) and embed the clean
    chips once. A photo whose face is not found uses the centred box, as the embedding
    attacker does."""
    from ..faces.embedding import DlibEmbedder

    embedder = DlibEmbedder(engine="twin")
    net: DlibFaceNet = embedder.twin
    matrices = []
    for photo in images:
        rgb = np.ascontiguousarray(photo.permute(1, 2, 0).numpy())
        matrices.append(embedder.chip_map(rgb)[0])
        if on_photo is not None:
            on_photo()
    matrix_tensor = torch.from_numpy(np.stack(matrices))
    descriptors = []
    with torch.no_grad():
        for start in range(0, len(images), 32):
            descriptors.append(net.unit_descriptors(images[start : start + 32].double(), matrix_tensor[start : start + 32]))
    return IdentityObjective(net, matrix_tensor, class_centroids(torch.cat(descriptors), targets, num_classes))


def class_centroids(descriptors: torch.Tensor, targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """[K, 128] unit mean of each identity's unit descriptors (also the nearest-class-mean
    attacker's enrolment)."""
    return torch.stack([F.normalize(descriptors[targets == k].mean(dim=0), dim=0) for k in range(num_classes)])
