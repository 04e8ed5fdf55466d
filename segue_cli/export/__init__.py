"""``segue export``: the generator as ONNX, checked against PyTorch by round trip. The
logic is in ``onnx_export``; the file's inputs, outputs and metadata are
``backends.onnx_backend``'s, which the ONNX backend reads."""

from __future__ import annotations

from .onnx_export import (FP32_TOLERANCE, PARITY_SIZES, ExportConfig, ExportResult, ParityError, check_parity,
                          export_model)

__all__ = ["FP32_TOLERANCE", "PARITY_SIZES", "ExportConfig", "ExportResult", "ParityError", "check_parity", "export_model"]
