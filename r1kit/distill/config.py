"""Typed configuration of distillation (``r1kit distill``). Every option is documented here, once."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from r1kit.config import AT_LEAST_1, NON_NEGATIVE, Range

from r1kit.sampling.config import SampleConfig
from r1kit.sft.config import SFTConfig


@dataclass
class DistillEvalConfig:
    """Evaluation of the student with the paper's protocol (as ``r1kit eval``).

    data: benchmark name, ``synthetic`` (the held-out set) or a file. data_dir: where benchmark
        names are resolved. limit: first N problems (null: all; ``synthetic``: 200).
    k: samples per problem. temperature/top_p: the paper's 0.6 / 0.95. max_new_tokens: cap.
    batch_size: problems per sampling call. seed: sampling seed.
    base: also evaluate the student before distillation (``OUT/eval-base``), for comparison.
    """

    data: str = "synthetic"
    data_dir: str | None = None
    limit: int | None = 200
    k: int = 8
    temperature: float = 0.6
    top_p: float = 0.95
    max_new_tokens: int = 128
    batch_size: int = 32
    seed: int = 0
    base: bool = False

    ranges: ClassVar = {"limit": AT_LEAST_1, "k": AT_LEAST_1, "temperature": NON_NEGATIVE,
                        "top_p": Range(0, 1, open_low=True), "max_new_tokens": AT_LEAST_1, "batch_size": AT_LEAST_1}


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
