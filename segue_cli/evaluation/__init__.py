"""``segue evaluate``: train attackers on protected photos, measure what they learn.

Entry point: :func:`run_evaluation` with an :class:`EvaluateConfig` (or :func:`p112`). The
names below load their module on first use, so that the CLI's ``--help`` (which reads the
counter-measure registry) imports no torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import P112, EvaluateConfig, p112
    from .countermeasures import Scenario, parse_scenario
    from .runner import EvaluationResult, run_evaluation

_EXPORTS = {"P112": "config", "EvaluateConfig": "config", "p112": "config", "Scenario": "countermeasures",
            "parse_scenario": "countermeasures", "EvaluationResult": "runner", "run_evaluation": "runner"}
__all__ = ["P112", "EvaluateConfig", "EvaluationResult", "Scenario", "p112", "parse_scenario", "run_evaluation"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
