"""Distillation (``r1kit distill``): teacher traces (``r1kit sample``) -> student SFT (``r1kit sft``)
-> evaluation (``r1kit eval``), as in the paper's distilled models (SFT only, no RL)."""
from r1kit.distill.config import DistillConfig, DistillEvalConfig
from r1kit.distill.pipeline import run_distill

__all__ = ["DistillConfig", "DistillEvalConfig", "run_distill"]
