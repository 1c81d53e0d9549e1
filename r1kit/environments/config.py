"""Options of tool-using episodes (torch-free: checked before torch loads)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from r1kit.config import AT_LEAST_1, NON_NEGATIVE, POSITIVE


@dataclass
class ToolConfig:
    """How an episode with an environment runs (``environment`` names the environment).

    max_turns: model turns per episode at most; every tool call ends a turn, so a response makes
        at most ``max_turns - 1`` calls (a call in the last turn ends the episode unanswered).
        The episode's total token budget (the model's tokens and the observations' together) is
        ``rollout.max_new_tokens``.
    max_output_chars: characters of a tool's output shown to the model; longer output is cut and
        the observation says how much was cut.
    timeout: seconds one tool call may take (the ``python`` tool's wall-clock limit).
    overlap_steps: on the torch engine, decode steps a row idles while its call runs in the
        background and the rest of the batch decodes on; its observation is taken after exactly
        these steps (the batch waits only for a call still running then), so episodes never depend
        on a call's duration and runs resume exactly. 0: the call overlaps one step only (the
        row's own last token); raise it for slow tools (``python``). Each call may add this many
        cache columns to the batch.
    """

    max_turns: int = 3
    max_output_chars: int = 256
    timeout: float = 5.0
    overlap_steps: int = 4

    ranges: ClassVar = {"max_turns": AT_LEAST_1, "max_output_chars": AT_LEAST_1, "timeout": POSITIVE,
                        "overlap_steps": NON_NEGATIVE}
