"""Purpose: count the walk of `segue protect ./photos` from the CLI to the written PNG
(issue 35): the distinct segue_cli functions entered, the files they live in, and the
calls that climb from a package up to a module above it (``protect/x.py`` calling
``segue_cli/y.py``). One photo, the shipped model, the core install's path (ONNX Runtime).

  python research/protect_walk.py            # prints the three counts
  python research/protect_walk.py --list     # and every function, in call order
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PACKAGE = str(ROOT / "segue_cli")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--list", action="store_true")
    args = parser.parse_args()
    from typer.testing import CliRunner

    from segue_cli.cli.app import app

    folder = Path(tempfile.mkdtemp())
    photos = folder / "photos"
    photos.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (160, 160, 3), np.uint8)).save(photos / "a.png")
    runner = CliRunner()
    runner.invoke(app, ["protect", str(photos), "--quiet"])  # warm: imports and the model's first load
    stops: dict[tuple[str, str], None] = {}
    climbs: set[tuple[str, str]] = set()

    def tracer(frame: Any, event: str, arg: Any) -> None:
        if event != "call":
            return None
        file = frame.f_code.co_filename
        if not file.startswith(PACKAGE) or frame.f_code.co_name.startswith("<"):
            return None
        here = Path(file).relative_to(PACKAGE)
        stops.setdefault((here.as_posix(), frame.f_code.co_qualname), None)
        caller = frame.f_back
        if caller is not None and caller.f_code.co_filename.startswith(PACKAGE):
            there = Path(caller.f_code.co_filename).relative_to(PACKAGE)
            if len(there.parts) > len(here.parts):  # from a package down below up to this module
                climbs.add((there.as_posix(), here.as_posix()))
        return None

    sys.setprofile(tracer)
    threading.setprofile(tracer)  # the decode and encode threads too
    result = runner.invoke(app, ["protect", str(photos), "--out", str(folder / "out"), "--quiet"])
    sys.setprofile(None)
    threading.setprofile(None)
    assert result.exit_code == 0, result.output
    files = {file for file, _ in stops}
    print(f"{len(stops)} functions in {len(files)} files, {len(climbs)} climbs up (caller file -> callee file)")
    if args.list:
        for file, name in stops:
            print(f"  {file}: {name}")
        for caller, callee in sorted(climbs):
            print(f"  climb {caller} -> {callee}")


if __name__ == "__main__":
    main()
