"""Label unlabelled photos by identity: embed each face (dlib), K-means, write a labels CSV.

Writes path,label,distance,face,faces (paths relative to the CSV's folder) for
`segue train --labels` and `segue protect --labels`. face=centre marks photos where no
face was detected (a centred crop was embedded). Unreadable images are listed and left
out, and the command exits 1. When DIR holds one sub-folder per person, clustering
accuracy against the folder names is reported too.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from ..errors import ConfigError
from .options import JsonOption, SeedOption
from .render import ProgressRenderer, print_json, progress, stderr_console

if TYPE_CHECKING:
    from ..cluster import ClusterResult


def _parse_k(value: str) -> int | None:
    if value.strip().lower() == "auto":
        return None
    try:
        return int(value)
    except ValueError as exc:
        raise ConfigError(f"--k must be a number of identities or 'auto', got {value!r}") from exc


def _render(result: ClusterResult) -> None:
    how = f"estimated: {result.auto['method']}" if result.k_source == "auto" else "given"
    stderr_console.print(f"{len(result.images)} images -> {result.k} clusters (K {how}) in {result.seconds:.1f} s")
    stderr_console.print(f"cluster sizes: {result.sizes}")
    if result.no_face:
        stderr_console.print(
            f"no face detected in {len(result.no_face)} image(s): embedded a centred crop (face=centre in the CSV)"
        )
    if result.accuracy is not None:
        stderr_console.print(f"clustering accuracy vs folder names (Hungarian matching): {result.accuracy:.1%}")
    for problem in result.problems:
        stderr_console.print(f"[red]left out:[/] {escape(problem)}", highlight=False, soft_wrap=True)
    stderr_console.print(f"wrote {result.out}")


def cluster(
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="Folder of photos (searched recursively).")],
    out: Annotated[Path, typer.Option("--out", help="Labels CSV to write; an existing file is kept unless --overwrite.")],
    k: Annotated[str, typer.Option("--k", metavar="K|auto", help="Number of identities, or 'auto' to estimate it (clusters of faces closer than dlib's 0.6).")] = "auto",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace --out if it exists.")] = False,
    jitter: Annotated[int, typer.Option("--jitter", help="Average each embedding over N jittered copies (steadier, N times slower).")] = 0,
    n_init: Annotated[int, typer.Option("--n-init", help="K-means restarts; the best is kept.")] = 10,
    auto_min_share: Annotated[float, typer.Option("--auto-min-share", help="With --k auto, a person counts if they hold at least this share of the photos.")] = 0.05,
    seed: SeedOption = 0,
    json_output: JsonOption = False,
) -> None:
    from ..extras import require

    require("cluster")
    from ..cluster import ClusterConfig, cluster as run_clustering

    config = ClusterConfig(
        source=directory, out=out, k=_parse_k(k), seed=seed, overwrite=overwrite, n_init=n_init, jitter=jitter,
        auto_min_share=auto_min_share,
    )
    with progress(transient=True) as bar:
        result = run_clustering(config, ProgressRenderer(bar))
    if json_output:
        print_json(result.to_dict())
    else:
        _render(result)
    if result.failed:
        raise typer.Exit(1)
