"""Typed configuration of supervised fine-tuning (``r1kit sft``). Every option is documented here, once."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from r1kit.config import AT_LEAST_1, NON_NEGATIVE, POSITIVE, PROBABILITY, Range
from r1kit.models.config import LoRAConfig, check_device


@dataclass
class SFTConfig:
    """Supervised fine-tuning of a causal LM on prompt/completion or chat rows.

    model: HF folder, hub id, ``tiny`` or ``tiny-small`` (the embedded bases).
    device: where the model, the optimiser state and the batches live: ``auto`` (CUDA when
        visible, else the CPU), ``cpu``, ``cuda`` or ``cuda:N`` (r1kit.models.device).
    dtype: compute dtype, ``float32`` or ``bfloat16`` (bf16: float32 weights and optimiser state,
        forward and backward under autocast; r1kit.models.precision).
    data: the rows: a JSONL/JSON/Parquet file, ``hf:NAME[:SPLIT]`` (``datasets.load_dataset``,
        split ``train`` by default) or a folder written by ``datasets``' ``save_to_disk`` (both need
        the optional ``datasets`` package). A row is ``{"prompt", "completion"}`` (loss on the
        completion; the prompt is used as is, already templated; an optional ``masked`` list of
        ``[start, end]`` character spans of the completion, a tool transcript's observations as
        ``r1kit sample`` writes them, takes no loss) or ``{"messages": [{"role",
        "content"}, ...]}`` (loss on the assistant turns; rendered with the tokenizer's chat
        template, or ``User:``/``Assistant:`` lines without one).
    limit: use only the first N rows (null: all).
    add_eos: end each completion with the EOS token, so the model learns to stop (chat rows get
        whatever their template writes).
    max_length: the longest training sequence in tokens; longer examples are cut to it (counted as
        ``truncated`` in ``summary.json``; an example left with no completion token is dropped).
        With packing, also the length of a packed row.
    batching: ``pack`` concatenates examples into rows of up to ``max_length`` tokens with
        position ids restarting at each example, so no token attends across examples (transformers'
        packed-sequence masks); ``bucket`` sorts examples by length into padded micro-batches.
    batch_size: rows per micro-batch (forward/backward). grad_accum: micro-batches per optimiser
        step. The loss of a step is the mean over all its completion tokens.
    epochs: passes over the data. max_steps: optimiser steps; when > 0 it replaces ``epochs``
        (the data repeats, reshuffled each epoch).
    lr: peak learning rate. weight_decay: AdamW decoupled decay. warmup_steps: linear warm-up.
    schedule: after warm-up, ``constant``, ``linear`` (to ``min_lr_ratio`` * lr) or ``cosine`` (to
        ``min_lr_ratio`` * lr). min_lr_ratio: the decay's floor, as a fraction of lr.
        max_grad_norm: gradient clipping.
    seed: seeds the data order (a fresh shuffle per epoch) and the initial RNG state.
    out: run directory: ``metrics.jsonl`` (one line per step), ``checkpoint-STEP/`` (resumable),
        ``final/`` (the fine-tuned model, an HF folder with its tokenizer) and ``summary.json``.
    checkpoint_every: save ``checkpoint-STEP`` every N steps (and at the end); 0: only at the end.
    keep_checkpoints: how many of the newest checkpoints to keep.
    threads: torch CPU threads (0: auto, as many as other processes leave free, see r1kit.threads; N: fixed).
    lora: low-rank adapters instead of full fine-tuning (``LoRAConfig`` in r1kit/models/lora.py;
        ``lora.r: 16`` turns it on): checkpoints hold the adapters, ``final/`` the merged model.
    """

    model: str = "tiny"
    device: str = "auto"
    dtype: Literal["float32", "bfloat16"] = "float32"
    data: str = ""
    limit: int | None = None
    add_eos: bool = True
    max_length: int = 512
    batching: Literal["pack", "bucket"] = "pack"
    batch_size: int = 8
    grad_accum: int = 1
    epochs: int = 3
    max_steps: int = 0
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_steps: int = 10
    schedule: Literal["constant", "linear", "cosine"] = "cosine"
    min_lr_ratio: float = 0.1
    max_grad_norm: float = 1.0
    seed: int = 0
    out: str = "runs/sft"
    checkpoint_every: int = 100
    keep_checkpoints: int = 2
    threads: int = 0
    lora: LoRAConfig = field(default_factory=LoRAConfig)

    on_resume: ClassVar = ("checkpoint_every", "keep_checkpoints", "threads", "device")  # a resume may change
    ranges: ClassVar = {"limit": AT_LEAST_1, "max_length": Range(2), "batch_size": AT_LEAST_1,
                        "grad_accum": AT_LEAST_1, "epochs": AT_LEAST_1, "max_steps": NON_NEGATIVE, "lr": POSITIVE,
                        "weight_decay": NON_NEGATIVE, "warmup_steps": NON_NEGATIVE, "min_lr_ratio": PROBABILITY,
                        "max_grad_norm": POSITIVE, "checkpoint_every": NON_NEGATIVE, "keep_checkpoints": AT_LEAST_1,
                        "threads": NON_NEGATIVE}

    def check(self, prefix: str = "") -> None:
        check_device(self.device, f"{prefix}device")
