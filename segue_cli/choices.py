"""Names and limits that `--help` shows, in a module that imports nothing heavy.

`segue --help` and every `segue COMMAND --help` need these strings but none of torch,
torchvision, OpenCV or ONNX Runtime (several seconds and ~850 MiB to import), so the
modules that use them import them from here and the CLI loads those modules only when
a command runs.
"""

from __future__ import annotations

DETECTOR_CHOICES = ("auto", "yunet", "dlib")
ATTACKER_PIPELINES = ("none", "detect-align")
# Order is the order `segue evaluate --help` lists them; segue_cli.nn.attackers builds each.
ATTACKER_NAMES = (
    "resnet18", "resnet50", "mobilenet_v2", "efficientnet_b0", "densenet121", "inception_v3", "vit_tiny", "swin_t",
)
COUNTERMEASURE_HELP = (
    "none, jpeg-Q (quality 1-100), gray, blur (kernel 5, sigma 1) or blur-S (sigma S), down-P (downscale to P% "
    "then back), cutout, mixup, cutmix, at-R or at-R-S (PGD adversarial training, budget R/255, S steps, "
    "default 5); join several with '+', e.g. jpeg-10+gray"
)

DEFAULT_MAX_PIXELS = 100_000_000  # a 10000 x 10000 photo; raise with --max-pixels

MIN_OPSET = 18  # the torch.export-based exporter emits opset 18 and later only
MAX_OPSET = 23  # highest opset checked here (onnxruntime 1.32); 18 runs on onnxruntime >= 1.14
# Max |delta_onnx - delta_torch| allowed by the parity check. fp16: the graph computes in
# half precision; half of one 8-bit step (0.5/255 ~ 0.002) keeps protected pixels within
# 1/255 of the fp32 result.
FP32_TOLERANCE = 1e-4
FP16_TOLERANCE = 2e-3
