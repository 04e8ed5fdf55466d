"""Not built yet: see the open issue for `segue protect`."""

from __future__ import annotations

from ..errors import ConfigError


def protect() -> None:
    raise ConfigError("segue protect is not built yet", "see the project's issues")
