"""Not built yet: see the open issue for `segue export`."""

from __future__ import annotations

from ..errors import ConfigError


def export() -> None:
    raise ConfigError("segue export is not built yet", "see the project's issues")
