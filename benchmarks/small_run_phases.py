"""Where the CPU of one small `segue protect` run goes, phase by phase (issue 43).

Runs ``segue protect DIR --out OUT`` in this process, as the ``segue`` command does, and
prints the CPU time (user + system, every thread: ``time.process_time``) spent in each
phase: importing the CLI, importing the pipeline (numpy, OpenCV, Pillow and segue's
modules), parsing the options and planning, opening the model (ONNX Runtime's import and
session, the model files' sha256), running the photos (decode, generator, encode, write),
and the summary. Run it with bytecode cached (a second run), as an installed segue starts:

    PYTHONPYCACHEPREFIX=/tmp/pyc python benchmarks/small_run_phases.py DIR
"""

from __future__ import annotations

import time
from typing import Any

STAMPS: list[tuple[str, float]] = [("interpreter start", time.process_time())]


def stamp(name: str) -> None:
    STAMPS.append((name, time.process_time()))


def timed_run(job: Any, finish: Any) -> None:
    """The engine's run, stamped: the registry's entry is pointed here (``__main__:timed_run``)."""
    from segue_cli.engines import ENGINES

    stamp("the rest of planning")
    ENGINES[job.config.engine].load()(job, finish)
    stamp("the photos")


def main() -> None:
    import sys
    import tempfile
    from dataclasses import replace
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import segue_cli.cli.app as cli

    stamp("CLI import")
    from segue_cli.protect import folder as planner

    stamp("pipeline import")
    open_backend, engines = planner.open_backend, planner.ENGINES

    def timed_open(*args: Any, **kwargs: Any) -> Any:
        stamp("options and planning")
        opened = open_backend(*args, **kwargs)
        stamp("opening the model")
        return opened

    timed = {name: replace(spec, factory=f"{__name__}:timed_run") for name, spec in engines.items()}
    planner.open_backend, planner.ENGINES = timed_open, timed
    with tempfile.TemporaryDirectory(prefix="segue-phases-") as out:
        sys.argv = ["segue", "protect", sys.argv[1], "--out", str(Path(out) / "out"), "--quiet"]
        try:
            cli.main()
        except SystemExit:
            pass
    stamp("summary and exit")
    previous = 0.0
    for name, at in STAMPS:
        print(f"{name:22s} {at - previous:6.3f} s CPU")
        previous = at
    print(f"{'total':22s} {previous:6.3f} s CPU (the first line: the interpreter's own start-up)")


if __name__ == "__main__":
    main()
