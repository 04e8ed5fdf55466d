"""Options shared by several subcommands, each declared once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

DeviceOption = Annotated[
    str, typer.Option("--device", help="Where to run: auto (CUDA when present, else CPU), cpu or cuda.")
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print stable machine-readable JSON Lines on stdout (one JSON object a "
                       "line) instead of human text; an error is one object too: {\"type\": \"error\", \"error\", "
                       "\"hint\", \"exit_code\"}.")
]
SeedOption = Annotated[int, typer.Option("--seed", help="Random seed; the same seed on the same machine repeats a run.")]
ModelOption = Annotated[
    Optional[str],
    typer.Option(
        "--model",
        help="Generator to use: a .safetensors checkpoint, an exported .onnx file, or the name of a model in "
        "models/. Default: the shipped default model.",
    ),
]
OutDirOption = Annotated[Path, typer.Option("--out", help="Run folder to create; never overwritten.")]
