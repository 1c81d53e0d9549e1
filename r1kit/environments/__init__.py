"""Environments: what a model talks to during a multi-turn episode, one class per environment.

An :class:`Environment` gives the prompt of a problem and, each time the model closes a tool call
(its :attr:`~Environment.call_end` tag, a stop string of the rollout engine), turns the text of that
model turn into an :class:`Observation`: the text appended to the model's context (tokenised once,
trained on with mask 0) before generation continues. The episode's reward comes from the run's
rewards (``r1kit.rewards``) on the whole transcript.

Environments register by name (:func:`register_environment`) and are named by ``environment`` in a
GRPO config; ``environment_modules`` lists user modules to import first. Built-ins:

* ``calculator`` (:mod:`r1kit.environments.calculator`): ``<calc>1234 * 5678</calc>`` ->
  ``<output> 7006652 </output>``; exact integer/rational arithmetic by a small parser, no ``eval``;
* ``python`` (:mod:`r1kit.environments.python`): ``<python>print(2 ** 10)</python>`` -> the program's
  stdout and errors, run in r1kit's sandbox (``r1kit.sandbox``).

Usage (a user environment; docs/tools.md has the complete example)::

    from r1kit.environments import Environment, Observation, register_environment

    @register_environment("lookup")
    class Lookup(Environment):
        call_start, call_end = "<lookup>", "</lookup>"
        TABLE = {"pi": "3.14159"}

        def run(self, call: str, example: dict) -> Observation:
            value = self.TABLE.get(call.strip())
            return self.observe(value or f"no entry {call.strip()!r}", error=value is None)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar

from r1kit.config import ConfigError, import_modules
from r1kit.environments.config import ToolConfig
from r1kit.prompts import build_prompt


@dataclass
class Observation:
    """What the environment answers to one tool call: ``text`` (appended to the model's context as
    is) and whether the call failed (``error``: bad input, an exception, a timeout, too much output)."""

    text: str
    error: bool = False


def truncate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying how many were cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... [{len(text) - limit} more characters cut]"


class Environment:
    """The interface (see the module docstring). A subclass sets its tags and implements :meth:`run`;
    it may override :meth:`prompt` (the problem's prompt) and :meth:`step` (the whole turn).

    call_start/call_end: the tags around a tool call in the model's text; ``call_end`` ends a turn.
    output_start/output_end: the tags around an observation.
    """

    name: ClassVar[str] = ""
    call_start: ClassVar[str] = "<tool>"
    call_end: ClassVar[str] = "</tool>"
    output_start: ClassVar[str] = "<output>"
    output_end: ClassVar[str] = "</output>"

    def __init__(self, tools: ToolConfig | None = None):
        self.tools = tools or ToolConfig()

    @property
    def max_turns(self) -> int:
        return self.tools.max_turns

    def prompt(self, example: dict, template: str = "r1_zero", tokenizer=None) -> str:
        """The prompt of ``example`` (by default the run's template around ``example["problem"]``)."""
        return build_prompt(example["problem"], template, tokenizer)

    def parse(self, turn: str) -> str | None:
        """The call in ``turn``: the text between the last ``call_start`` and the final ``call_end``."""
        end = turn.rfind(self.call_end)
        start = turn.rfind(self.call_start, 0, end)
        return None if start < 0 or end < 0 else turn[start + len(self.call_start): end]

    def step(self, turn: str, example: dict) -> Observation | None:
        """The observation of the model turn ``turn`` (ending in ``call_end``), or None to end the
        episode. Never raises: a failing :meth:`run` becomes an error observation naming the exception."""
        call = self.parse(turn)
        if call is None:
            return self.observe(f"error: no {self.call_start} before {self.call_end}", error=True)
        try:
            return self.run(call, example)
        except Exception as exc:  # a tool must never crash the step
            return self.observe(f"error: {type(exc).__name__}: {exc}", error=True)

    def run(self, call: str, example: dict) -> Observation:
        """Run the tool on ``call`` (the text inside the call tags) for ``example``."""
        raise NotImplementedError

    def observe(self, text: str, error: bool = False) -> Observation:
        """``text`` cut to ``max_output_chars`` and wrapped in the output tags."""
        return Observation(f"{self.output_start}{truncate(text, self.tools.max_output_chars)}{self.output_end}", error)


ENVIRONMENTS: dict[str, type[Environment]] = {}


def register_environment(name: str) -> Callable[[type[Environment]], type[Environment]]:
    """Class decorator registering an :class:`Environment` subclass under ``name``."""
    def decorator(cls: type[Environment]) -> type[Environment]:
        old = ENVIRONMENTS.get(name)
        if old is not None and old is not cls:
            raise ValueError(f"environment {name!r} is already registered")
        cls.name = name
        ENVIRONMENTS[name] = cls
        return cls
    return decorator


def available_environments() -> list[str]:
    """The registered names, with ``none`` (no environment: single-turn episodes)."""
    return ["none", *sorted(ENVIRONMENTS)]


def check_environment(name: str, key: str = "environment") -> None:
    """ConfigError unless ``name`` is ``none`` or registered."""
    if name != "none" and name not in ENVIRONMENTS:
        raise ConfigError(f"{key}: unknown environment {name!r} (known: {', '.join(available_environments())}; "
                          "register your own in a module listed in environment_modules)")


EPISODE_ENGINES = ("torch", "vllm")  # the engines with token ids in and out (r1kit.rollout.engines)


def check_environment_options(environment: str, modules: list[str], engine: str = "torch", prefix: str = "") -> None:
    """A run's environment options, before torch loads: ``environment_modules`` import, the name is
    registered, and the engine can run episodes (token ids in and out, so that the observations'
    tokens can be masked). ConfigError naming the field otherwise."""
    import_modules(modules, f"{prefix}environment_modules")
    check_environment(environment, f"{prefix}environment")
    if environment != "none" and engine not in EPISODE_ENGINES:
        raise ConfigError(f"{prefix}environment: {environment}: tool episodes need token ids in and out, which "
                          f"the {engine} engine does not give (use {' or '.join(EPISODE_ENGINES)})")


def make_environment(name: str, tools: ToolConfig | None = None) -> Environment | None:
    """The environment registered as ``name`` (None for ``none``)."""
    check_environment(name)
    return None if name == "none" else ENVIRONMENTS[name](tools)


from r1kit.environments import calculator, python  # noqa: E402,F401  (built-ins register)


def prompt_for(environment: Environment | None, example: dict, template: str, tokenizer=None) -> str:
    """``example``'s prompt: the environment's, or the template's around its problem without one."""
    if environment is None:
        return build_prompt(example["problem"], template, tokenizer)
    return environment.prompt(example, template, tokenizer)
