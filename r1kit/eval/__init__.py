"""Evaluation with the paper's protocol: :class:`r1kit.eval.config.EvalConfig` and its one driver,
``r1kit.eval.run_eval`` (:func:`r1kit.eval.evaluate.run_eval`)."""
from r1kit.eval.config import EvalConfig

__all__ = ["EvalConfig", "run_eval"]


def __getattr__(name: str):
    if name == "run_eval":  # loaded on first use: importing the config alone stays free of torch
        from r1kit.eval.evaluate import run_eval
        return run_eval
    raise AttributeError(f"module 'r1kit.eval' has no attribute {name!r}")
