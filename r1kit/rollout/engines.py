"""Rollout engines: what samples completions, one class per backend behind one interface.

A rollout source (``r1kit.grpo.sources``), an evaluation, a rejection-sampling teacher or a judge
holds a :class:`RolloutEngine` and never asks which one it is:

* :meth:`RolloutEngine.generate`: ``params.n`` completions per prompt, grouped prompt by prompt, each a
  :class:`r1kit.rollout.engine.Rollout` with its token ids and the per-token log-probs of the weights
  that sampled it (``log softmax(logits / T)`` over the full vocabulary);
* :meth:`RolloutEngine.update_weights`: after an optimiser step, make ``version``'s weights the ones
  that sample; :attr:`RolloutEngine.version` says which weights sample now;
* :meth:`RolloutEngine.close`: release processes and servers.

Engines are named in :data:`ENGINES` (``rollout.engine`` in a GRPO config, ``engine`` in
``r1kit sample`` and ``r1kit eval``; the options in :mod:`r1kit.rollout.config`) and built by
:func:`make_engine` from one :class:`EngineSetup`: ``torch`` (:class:`TorchEngine`, this process),
``vllm`` (:class:`r1kit.rollout.vllm.VLLMEngine`, a vLLM server) and ``openai``
(:class:`r1kit.rollout.endpoint.OpenAIEngine`, any OpenAI-compatible endpoint). Adding an engine
is one class with a ``build`` and one line in :data:`ENGINES`.

Usage::

    engine = make_engine("torch", EngineSetup(tokenizer, load_model=lambda: model))
    rollouts = engine.generate(["Compute 2 + 3"], SamplingParams(n=4, max_new_tokens=32, seed=0))
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from r1kit.rollout.config import EndpointConfig

from r1kit.rollout.engine import Rollout, SamplingParams, sample


@dataclass
class EngineSetup:
    """What building an engine may need; each engine takes its part.

    tokenizer: the model's (prompts are tokenised here; the ``openai`` engine counts tokens with it).
    load_model: returns the torch model that samples (``torch``), or whose weights are pushed
    (``vllm`` in training: the trainer's sampling copy); called only by an engine that needs it.
    model_path: the HF folder a vLLM server starts from. dtype: the server's. endpoint: the server
    options. log_path: where a started server logs. batch_size: rows in flight (``torch``; 0: all).
    """

    tokenizer: object
    load_model: Callable[[], torch.nn.Module] | None = None
    model_path: str = ""
    dtype: str = "float32"
    endpoint: EndpointConfig = field(default_factory=EndpointConfig)
    log_path: Path = Path("vllm-server.log")
    batch_size: int = 0
    trains: bool = False  # the weights change every step (vllm: push the sampling copy's)


class RolloutEngine:
    """The interface (see the module docstring)."""

    version: int = 0  # the optimiser step whose weights sample now (0: the initial weights)

    @classmethod
    def build(cls, setup: EngineSetup) -> "RolloutEngine":
        """The engine ``setup`` describes."""
        raise NotImplementedError

    def generate(self, prompts: list[str], params: SamplingParams, prompt_seeds: list[int] | None = None,
                 progress: Callable[[int], None] | None = None) -> list[Rollout]:
        """``params.n`` completions of every prompt, prompt by prompt. ``prompt_seeds``: one seed per
        prompt (what a row samples then depends on its prompt's seed only). ``progress``: called with
        the number of rows that just finished."""
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

    @classmethod
    def build(cls, setup: EngineSetup) -> "TorchEngine":
        return cls(setup.load_model(), setup.tokenizer, setup.batch_size)

    def generate(self, prompts, params, prompt_seeds=None, progress=None) -> list[Rollout]:
        return sample(self.model, self.tokenizer, prompts, params, batch_size=self.batch_size,
                      prompt_seeds=prompt_seeds, progress=progress)

    def update_weights(self, policy: torch.nn.Module, version: int) -> None:
        self.version = version


# name -> "module:class" (the server engines import their client libraries only when chosen)
ENGINES: dict[str, str] = {"torch": "r1kit.rollout.engines:TorchEngine", "vllm": "r1kit.rollout.vllm:VLLMEngine",
                           "openai": "r1kit.rollout.endpoint:OpenAIEngine"}


def engine_class(name: str) -> type[RolloutEngine]:
    module, cls = ENGINES[name].split(":")
    return getattr(importlib.import_module(module), cls)


def make_engine(name: str, setup: EngineSetup) -> RolloutEngine:
    """The engine called ``name`` (a key of :data:`ENGINES`), built from ``setup``."""
    return engine_class(name).build(setup)


def as_engine(model_or_engine, tokenizer, batch_size: int = 0) -> RolloutEngine:
    """An engine as is, or a torch model wrapped in a :class:`TorchEngine` (what the evaluation
    driver and the samplers accept)."""
    if isinstance(model_or_engine, RolloutEngine):
        return model_or_engine
    return TorchEngine(model_or_engine, tokenizer, batch_size)
