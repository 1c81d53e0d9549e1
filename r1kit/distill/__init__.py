"""Distillation (``r1kit distill``): teacher traces (``r1kit sample``) -> student SFT (``r1kit sft``)
-> evaluation (``r1kit eval``), as in the paper's distilled models (SFT only, no RL)."""
from r1kit import lazy_attributes
from r1kit.distill.config import DistillConfig, DistillEvalConfig

__all__ = ["DistillConfig", "DistillEvalConfig", "run_distill"]
__getattr__ = lazy_attributes(__name__, {"run_distill": "pipeline"})
