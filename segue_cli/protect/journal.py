"""OUT's journal, ``.segue-protect.journal``: one JSON line per output as it is written
(its key and its size and sha256), so that the settings record knows every finished
output even when the run ends before the record is saved again (a full disk, a kill).
Rewriting the whole record after each photo would cost time that grows with the folder;
appending a line does not. Saving the record folds the journal in and empties it; reading
the record replays what the journal holds beyond it. Local OUT only (an object store has
no append)."""

from __future__ import annotations

import json
import os
from typing import Any

from ..storage import Location

JOURNAL_FILE = ".segue-protect.journal"


def append(out: Location, key: str, made: dict[str, Any]) -> None:
    """Note one finished output (raises OSError: a full disk stops the run)."""
    line = json.dumps({"key": key, "output": made}, sort_keys=True) + "\n"
    with open(out.join(JOURNAL_FILE).path, "a", encoding="utf-8") as journal:
        journal.write(line)


def replay(out: Location, outputs: dict[str, Any]) -> None:
    """Each journalled output into its record entry (a line cut short by a kill is ignored:
    that output is then not proven, and is redone)."""
    try:
        with open(out.join(JOURNAL_FILE).path, encoding="utf-8", errors="replace") as journal:
            lines = journal.read().splitlines()
    except FileNotFoundError:
        return
    for line in lines:
        try:
            noted = json.loads(line)
        except ValueError:
            continue
        if not isinstance(noted, dict) or not isinstance(noted.get("key"), str):
            continue
        entry = outputs.get(noted["key"])
        if isinstance(entry, dict) and isinstance(noted.get("output"), dict):
            entry["output"] = noted["output"]


def clear(out: Location) -> None:
    """After the record was saved with everything the journal held."""
    try:
        os.unlink(out.join(JOURNAL_FILE).path)
    except FileNotFoundError:
        pass
