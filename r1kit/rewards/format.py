"""Format rewards: the thinking must sit between ``<think>`` and ``</think>``.

``format`` (:func:`format_strict`), for the R1-Zero template, gives 1.0 iff the completion is
exactly ``<think>T</think><answer>A</answer>``, with only whitespace before, between and after the
two blocks, each tag appearing exactly once (so no nested or repeated blocks), and a non-blank
answer ``A`` (the thinking ``T`` may be anything without tags, even empty). Otherwise 0.0.

``format_think`` (:func:`format_think`), for the R1 chat layout ``<think>reasoning</think>summary``,
gives 1.0 iff the completion holds exactly one ``</think>`` followed by a non-blank summary, and
either starts (after whitespace) with the only ``<think>``, or has no ``<think>`` at all: chat
templates of R1-style models often end the prompt with ``<think>``, so the completion starts inside
the thinking. Otherwise 0.0.
"""
from __future__ import annotations

import re

from r1kit.rewards import register

_TAGS = ("<think>", "</think>", "<answer>", "</answer>")
_R1_ZERO = re.compile(r"\s*<think>(.*?)</think>\s*<answer>(.*?)</answer>\s*", re.DOTALL)


@register("format")
def format_strict(completion: str, example: dict) -> float:
    """1.0 iff ``completion`` is ``<think>...</think> <answer>...</answer>`` and nothing else."""
    if any(completion.count(tag) != 1 for tag in _TAGS):
        return 0.0
    m = _R1_ZERO.fullmatch(completion)
    return 1.0 if m and m.group(2).strip() else 0.0


@register("format_think")
def format_think(completion: str, example: dict) -> float:
    """1.0 iff ``[<think>]reasoning</think>summary`` with one closing tag and a non-blank summary."""
    if completion.count("</think>") != 1:
        return 0.0
    n_open = completion.count("<think>")
    if n_open > 1 or (n_open == 1 and not completion.lstrip().startswith("<think>")):
        return 0.0
    summary = completion.split("</think>", 1)[1]
    return 1.0 if summary.strip() else 0.0
