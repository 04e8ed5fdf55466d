"""Names and limits that `--help` shows, in a module that imports nothing heavy.

`segue --help` and every `segue COMMAND --help` need these strings but none of torch,
torchvision, OpenCV or ONNX Runtime (several seconds and ~850 MiB to import), so the
modules that use them import them from here and the CLI loads those modules only when
a command runs.
"""

from __future__ import annotations

from typing import Literal

FaceMode = Literal["auto", "on", "off"]
FACE_MODES: tuple[FaceMode, ...] = ("auto", "on", "off")
ATTACKER_PIPELINES = ("none", "detect-align")
# Order is the order `segue evaluate --help` lists them; segue_cli.nn.attackers builds each.
ATTACKER_NAMES = (
    "resnet18", "resnet50", "mobilenet_v2", "efficientnet_b0", "densenet121", "inception_v3", "vit_tiny", "swin_t",
)
# Pretrained face-recognition attackers (segue_cli.evaluation.embedding_attack): they train
# nothing, they embed enrolled (train) and probe (test) faces with a network trained
# elsewhere and match. Named with --arch beside the from-scratch architectures.
# embedding-sface is the judge no cloak is made against; the others are the cloak's surrogates
# (segue_cli.faces.networks), so a row of theirs measures a white-box network.
EMBEDDING_ATTACKER_NAMES = ("embedding-dlib", "embedding-sface", "embedding-faceplugin", "embedding-mobilefacenet")
EMBEDDING_METHODS = ("ncm", "1nn", "linear")  # nearest class mean, nearest neighbour, logistic regression

DEFAULT_MAX_PIXELS = 100_000_000  # a 10000 x 10000 photo; raise with --max-pixels
# segue serve's: lower, as a server decodes what strangers send (a 100 MP PNG of a few hundred
# kB costs about 10 s and 1.5 GB); 40 MP takes any phone's photo and most cameras'.
SERVE_MAX_PIXELS = 40_000_000

# --strength: the share of the model's epsilon the generator's perturbation may use, and the
# cloak's steps (--cloak). high is the model's full bound (8/255 for the shipped model);
# medium and low keep photos closer to the original and protect less (figures: the card).
STRENGTHS: dict[str, tuple[float, int]] = {"low": (0.5, 5), "medium": (0.75, 10), "high": (1.0, 10)}
DEFAULT_STRENGTH = "high"

MIN_OPSET = 18  # the torch.export-based exporter emits opset 18 and later only
MAX_OPSET = 23  # highest opset checked here (onnxruntime 1.32); 18 runs on onnxruntime >= 1.14
# Max |delta_onnx - delta_torch| allowed by the parity check. fp16: the graph computes in
# half precision; half of one 8-bit step (0.5/255 ~ 0.002) keeps protected pixels within
# 1/255 of the fp32 result.
FP32_TOLERANCE = 1e-4
FP16_TOLERANCE = 2e-3

# What a model file may declare. A checkpoint or ONNX file outside these is refused at load
# (a re-signed file with epsilon 1.0 would move pixels by up to 255 levels, far past the
# small budget segue promises); training refuses to make one.
MAX_EPSILON = 16 / 255
IMAGE_SIZE_RANGE = (16, 1024)
CODE_BITS_RANGE = (1, 32)

