"""Which engine samples, and how to reach a server (``r1kit.rollout.engines``). Free of torch, so a
command checks these options before any model code loads.

An engine is named by ``engine`` beside an :class:`EndpointConfig` (``rollout.engine`` and
``rollout.endpoint`` in a GRPO run; ``engine`` and ``endpoint`` in ``r1kit sample`` and
``r1kit eval``):

* ``torch``: r1kit's own decode loop in this process (the default; no endpoint options);
* ``vllm``: a vLLM server, started and stopped by r1kit (``endpoint.python``: the interpreter of
  the environment vLLM is installed in) or one already running at ``endpoint.url``; token ids in and
  out, per-token log-probs, weights pushed after every optimiser step;
* ``openai``: any OpenAI-compatible endpoint at ``endpoint.url`` (a hosted API, vLLM, SGLang...):
  text in and out; it samples, it does not train.

Usage (a recipe)::

    rollout:
      engine: vllm
      endpoint: {python: /opt/vllm-venv/bin/python, server_args: [--max-model-len, "4096"]}
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from r1kit.config import AT_LEAST_1, NON_NEGATIVE, POSITIVE, ConfigError

ENGINE_NAMES = ("torch", "vllm", "openai")
Engine = Literal["torch", "vllm", "openai"]


@dataclass
class EndpointConfig:
    """A server that samples: one r1kit starts (vLLM) or one at a URL (vLLM or any OpenAI-compatible API).

    url: base URL of a running server, e.g. ``http://10.0.0.5:8000/v1`` (``openai``: required;
        ``vllm``: empty starts a server on 127.0.0.1).
    model: the model name the server serves (``openai``: required unless the server lists exactly
        one; ``vllm``: r1kit's own server serves the run's model under this name, default ``r1kit``).
    api_key_env: the name of the environment variable that holds the API key (the key itself never
        goes in a recipe, a config.json or a log); an unset variable sends no key.
    api: ``completions`` (the prompt as r1kit renders it, text in and out) or ``chat`` (the problem
        as one user message, the server's chat template applies; ``openai`` only).
    python: the interpreter that starts the vLLM server (an environment with vLLM installed:
        ``python -m vllm.entrypoints.openai.api_server`` must run there).
    server_args: extra arguments for the vLLM server, e.g. ``[--max-model-len, "4096"]``.
    startup_timeout: seconds a started vLLM server may take to answer ``/health``.
    timeout: seconds one request may take before it is retried.
    max_retries: retries of a request that failed (connection refused or reset, timeout, HTTP 429 or
        5xx), with exponential backoff; then the step (or chunk) fails with the server's error. A
        server that stops answering is an error after about timeout x (max_retries + 1) seconds.
    concurrency: requests in flight at once (one request per prompt, ``n`` samples each).
    """

    url: str = ""
    model: str = ""
    api_key_env: str = "OPENAI_API_KEY"
    api: Literal["completions", "chat"] = "completions"
    python: str = "python3"
    server_args: list[str] = field(default_factory=list)
    startup_timeout: float = 600.0
    timeout: float = 600.0
    max_retries: int = 2
    concurrency: int = 16

    ranges: ClassVar = {"startup_timeout": POSITIVE, "timeout": POSITIVE, "max_retries": NON_NEGATIVE,
                        "concurrency": AT_LEAST_1}
    on_resume: ClassVar = ("url", "api_key_env", "python", "startup_timeout", "timeout", "max_retries",
                           "concurrency")


def check_engine(engine: str, endpoint: EndpointConfig, prefix: str = "", trains: bool = False) -> None:
    """Cross-field rules of an engine and its endpoint. ``trains``: the engine samples a policy that
    changes every step (only ``torch`` and ``vllm`` take new weights)."""
    if engine == "openai" and not endpoint.url:
        raise ConfigError(f"{prefix}endpoint.url: the openai engine needs the endpoint's URL "
                          "(e.g. http://localhost:8000/v1)")
    if engine == "openai" and trains:
        raise ConfigError(f"{prefix}engine: openai endpoints cannot take the policy's new weights; "
                          "train with engine torch or vllm")
    if engine != "openai" and endpoint.api == "chat":
        raise ConfigError(f"{prefix}endpoint.api: chat is for the openai engine (vllm and torch take token ids)")
    if endpoint.url and not endpoint.url.startswith(("http://", "https://")):
        raise ConfigError(f"{prefix}endpoint.url: {endpoint.url!r} is not an http(s) URL")
