"""Not built yet: see the open issue for `segue cluster`."""

from __future__ import annotations

from ..errors import ConfigError


def cluster() -> None:
    raise ConfigError("segue cluster is not built yet", "see the project's issues")
