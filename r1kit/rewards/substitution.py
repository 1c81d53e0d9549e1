"""The rule reward of the substitution task (``find x: 7 * x + 3 = 59``, :mod:`r1kit.data.substitution`).

``accuracy_substitution``: 1.0 when the completion's answer (:func:`r1kit.rewards.math.extract_answer`:
the last ``<answer>`` block) is an integer ``x`` that satisfies the problem's equation,
``a * x + b == c``, read from the problem text; else 0.0. The answer is parsed as an integer
literal (optional sign, digits, surrounding spaces), never evaluated. A prompt that is not a
substitution problem gets ``None`` (not applicable).
"""
from __future__ import annotations

import re

from r1kit.data.substitution import parse_problem, satisfies
from r1kit.rewards import register
from r1kit.rewards.math import extract_answer

_INTEGER = re.compile(r"[+-]?\d{1,6}")


def answer_integer(completion: str) -> int | None:
    """The completion's answer as an integer, or None when it is not an integer literal."""
    answer = extract_answer(completion)
    if answer is None or not _INTEGER.fullmatch(answer.strip()):
        return None
    return int(answer.strip())


@register("accuracy_substitution")
def accuracy_substitution(completion: str, example: dict) -> float | None:
    """1.0 when the answer ``x`` satisfies ``a * x + b = c`` (the problem's equation), else 0.0."""
    try:
        a, b, c = parse_problem(example["problem"])
    except (KeyError, ValueError):
        return None
    x = answer_integer(completion)
    return 1.0 if x is not None and satisfies(a, b, c, x) else 0.0
