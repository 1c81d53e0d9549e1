"""The rule reward of the Countdown task (``reach 16 with 7 3 5``, :mod:`r1kit.data.countdown`).

``accuracy_countdown``: 1.0 when the completion's answer (:func:`r1kit.rewards.math.extract_answer`:
the last ``<answer>`` block) is an expression of integers, ``+ - *`` and parentheses that uses
each of the problem's numbers exactly once (as a multiset) and whose value is the target; else 0.0.
The expression is read by a small recursive-descent parser (:func:`parse_expression`), never
evaluated by Python. A prompt that is not a Countdown problem gets ``None`` (not applicable).
"""
from __future__ import annotations

import re
from collections import Counter

from r1kit.data.countdown import parse_problem
from r1kit.rewards import register
from r1kit.rewards.math import extract_answer

_TOKEN = re.compile(r"\s*(\d{1,4}|[-+*()])")
MAX_TOKENS = 64


def _tokens(text: str) -> list[str] | None:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            return None
        out.append(m.group(1))
        pos = m.end()
    return out if 0 < len(out) <= MAX_TOKENS else None


def parse_expression(text: str) -> tuple[int, list[int]] | None:
    """``(value, numbers used)`` of an expression over ``+ - *`` and parentheses (usual precedence,
    left to right), or None when it does not parse.

    Grammar: ``expr := term (('+'|'-') term)*``, ``term := atom ('*' atom)*``,
    ``atom := integer | '(' expr ')'``.
    """
    toks = _tokens(text)
    if toks is None:
        return None
    pos = 0
    numbers: list[int] = []

    def peek():
        return toks[pos] if pos < len(toks) else None

    def atom():
        nonlocal pos
        t = peek()
        if t is None:
            raise ValueError
        pos += 1
        if t == "(":
            v = expr()
            if peek() != ")":
                raise ValueError
            pos += 1
            return v
        if not t.isdigit():
            raise ValueError
        numbers.append(int(t))
        return int(t)

    def term():
        nonlocal pos
        v = atom()
        while peek() == "*":
            pos += 1
            v *= atom()
        return v

    def expr():
        nonlocal pos
        v = term()
        while peek() in ("+", "-"):
            op = toks[pos]
            pos += 1
            w = term()
            v = v + w if op == "+" else v - w
        return v

    try:
        value = expr()
    except ValueError:
        return None
    return (value, numbers) if pos == len(toks) else None


def solves(expression: str, numbers, target: int) -> bool:
    """The rule: the expression parses, uses each of ``numbers`` once, and equals ``target``."""
    parsed = parse_expression(expression)
    return parsed is not None and parsed[0] == target and Counter(parsed[1]) == Counter(numbers)


@register("accuracy_countdown")
def accuracy_countdown(completion: str, example: dict) -> float | None:
    """1.0 when the answer is an expression of the problem's numbers, each once, worth the target."""
    try:
        numbers, target = parse_problem(example["problem"])
    except (KeyError, ValueError):
        return None
    answer = extract_answer(completion)
    return 1.0 if answer is not None and solves(answer, numbers, target) else 0.0
