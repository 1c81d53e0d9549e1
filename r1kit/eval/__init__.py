"""Evaluation with the paper's protocol: :class:`r1kit.eval.config.EvalConfig` and its one driver,
``r1kit.eval.run_eval`` (:func:`r1kit.eval.evaluate.run_eval`, loaded on first use)."""
from r1kit import lazy_attributes
from r1kit.eval.config import EvalConfig

__all__ = ["EvalConfig", "run_eval"]
__getattr__ = lazy_attributes(__name__, {"run_eval": "evaluate"})
