"""Export a generator checkpoint to ONNX, for `segue protect --backend onnx` or any ONNX Runtime.

MODEL is a .safetensors checkpoint or the name of a model in models/ (default: the
shipped default model). The graph takes `images` float32 [batch, 3, height, width] in
[0, 1] and `code_signs` float32 [batch, code_bits] (+1/-1) and returns `delta`, the
perturbation already scaled by epsilon, for any batch, height and width. Epsilon, code
bits, working size, format version and the source checkpoint's sha256 are stored in the
file's metadata. After export the file is run with ONNX Runtime and compared with
PyTorch on odd and non-square sizes; if the perturbations differ by more than 1e-4
(2e-3 with --fp16) nothing is written and the command exits 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..choices import DEFAULT_OPSET, FP16_TOLERANCE, FP32_TOLERANCE, MAX_OPSET, MIN_OPSET
from .options import JsonOption
from .render import print_json, stderr_console


def export(
    out: Annotated[Path, typer.Option("--out", help="ONNX file to write (must end in .onnx). Never overwritten unless --overwrite.")],
    model: Annotated[Optional[str], typer.Argument(metavar="MODEL", help="Checkpoint (.safetensors) or name of a model in models/. Default: the shipped default model.", show_default=False)] = None,
    fp16: Annotated[bool, typer.Option("--fp16", help=f"Compute in half precision inside the graph (inputs and outputs stay float32); parity tolerance {FP16_TOLERANCE:g} instead of {FP32_TOLERANCE:g}.")] = False,
    opset: Annotated[int, typer.Option("--opset", help=f"ONNX opset to export with ({MIN_OPSET} to {MAX_OPSET}); 18 runs on the most onnxruntime versions.")] = DEFAULT_OPSET,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace --out if it already exists.")] = False,
    json_output: JsonOption = False,
) -> None:
    from ..extras import require

    require("export")

    def say(stage: str) -> None:
        # A plain line per stage, on a terminal or in a log: the run takes tens of seconds
        # (torch's import, the export, then the parity check) and must not look hung.
        if not json_output:
            stderr_console.print(f"export: {stage}", highlight=False, markup=False)

    say("loading torch")
    from ..export import ExportConfig, export_model

    config = ExportConfig(out=out, model=model, fp16=fp16, opset=opset, overwrite=overwrite)
    result = export_model(config, on_stage=say)
    if json_output:
        print_json(result.to_dict())
        return
    meta = result.metadata
    worst = max(result.parity, key=lambda check: check.max_abs_diff)
    sizes = ", ".join(f"{c.height}x{c.width}" for c in result.parity)
    stderr_console.print(
        f"exported {result.source} -> {result.out} ({result.file_bytes / 1024:.0f} KiB, opset {result.opset}, "
        f"{meta.precision}, epsilon {meta.epsilon:.5f}, working size {meta.image_size}, {meta.code_bits}-bit codes)",
        highlight=False, markup=False,
    )
    stderr_console.print(
        f"parity with PyTorch at {sizes}: max |delta difference| {worst.max_abs_diff:.1e} "
        f"(tolerance {result.tolerance:.0e}) in {result.seconds:.1f} s",
        highlight=False, markup=False,
    )
