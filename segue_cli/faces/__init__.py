"""Faces: finding, aligning and recognising them.

* ``geometry``: the :class:`~segue_cli.faces.geometry.Face` record, similarity
  transforms, aligned crops and how per-face perturbations merge back into a photo;
* ``detectors``: the detectors (YuNet, dlib) and :func:`~segue_cli.faces.detectors.open_detector`;
* ``dlib_weights``: the pinned dlib model files (never downloaded);
* ``embedding``: dlib's 128-d face descriptor (``DlibEmbedder``), used by ``cluster`` and
  the pretrained-embedding attacker;
* ``dlib_face_net``: dlib's recognition network as a batched, differentiable PyTorch twin.

Adding a detector is one entry in :data:`DETECTORS` (and its class in ``detectors``).
This module imports nothing heavy, so ``--help`` and option checks can read the choices.
"""

from __future__ import annotations

from ..choices import Spec, registry

#: The one registry of face detectors: ``--detector NAME`` -> its class (called with no
#: arguments); ``auto`` opens the first that can run here.
DETECTORS: dict[str, Spec] = registry(
    Spec(name="yunet", help="YuNet (libfacedetection through yuface): fast, finds profile and small faces",
         factory="segue_cli.faces.detectors:YuNetDetector"),
    Spec(name="dlib", help="dlib's HOG detector with the 5-point shape predictor: frontal faces",
         factory="segue_cli.faces.detectors:DlibDetector"),
)
DETECTOR_CHOICES = ("auto", *DETECTORS)
