"""Rule-based rewards and their registry.

A reward is a plain function ``(completion: str, example: dict) -> float``; ``example`` is the
problem row (``answer``, optional ``language``, ...). Rewards register under a name with
:func:`register`; a training config names them with weights, and :func:`score` computes the
weighted sum. Built-ins:

* ``accuracy_math`` (alias ``accuracy``): answer in ``<answer>`` or the last ``\\boxed{}``,
  equivalent to the reference (see :mod:`r1kit.rewards.math`).
* ``format``: the R1-Zero layout ``<think>...</think> <answer>...</answer>``;
  ``format_think``: the R1 chat layout ``<think>...</think> summary`` (:mod:`r1kit.rewards.format`).
* ``language_consistency``: share of chain-of-thought words in the target language
  (:mod:`r1kit.rewards.language`).

Preference reward models (any HF sequence-classification model, scoring the summary or the whole
response) register under a name of the config's choosing (:mod:`r1kit.rewards.reward_model`).

:func:`score` never raises because of a reward: a reward that raises (or returns a non-finite
value) gives 0 for that reward, and the failure is counted in :class:`RewardStats` by
``(reward name, reason)`` so that a broken reward shows up in the logs instead of silently
training on zeros.
"""
from __future__ import annotations

from collections import Counter
from math import isfinite
from typing import Callable

RewardFn = Callable[[str, dict], float]
REWARD_FUNCS: dict[str, RewardFn] = {}


def register(name: str, *aliases: str) -> Callable[[RewardFn], RewardFn]:
    """Decorator registering a reward function under ``name`` (and optional aliases)."""
    def decorator(fn: RewardFn) -> RewardFn:
        for key in (name, *aliases):
            if key in REWARD_FUNCS and REWARD_FUNCS[key] is not fn:
                raise ValueError(f"reward {key!r} is already registered")
            REWARD_FUNCS[key] = fn
        return fn
    return decorator


def get_reward(name: str) -> RewardFn:
    """The reward function registered as ``name``; ValueError listing the known names otherwise."""
    try:
        return REWARD_FUNCS[name]
    except KeyError:
        known = ", ".join(sorted(REWARD_FUNCS))
        raise ValueError(f"unknown reward {name!r}; known rewards: {known}") from None


def available_rewards() -> list[str]:
    """The names (and aliases) of every registered reward."""
    return sorted(REWARD_FUNCS)


class RewardStats:
    """Counts of reward calls and of failed calls by ``(reward name, reason)``."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.failures: Counter[tuple[str, str]] = Counter()

    def record_call(self, name: str) -> None:
        """Count one call of reward ``name``."""
        self.calls[name] += 1

    def record_failure(self, name: str, reason: str) -> None:
        """Count one failure of reward ``name`` for ``reason``."""
        self.failures[(name, reason)] += 1

    def total(self, name: str | None = None) -> int:
        """Number of failed reward calls (of reward ``name`` only, if given)."""
        return sum(n for (reward, _), n in self.failures.items() if name is None or reward == name)

    @property
    def n_failures(self) -> int:
        """Total number of failed reward calls (same as ``total()``)."""
        return self.total()

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


def score(completion: str, example: dict, weights: dict[str, float],
          stats: RewardStats | None = None) -> tuple[float, dict[str, float]]:
    """Weighted sum of the named rewards, and each reward's own (unweighted) value.

    An unknown reward name raises ValueError (a configuration error); a reward that raises or
    returns a non-finite value counts as 0 and is recorded in ``stats``.
    """
    funcs = {name: get_reward(name) for name in weights}
    values: dict[str, float] = {}
    for name, fn in funcs.items():
        if stats is not None:
            stats.record_call(name)
        try:
            value = float(fn(completion, example))
            if not isfinite(value):
                raise ValueError(f"non-finite reward {value}")
        except Exception as exc:  # a reward must never crash training
            if stats is not None:
                stats.record_failure(name, _reason(exc))
            value = 0.0
        values[name] = value
    total = sum(weights[name] * values[name] for name in weights)
    return total, values


# Import the built-in rewards so that they register (they import ``register`` from here).
# Note: this binds the submodules as ``r1kit.rewards.math`` etc.; the stdlib ``math`` is not used here.
from r1kit.rewards import format, language, math  # noqa: E402,F401,A004
from r1kit.rewards import code  # noqa: E402,F401
