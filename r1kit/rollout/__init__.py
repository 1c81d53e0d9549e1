"""Rollout: batched sampling with the log-probs of what was sampled.

* :mod:`r1kit.rollout.engine`: the torch engine (``sample``): prefill once, a preallocated KV cache,
  continuous batching, per-row seeds; :class:`SamplingParams` and :class:`Rollout`.
* :mod:`r1kit.rollout.cache`: the preallocated cache and the splice of new rows into it.
* :mod:`r1kit.rollout.draw`: top-p / top-k filtering and the inverse-CDF draw.
* :mod:`r1kit.rollout.lean`: the decode step without ``nn.Module`` dispatch (bit-identical logits).
* :mod:`r1kit.rollout.engines`: the engine interface (``torch``, ``vllm``, ``openai``) and
  :mod:`r1kit.rollout.config`, their options (free of torch, like this package's ``__init__``:
  the torch code loads on first use).

Usage::

    from r1kit.rollout import SamplingParams, sample
    rollouts = sample(model, tokenizer, ["2 + 3 = "], SamplingParams(n=4, max_new_tokens=16, seed=0))
"""
from r1kit import lazy_attributes

__all__ = ["Rollout", "SamplingParams", "sample"]
__getattr__ = lazy_attributes(__name__, {name: "engine" for name in __all__})
