"""Typed configuration of distillation (``r1kit distill``). Every option is documented here, once."""
from __future__ import annotations

from dataclasses import dataclass, field


from r1kit.eval.config import EvalConfig

from r1kit.sampling.config import SampleConfig
from r1kit.sft.config import SFTConfig


@dataclass
class DistillEvalConfig(EvalConfig):
    """The student's evaluation: :class:`r1kit.eval.config.EvalConfig`'s options (its unset
    template is ``sample.template``), and:

    base: also evaluate the student before distillation (``OUT/eval-base``), for comparison.
    """

    base: bool = False


@dataclass
class DistillConfig:
    """Distillation: the teacher writes reasoning traces (rejection sampling), the student is
    fine-tuned on them (SFT only, no RL), then evaluated. Traces pass between the two as text, so
    the student may be smaller and use another tokenizer.

    teacher: the model that samples (HF folder, hub id, alias), e.g. an R1-Zero checkpoint.
    student: the model fine-tuned (HF folder, hub id, ``tiny-small``, ``tiny``).
    data: the teacher's prompts (``sample.data`` semantics: ``synthetic`` = r1kit's training problems).
    out: run directory: ``sample/`` (``r1kit sample`` output), ``sft/`` (``r1kit sft`` run; the student
        in ``sft/final``), ``eval/`` (and ``eval-base/``), ``summary.json`` (stage wall times, stats,
        results).
    sample: options of the sampling stage (``r1kit sample``'s, documented in
        ``r1kit/sampling/config.py``); its ``model``, ``data`` and ``out`` are set from teacher,
        data and out.
    sft: options of the fine-tuning stage (``r1kit sft``'s, in ``r1kit/sft/config.py``); its
        ``model``, ``data`` and ``out`` are set from student, the sampled rows and out.
    eval: the student's evaluation (its prompt template is ``sample.template``).
    """

    teacher: str = "tiny"
    student: str = "tiny-small"
    data: str = "synthetic"
    out: str = "runs/distill"
    sample: SampleConfig = field(default_factory=SampleConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    eval: DistillEvalConfig = field(default_factory=DistillEvalConfig)
