"""Rule-based rewards and their registry.

A reward is a plain function ``(completion: str, example: dict) -> float``; ``example`` is the
problem row (``answer``, optional ``language``, ...). A *batched* reward
(``@register(name, batched=True)``) takes the step's completions and examples at once and returns
one score each, so a model-based reward runs one forward pass per batch. Either kind may return
``None`` for "not applicable": the sample then gets no value for that reward (0 in its total,
left out of the reward's logged mean). A training config names rewards with weights, and
:func:`score_batch` computes each sample's weighted sum. Built-ins:

* ``accuracy_math`` (alias ``accuracy``): answer in ``<answer>`` or the last ``\\boxed{}``,
  equivalent to the reference (see :mod:`r1kit.rewards.math`).
* ``format``: the R1-Zero layout ``<think>...</think> <answer>...</answer>``;
  ``format_think``: the R1 chat layout ``<think>...</think> summary`` (:mod:`r1kit.rewards.format`).
* ``language_consistency``: share of chain-of-thought words in the target language
  (:mod:`r1kit.rewards.language`).

Preference reward models (any HF sequence-classification model, scoring the summary or the whole
response) register as batched rewards under a name of the config's choosing
(:mod:`r1kit.rewards.reward_model`).

Scoring never raises because of a reward: a reward that raises, takes longer than its time limit,
returns something that is not a number, a non-finite value or one outside ``±MAX_ABS_REWARD``
gives 0 for that reward, and the failure is counted in :class:`RewardStats` by
``(reward name, reason)`` so that a broken reward shows up in the logs instead of silently
training on zeros (or on an overflowing sum).

Usage::

    @register("short", batched=True)
    def short(completions: list[str], examples: list[dict]) -> list[float]:
        return [1.0 if len(c) < 200 else 0.0 for c in completions]

    scored = score_batch(["<answer>5</answer>"], [{"answer": "5"}], [{"accuracy": 1.0, "short": 0.1}])
    total, parts = scored[0]   # 1.1, {"accuracy": 1.0, "short": 1.0}
"""
from __future__ import annotations

import signal
import threading
from collections import Counter
from dataclasses import dataclass
from math import isfinite
from typing import Callable

from r1kit.rewards.time_limit import with_alarm

RewardFn = Callable[[str, dict], "float | None"]
BatchedRewardFn = Callable[[list[str], list[dict]], "list[float | None]"]
MAX_ABS_REWARD = 1e6  # a larger value is a bug in the reward, not a signal: it would swamp every other
DEFAULT_TIMEOUT_S = 60.0  # per call of a reward (a batched reward's call covers its whole batch)


@dataclass(frozen=True)
class Reward:
    """A registered reward: its function and whether it scores a batch per call.

    ``replaceable``: a later registration under the same name replaces it (reward models, which a
    run registers from its config) instead of being refused (built-in and user rule rewards).
    """

    fn: Callable
    batched: bool = False
    replaceable: bool = False

    def __call__(self, completion: str, example: dict) -> float | None:
        """The reward of one completion (a batch of one for a batched reward)."""
        return self.fn([completion], [example])[0] if self.batched else self.fn(completion, example)


REWARD_FUNCS: dict[str, Reward] = {}


def register(name: str, *aliases: str, batched: bool = False,
             replaceable: bool = False) -> Callable[[Callable], Callable]:
    """Decorator registering a reward function under ``name`` (and optional aliases); ``batched``:
    it takes ``(completions, examples)`` and returns one score (or ``None``) per completion."""
    def decorator(fn: Callable) -> Callable:
        entry = Reward(fn, batched, replaceable)
        for key in (name, *aliases):
            old = REWARD_FUNCS.get(key)
            if old is not None and old.fn is not fn and not (old.replaceable and replaceable):
                raise ValueError(f"reward {key!r} is already registered")
            REWARD_FUNCS[key] = entry
        return fn
    return decorator


def get_reward(name: str) -> Reward:
    """The reward registered as ``name``; ValueError listing the known names otherwise."""
    try:
        return REWARD_FUNCS[name]
    except KeyError:
        known = ", ".join(sorted(REWARD_FUNCS))
        raise ValueError(f"unknown reward {name!r}; known rewards: {known}") from None


def available_rewards() -> list[str]:
    """The names (and aliases) of every registered reward."""
    return sorted(REWARD_FUNCS)


class RewardStats:
    """Counts of reward calls (one per scored completion) and of failures by ``(reward name, reason)``."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.failures: Counter[tuple[str, str]] = Counter()

    def record_call(self, name: str, n: int = 1) -> None:
        """Count ``n`` completions scored by reward ``name``."""
        self.calls[name] += n

    def record_failure(self, name: str, reason: str, n: int = 1) -> None:
        """Count ``n`` failures of reward ``name`` for ``reason``."""
        self.failures[(name, reason)] += n

    def total(self, name: str | None = None) -> int:
        """Number of failed reward calls (of reward ``name`` only, if given)."""
        return sum(n for (reward, _), n in self.failures.items() if name is None or reward == name)

    def as_dict(self) -> dict:
        """JSON-friendly summary: calls per reward and ``"name: reason" -> count``."""
        return {
            "calls": dict(self.calls),
            "failures": {f"{name}: {reason}": n for (name, reason), n in self.failures.most_common()},
        }

    def __repr__(self) -> str:
        return f"RewardStats(calls={dict(self.calls)}, failures={dict(self.failures)})"


def _reason(exc: BaseException) -> str:
    """A short failure reason: exception type and (truncated) message."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {message[:160]}" if message else type(exc).__name__


def checked_value(value) -> float | None:
    """``value`` as a float (``None`` stays ``None``: not applicable); TypeError/ValueError when it
    is not a number, not finite or outside ``±MAX_ABS_REWARD``."""
    if value is None:
        return None
    value = float(value)
    if not isfinite(value):
        raise ValueError(f"non-finite reward {value}")
    if abs(value) > MAX_ABS_REWARD:
        raise ValueError(f"reward {value:g} out of range (|value| > {MAX_ABS_REWARD:g})")
    return value


def _checked(name: str, call: Callable[[], object], stats: RewardStats | None) -> float | None:
    """``checked_value(call())``; 0 with the failure counted if the call raises or the value is bad."""
    try:
        return checked_value(call())
    except Exception as exc:  # a reward must never crash training
        if stats is not None:
            stats.record_failure(name, _reason(exc))
        return 0.0


def call_limited(fn: Callable[[], object], timeout_s: float | None):
    """``fn()`` under a SIGALRM deadline of ``timeout_s`` seconds (TimeoutError past it).

    Signals reach only the main thread: elsewhere the call runs without this limit (Ray's reward
    pool then bounds the whole batch with ``distributed.reward_timeout``). ``None``/0: no limit.
    """
    if not timeout_s or threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        return fn()
    return with_alarm(fn, timeout_s)


def reward_values(name: str, completions: list[str], examples: list[dict], stats: RewardStats | None = None,
                  timeout_s: float | None = DEFAULT_TIMEOUT_S) -> list[float | None]:
    """Reward ``name``'s checked value for each completion; a failure scores 0 and is counted."""
    reward = get_reward(name)
    if stats is not None:
        stats.record_call(name, len(completions))
    if not reward.batched:
        return [_checked(name, lambda: call_limited(lambda: reward.fn(c, e), timeout_s), stats)
                for c, e in zip(completions, examples)]
    try:
        values = list(call_limited(lambda: reward.fn(completions, examples), timeout_s))
        if len(values) != len(completions):
            raise ValueError(f"returned {len(values)} scores for {len(completions)} completions")
    except Exception as exc:  # the whole batch scores 0, each completion counted
        if stats is not None:
            stats.record_failure(name, _reason(exc), len(completions))
        return [0.0] * len(completions)
    return [_checked(name, lambda: v, stats) for v in values]


def score_batch(completions: list[str], examples: list[dict], weights: list[dict[str, float]],
                stats: RewardStats | None = None,
                timeout_s: float | None = DEFAULT_TIMEOUT_S) -> list[tuple[float, dict[str, float]]]:
    """``(total, parts)`` per completion: ``total = Σ_name weights[i][name] · value_name(i)`` and
    ``parts`` each applicable reward's own (unweighted) value.

    ``weights``: one dict per completion (samples of different prompt kinds weigh different
    rewards). Each reward is called once per batch when batched, else once per completion, on the
    completions that weigh it. An unknown reward name raises ValueError (a configuration error).
    """
    parts: list[dict[str, float]] = [{} for _ in completions]
    for name in dict.fromkeys(n for w in weights for n in w):
        rows = [i for i, w in enumerate(weights) if name in w]
        values = reward_values(name, [completions[i] for i in rows], [examples[i] for i in rows], stats, timeout_s)
        for i, value in zip(rows, values):
            if value is not None:
                parts[i][name] = value
    return [(sum(w[name] * p.get(name, 0.0) for name in w), p) for w, p in zip(weights, parts)]


def score(completion: str, example: dict, weights: dict[str, float], stats: RewardStats | None = None,
          timeout_s: float | None = DEFAULT_TIMEOUT_S) -> tuple[float, dict[str, float]]:
    """:func:`score_batch` of one completion."""
    return score_batch([completion], [example], [weights], stats, timeout_s)[0]


# Import the built-in rewards so that they register (they import ``register`` from here).
# Note: this binds the submodules as ``r1kit.rewards.math`` etc.; the stdlib ``math`` is not used here.
from r1kit.rewards import format, language, math  # noqa: E402,F401,A004
from r1kit.rewards import code, countdown  # noqa: E402,F401
