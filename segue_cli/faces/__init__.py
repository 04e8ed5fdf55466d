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

#: name -> class in ``faces.detectors``; ``auto`` opens the first that can run here.
DETECTORS = {"yunet": "YuNetDetector", "dlib": "DlibDetector"}
DETECTOR_CHOICES = ("auto", *DETECTORS)
