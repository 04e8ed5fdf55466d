"""Device choice shared by every command: ``auto`` takes CUDA when present."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import ConfigError

if TYPE_CHECKING:
    import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def check_device(name: str) -> None:
    """Refuse a device name no backend knows, before anything imports torch: the core
    install has none, and ``--device gpu`` deserves the list, not a ModuleNotFoundError."""
    if name not in DEVICE_CHOICES and not (name.startswith("cuda:") and name[5:].isdigit()):
        hint = "cuda means the GPU: " if name.lower() in ("gpu", "nvidia") else ""
        raise ConfigError(f"unknown device {name!r}", f"{hint}use one of {', '.join(DEVICE_CHOICES)} (or cuda:N)")


def resolve_device(name: str = "auto") -> torch.device:
    check_device(name)
    import torch  # here, not at import: protect on ONNX Runtime never needs it

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but no CUDA device is available", "use --device cpu or auto")
    return torch.device(name)
