"""Where the time goes: FLOP counts of a decoder's work, achieved GFLOP/s, and a section timer.

FLOPs count the matrix products only (2 per multiply-add), the part that a CPU's matmul rate
(``benchmarks/matmul_rate.py``) bounds; norms, softmaxes and elementwise work are left out, so an
achieved rate is a lower bound on the machine's use. A gated-MLP decoder (Llama, Qwen2, Mistral,
SmolLM2) with hidden size d, MLP width f, L layers, q heads and kv heads of size h, vocabulary V:

    per token, forward:  2 * (L * (d*(q+2kv)*h + q*h*d + 3*d*f) + d*V)      (weights)
                       + 4 * L * q*h * context                               (scores and values)
    training (forward + backward) = 3 x forward.
"""
from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class Shape:
    """A gated-MLP decoder's sizes (see the module docstring)."""

    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int

    @classmethod
    def of(cls, config) -> "Shape":
        """From a transformers config (``model.config``)."""
        cfg = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
        heads = cfg.num_attention_heads
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
        return cls(cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers, heads,
                   getattr(cfg, "num_key_value_heads", None) or heads, head_dim, cfg.vocab_size)

    @property
    def matmul_weights(self) -> int:
        """Weights used in matrix products per token (the LM head included)."""
        d, h = self.hidden, self.head_dim
        attention = d * (self.heads + 2 * self.kv_heads) * h + self.heads * h * d
        return self.layers * (attention + 3 * d * self.intermediate) + d * self.vocab


def forward_flops(shape: Shape, tokens: int, mean_context: float) -> float:
    """Matmul FLOPs of a forward over ``tokens`` tokens that attend to ``mean_context`` positions
    on average: ``2 W tokens + 4 L q h tokens context``."""
    return 2.0 * shape.matmul_weights * tokens + 4.0 * shape.layers * shape.heads * shape.head_dim * tokens * mean_context


def sampling_flops(shape: Shape, prompt_tokens: int, completion_tokens: int, mean_prompt: float,
                   mean_completion: float) -> float:
    """Prefill of the prompts (each attends to half its prompt on average) plus decoding of the
    completions (each token attends to its prompt and half its completion on average)."""
    return (forward_flops(shape, prompt_tokens, mean_prompt / 2)
            + forward_flops(shape, completion_tokens, mean_prompt + mean_completion / 2))


def grpo_step_flops(shape: Shape, prompt_tokens: int, completion_tokens: int, mean_prompt: float,
                    mean_completion: float, passes: int = 1, extra_forwards: int = 0) -> float:
    """One GRPO step: sampling, then ``passes`` training passes (forward + backward, 3x a forward)
    over prompts and completions, plus ``extra_forwards`` no-grad forwards (reference model,
    old-policy log-probs when mu > 1). ``prompt_tokens`` counts each group's prompt once (the
    trainer runs a shared prompt once)."""
    context = mean_prompt + mean_completion / 2
    train = forward_flops(shape, prompt_tokens, mean_prompt / 2) + forward_flops(shape, completion_tokens, context)
    return (sampling_flops(shape, prompt_tokens, completion_tokens, mean_prompt, mean_completion)
            + (3 * passes + extra_forwards) * train)


class SectionTimer:
    """Wall seconds per named section of a step: ``with timer("sampling"): ...``; ``split()``
    returns and clears them (sections entered several times add up). On CUDA each section waits
    for the device at its edges, so queued kernels count where they were launched."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)

    @staticmethod
    def _sync() -> None:
        import torch

        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()

    @contextmanager
    def __call__(self, name: str):
        self._sync()
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self._sync()
            self.seconds[name] += time.perf_counter() - t0

    def split(self) -> dict[str, float]:
        out, self.seconds = dict(self.seconds), defaultdict(float)
        return out


# The GRPO step's split (sampling, rewards, log-probs, forward, backward, optimiser, weight sync):
# filled by the rollout source and the step, logged by the trainer as ``seconds/<section>``.
STEP_TIMER = SectionTimer()
