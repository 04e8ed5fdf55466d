"""Printing helpers: human text on stderr (rich), stable JSON on stdout."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

stderr_console = Console(stderr=True)


def print_json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()
