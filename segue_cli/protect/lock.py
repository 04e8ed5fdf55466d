"""One run at a time per output folder: an OS lock on ``OUT/.segue-lock``."""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..errors import OutputError, disk_full, is_disk_full

LOCK_FILE = ".segue-lock"


@contextmanager
def locked_out_dir(out_dir: Path, wait: bool = False) -> Iterator[None]:
    """Hold OUT for one run (an OS lock on OUT/.segue-lock, released when the process
    ends, however it ends; the file is removed after a run). A second run into the same
    OUT is refused, naming the first run's pid, or waits for it with ``wait``: two runs
    would both write every file and, with different identities, leave a silent mix."""
    path = out_dir / LOCK_FILE
    while True:
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            handle = open(path, "a+", encoding="utf-8")
        except OSError as exc:
            if is_disk_full(exc):
                raise disk_full(out_dir, exc) from exc
            raise OutputError(f"cannot write to the output folder {out_dir}: {exc.strerror or exc} ({path})",
                              "check its permissions (a read-only folder cannot hold protected photos), "
                              "or pass another --out") from exc
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise OutputError(f"{out_dir} is being written by another segue protect (pid {holder})",
                              "let it finish, pass --wait to wait for it, or pass another --out") from None
        try:
            same_file = os.fstat(handle.fileno()).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same_file = False
        if same_file:
            break
        handle.close()  # the run before removed the file while we waited: lock the new one
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
    finally:
        path.unlink(missing_ok=True)  # while still held, so no one locks a file about to vanish
        handle.close()
