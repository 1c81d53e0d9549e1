"""The ``openai`` engine: completions from any OpenAI-compatible endpoint, through the official
``openai`` client (a hosted API, a vLLM or SGLang server, a teacher too large to load here).

One request per prompt (``n`` samples each), ``endpoint.concurrency`` in flight; the client retries
a refused or reset connection, a timeout, HTTP 429 and 5xx with exponential backoff
(``endpoint.max_retries``), then the call fails with :class:`EngineError` naming the endpoint and
its answer. The API key is read from the environment variable ``endpoint.api_key_env``, never from
a recipe, and never written anywhere.

Text in, text out: a completion's token ids are its text tokenised here (for lengths and SFT
rows), and it carries no log-probs, so this engine samples for rejection sampling, distillation
and evaluation but never for training (:class:`r1kit.rollout.vllm.VLLMEngine` does that).

Usage::

    engine = OpenAIEngine(EndpointConfig(url="http://localhost:8000/v1", model="Qwen/Qwen2.5-7B-Instruct"), tokenizer)
    rollouts = engine.generate(prompts, SamplingParams(n=4, temperature=0.6, max_new_tokens=1024, seed=0))
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from r1kit.errors import EngineError
from r1kit.rollout.config import EndpointConfig
from r1kit.rollout.engine import Rollout, SamplingParams
from r1kit.rollout.engines import EngineSetup, RolloutEngine

FINISH_REASONS = {"length": "length"}  # the API's "stop" covers EOS and stop strings alike: "eos"


class OpenAIEngine(RolloutEngine):
    """Samples from an OpenAI-compatible endpoint (see the module docstring)."""

    def __init__(self, endpoint: EndpointConfig, tokenizer, url: str | None = None, model: str | None = None):
        import openai  # the endpoint extra (pip install 'r1kit[endpoint]'): only when an endpoint samples

        self.endpoint, self.tokenizer = endpoint, tokenizer
        self.url = (url or endpoint.url).rstrip("/")
        key = os.environ.get(endpoint.api_key_env, "") if endpoint.api_key_env else ""
        self.client = openai.OpenAI(base_url=self.url, api_key=key or "EMPTY", timeout=endpoint.timeout,
                                    max_retries=endpoint.max_retries)
        self.errors = (openai.APIError,)
        self.model = model or endpoint.model or self._only_model()

    @classmethod
    def build(cls, setup: EngineSetup) -> "OpenAIEngine":
        return cls(setup.endpoint, setup.tokenizer)

    def _only_model(self) -> str:
        names = [m.id for m in self._call(self.client.models.list)]
        if len(names) != 1:
            raise EngineError(f"endpoint.model: {self.url} serves {len(names)} models ({', '.join(names[:8])}); "
                              "name one")
        return names[0]

    def _call(self, fn, *args, **kwargs):
        """``fn(*args, **kwargs)``, with the client's errors (after its retries) as one EngineError."""
        try:
            return fn(*args, **kwargs)
        except self.errors as exc:
            raise EngineError(self.describe_failure(exc)) from None

    def describe_failure(self, exc: Exception) -> str:
        """The one-line message of a request that failed for good."""
        return f"endpoint {self.url}: {type(exc).__name__}: {str(exc)[:300]}"

    def generate(self, prompts: list[str], params: SamplingParams, prompt_seeds: list[int] | None = None,
                 progress: Callable[[int], None] | None = None, environment=None,
                 examples: list[dict] | None = None) -> list[Rollout]:
        seeds = prompt_seeds or [None if params.seed is None else params.seed + i for i in range(len(prompts))]

        def one(i: int) -> list[Rollout]:
            rollouts = self.complete(i, prompts[i], params, seeds[i]) if environment is None else \
                self.episodes(i, prompts[i], params, seeds[i], environment, examples[i])
            if progress is not None:
                progress(len(rollouts))
            return rollouts

        with ThreadPoolExecutor(self.endpoint.concurrency) as pool:
            return [r for part in pool.map(one, range(len(prompts))) for r in part]

    def episodes(self, index: int, prompt: str, params: SamplingParams, seed: int | None, environment,
                 example: dict) -> list[Rollout]:
        """The ``params.n`` multi-turn episodes of prompt ``index`` with ``environment``."""
        # (the options refuse it before any model loads: a text endpoint gives no token ids to mask)
        raise EngineError(f"endpoint {self.url}: tool episodes need token ids in and out: "
                          "use the torch or vllm engine")

    def request(self, prompt, params: SamplingParams, seed: int | None) -> dict:
        """The request's arguments (the API's names; ``extra_body`` for what only some servers
        take). Greedy decoding asks for one completion (servers refuse n > 1 without sampling)."""
        args = {"model": self.model, "n": params.n if params.temperature > 0 else 1,
                "temperature": params.temperature, "top_p": params.top_p, "max_tokens": params.max_new_tokens,
                "seed": seed, "stop": params.stop or None}
        if params.top_k:
            args["extra_body"] = {"top_k": params.top_k}
        if self.endpoint.api == "chat":
            return {**args, "messages": [{"role": "user", "content": prompt}]}
        return {**args, "prompt": prompt}

    def complete(self, index: int, prompt, params: SamplingParams, seed: int | None) -> list[Rollout]:
        """The ``params.n`` completions of prompt ``index`` (greedy: one, repeated)."""
        chat = self.endpoint.api == "chat"
        create = self.client.chat.completions.create if chat else self.client.completions.create
        args = self.request(prompt, params, seed)
        choices = sorted(self._call(create, **args).choices, key=lambda c: c.index)
        if len(choices) != args["n"]:
            raise EngineError(f"endpoint {self.url}: asked for n={args['n']} completions, got {len(choices)}")
        return [self.rollout(index, choice) for choice in choices * (params.n // args["n"])]

    def rollout(self, index: int, choice) -> Rollout:
        """One API choice as a :class:`Rollout` (text in, text out: ids re-tokenised, no log-probs)."""
        text = (choice.message.content or "") if self.endpoint.api == "chat" else choice.text
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return Rollout(index, ids, [0.0] * len(ids), text, FINISH_REASONS.get(choice.finish_reason, "eos"))

    def update_weights(self, policy, version: int) -> None:
        raise EngineError(f"endpoint {self.url}: an OpenAI-compatible endpoint cannot take new weights "
                          "(train with rollout.engine torch or vllm)")
