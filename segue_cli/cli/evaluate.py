"""Not built yet: see the open issue for `segue evaluate`."""

from __future__ import annotations

from ..errors import ConfigError


def evaluate() -> None:
    raise ConfigError("segue evaluate is not built yet", "see the project's issues")
