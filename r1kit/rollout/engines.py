"""Rollout engines: what samples completions, one class per backend behind one interface.

A rollout source (``r1kit.grpo.sources``), an evaluation, a rejection-sampling teacher or a judge
holds a :class:`RolloutEngine` and never asks which one it is:

* :meth:`RolloutEngine.generate`: ``params.n`` completions per prompt, grouped prompt by prompt, each a
  :class:`r1kit.rollout.engine.Rollout` with its token ids and the per-token log-probs of the weights
  that sampled it (``log softmax(logits / T)`` over the full vocabulary);
* :meth:`RolloutEngine.update_weights`: after an optimiser step, make ``version``'s weights the ones
  that sample; :attr:`RolloutEngine.version` says which weights sample now;
* :meth:`RolloutEngine.close`: release processes and servers.

Engines register by name in :data:`ENGINES` (``rollout.engine`` in a GRPO config).

Usage::

    engine = ENGINES["torch"](model, tokenizer)
    rollouts = engine.generate(["Compute 2 + 3"], SamplingParams(n=4, max_new_tokens=32, seed=0))
"""
from __future__ import annotations

from typing import Callable

import torch

from r1kit.rollout.engine import Rollout, SamplingParams, sample


class RolloutEngine:
    """The interface (see the module docstring)."""

    version: int = 0  # the optimiser step whose weights sample now (0: the initial weights)

    def generate(self, prompts: list[str], params: SamplingParams, prompt_seeds: list[int] | None = None,
                 progress: Callable[[int], None] | None = None, environment=None,
                 examples: list[dict] | None = None) -> list[Rollout]:
        """``params.n`` completions of every prompt, prompt by prompt. ``prompt_seeds``: one seed per
        prompt (what a row samples then depends on its prompt's seed only). ``progress``: called with
        the number of rows that just finished. ``environment``: multi-turn episodes with this
        :class:`r1kit.environments.Environment`, ``examples`` the problem of each prompt."""
        raise NotImplementedError

    def update_weights(self, policy: torch.nn.Module, version: int) -> None:
        """Sample with ``policy``'s weights from now on, recorded as ``version``."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the engine holds."""


class TorchEngine(RolloutEngine):
    """In this process: r1kit's torch decode loop (:func:`r1kit.rollout.engine.sample`: prefill once,
    a preallocated KV cache, continuous batching) over ``model``. With the trainer, ``model`` is the
    policy's sampling copy, refreshed in place after every optimiser step, so an update only records
    the version.

    batch_size: rows in flight at most (0: every prompt's rows at once).
    """

    def __init__(self, model: torch.nn.Module, tokenizer, batch_size: int = 0):
        self.model, self.tokenizer, self.batch_size = model, tokenizer, batch_size

    def generate(self, prompts, params, prompt_seeds=None, progress=None, environment=None,
                 examples=None) -> list[Rollout]:
        return sample(self.model, self.tokenizer, prompts, params, batch_size=self.batch_size,
                      prompt_seeds=prompt_seeds, progress=progress, environment=environment, examples=examples)

    def update_weights(self, policy: torch.nn.Module, version: int) -> None:
        self.version = version


ENGINES: dict[str, type[RolloutEngine]] = {"torch": TorchEngine}
