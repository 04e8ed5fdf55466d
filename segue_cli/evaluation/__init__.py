"""``segue evaluate``: train attackers on protected photos, measure what they learn.

Entry point: :func:`run_evaluation` with an :class:`EvaluateConfig` (or :func:`p112`).
"""

from .config import P112, EvaluateConfig, p112
from .countermeasures import Scenario, parse_scenario
from .runner import EvaluationResult, run_evaluation

__all__ = ["P112", "EvaluateConfig", "EvaluationResult", "Scenario", "p112", "parse_scenario", "run_evaluation"]
