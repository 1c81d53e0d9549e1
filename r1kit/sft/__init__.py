"""Supervised fine-tuning (``r1kit sft``): loss on completion/assistant tokens only.

:class:`SFTConfig` (every option, documented once), :class:`SFTTrainer` (packing or length
bucketing, gradient accumulation, warm-up + decay, checkpoints, ``--resume``) and
:mod:`r1kit.sft.data` (rows to masked examples, batching, the masked loss).
"""
from r1kit import lazy_attributes
from r1kit.sft.config import SFTConfig

__all__ = ["SFTConfig", "SFTTrainer", "run_sft"]
__getattr__ = lazy_attributes(__name__, {"SFTTrainer": "trainer", "run_sft": "trainer"})
