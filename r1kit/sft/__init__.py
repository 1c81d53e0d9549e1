"""Supervised fine-tuning (``r1kit sft``): loss on completion/assistant tokens only.

:class:`SFTConfig` (every option, documented once), :class:`SFTTrainer` (packing or length
bucketing, gradient accumulation, warm-up + decay, checkpoints, ``--resume``) and
:mod:`r1kit.sft.data` (rows to masked examples, batching, the masked loss).
"""
from r1kit.sft.config import SFTConfig
from r1kit.sft.trainer import SFTTrainer


def run_sft(cfg: SFTConfig, resume: bool = False, overwrite: bool = False, progress: bool = True) -> dict:
    """Fine-tune as ``cfg`` says; returns the summary (the model is in ``cfg.out/final``)."""
    return SFTTrainer(cfg, resume=resume, overwrite=overwrite, progress=progress).train()


__all__ = ["SFTConfig", "SFTTrainer", "run_sft"]
