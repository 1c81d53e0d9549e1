"""The ``calculator`` environment: exact integer and rational arithmetic, parsed, never ``eval``-ed.

The model writes ``<calc>1234 * (56 - 7) / 3</calc>`` and reads ``<output> 60466/3 </output>``
(integers print as integers, other rationals as ``p/q``; the spaces make the value's tokens those
of the same value in ``<answer> 60466/3 </answer>`` with byte-level BPE tokenizers that split digits). Grammar (usual precedence, ``^``/``**``
right-associative and binding tighter than a unary minus on its left)::

    expr  := term (("+" | "-") term)*
    term  := unary (("*" | "×" | "/" | "÷") unary)*
    unary := ("-" | "+") unary | power
    power := atom (("^" | "**") unary)?
    atom  := NUMBER | "(" expr ")"          NUMBER: 12, 12.5, .5 (decimals are exact)

Every failure (a syntax error, division by zero, an exponent that is not a small integer, a
result too large) is an error observation; nothing the model writes can make it slow: inputs are
capped at :data:`MAX_CHARS` characters, exponents at :data:`MAX_EXPONENT` and results at
:data:`MAX_DIGITS` digits.
"""
from __future__ import annotations

import re
from fractions import Fraction

from r1kit.environments import Environment, Observation, register_environment

MAX_CHARS = 200
MAX_EXPONENT = 64
MAX_DIGITS = 200
_TOKEN = re.compile(r"\s*(?:(\d+(?:\.\d*)?|\.\d+)|(\*\*|[-+*/×÷^()]))")


class CalcError(ValueError):
    """A calculation that cannot be done; its message is what the model reads."""


def tokenize(text: str) -> list[str]:
    """Numbers and operators of ``text``; CalcError at the first character that is neither."""
    out, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise CalcError(f"unexpected {text[pos:].strip()[:10]!r}")
        out.append(m.group(1) or m.group(2))
        pos = m.end()
    return out


def _check_size(value: Fraction) -> Fraction:
    if max(len(str(abs(value.numerator))), len(str(value.denominator))) > MAX_DIGITS:
        raise CalcError(f"result longer than {MAX_DIGITS} digits")
    return value


class _Parser:
    """Recursive descent over :func:`tokenize`'s tokens (one method per grammar rule)."""

    def __init__(self, tokens: list[str]):
        self.tokens, self.pos = tokens, 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        if token is None:
            raise CalcError("unexpected end of expression")
        self.pos += 1
        return token

    def expr(self) -> Fraction:
        value = self.term()
        while self.peek() in ("+", "-"):
            op, rhs = self.take(), self.term()
            value = _check_size(value + rhs if op == "+" else value - rhs)
        return value

    def term(self) -> Fraction:
        value = self.unary()
        while self.peek() in ("*", "×", "/", "÷"):
            op, rhs = self.take(), self.unary()
            if op in ("/", "÷") and rhs == 0:
                raise CalcError("division by zero")
            value = _check_size(value * rhs if op in ("*", "×") else value / rhs)
        return value

    def unary(self) -> Fraction:
        if self.peek() in ("-", "+"):
            sign = self.take()
            value = self.unary()
            return -value if sign == "-" else value
        return self.power()

    def power(self) -> Fraction:
        base = self.atom()
        if self.peek() not in ("^", "**"):
            return base
        self.take()
        exponent = self.unary()
        if exponent.denominator != 1 or abs(exponent) > MAX_EXPONENT:
            raise CalcError(f"exponent must be an integer of at most {MAX_EXPONENT} in size")
        if base == 0 and exponent < 0:
            raise CalcError("division by zero")
        return _check_size(base ** int(exponent))

    def atom(self) -> Fraction:
        token = self.take()
        if token == "(":
            value = self.expr()
            if self.take() != ")":
                raise CalcError("missing )")
            return value
        if token[0].isdigit() or token[0] == ".":
            return Fraction(token)
        raise CalcError(f"unexpected {token!r}")


def calculate(text: str) -> Fraction:
    """The exact value of the arithmetic expression ``text`` (CalcError if it has none)."""
    if len(text) > MAX_CHARS:
        raise CalcError(f"expression longer than {MAX_CHARS} characters")
    parser = _Parser(tokenize(text))
    value = parser.expr()
    if parser.peek() is not None:
        raise CalcError(f"unexpected {parser.peek()!r}")
    return value


def show(value: Fraction) -> str:
    """An integer as ``123``, any other rational as ``p/q`` in lowest terms."""
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


@register_environment("calculator")
class Calculator(Environment):
    """``<calc>EXPRESSION</calc>`` -> ``<output> VALUE </output>`` (see the module docstring)."""

    call_start, call_end = "<calc>", "</calc>"
    output_start, output_end = "<output> ", " </output>"

    def run(self, call: str, example: dict) -> Observation:
        try:
            return self.observe(show(calculate(call)))
        except CalcError as exc:
            return self.observe(f"error: {exc}", error=True)
