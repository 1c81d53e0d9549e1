"""Solve by substitution: a search task where checking a candidate is a forward computation.

A problem is ``find x: 7 * x + 3 = 59`` (``a * x + b = c`` with ``a`` in 2..9, ``x`` in
1..:data:`MAX_X`, ``b`` in 1..9). Nothing in the corpus divides, so there is no one-shot
algorithm for ``x`` to imitate; what the corpus does teach reliably is the forward direction
(``7 * 6 = 42, 42 + 3 = 45``) and the comparison with the target the prompt gives
(``45 < 59, too small``). A search trace (issue 26) guesses, evaluates, compares, adjusts::

    <think> try x = 6: 7 * 6 = 42, 42 + 3 = 45. compare 45 with 59: 45 < 59, too small, so x > 6.
    wait, try x = 8: 7 * 8 = 56, 56 + 3 = 59. compare 59 with 59: 59 = 59, yes, so x = 8. </think>
    <answer> 8 </answer>

The comparison names both numbers before its relation (``compare 45 with 59:``),
so the verdict is read off two adjacent numbers rather than decided before the target is written;
the verdict restates the bound it gives (``so x > 6``) or the solution (``so x = 8``), which the
next candidate and the answer copy. (A first design wrote ``wait, 45 < 59`` and ``59 = 59, yes``:
its base decided equality before writing the target and wrote ``60 = 60, yes`` for a target of 65,
docs/phenomena.md.)

The pre-training corpus (:func:`corpus_documents`) has three kinds of documents:

* template documents (the R1-Zero template): mostly ``direct`` guesses (a thought and a uniformly
  drawn ``x``: right 1 time in :data:`MAX_X`), rarely (``template_search_rate``) a search trace;
* short documents (``User: find x: ... . Assistant:``): half direct, half search;
* drills: forward evaluations of every ``a * x + b`` (``User: evaluate 7 * x + 3 at x = 6.
  Assistant: 7 * 6 = 42, 42 + 3 = 45.``) and comparisons of two numbers
  (``User: 45 vs 59? Assistant: 45 < 59, too small.``), over the whole range. The drill's prompt
  is not the trace's ``compare 45 with``: after that phrase a trace always copies the target, and a
  drill with the same words, followed by any number, taught the second design's base to write a
  random one (13.7% of its targets copied, docs/phenomena.md).

A search trace narrows the range after each rejected candidate (a uniform draw between the
bounds it knows: non-optimal jumps) and always ends on the ``yes``; it has 1 to
:data:`MAX_ATTEMPTS` tries. The held-out set (:func:`test_set`) never shares an equation with the
training problems (:func:`train_set`).
"""
from __future__ import annotations

import random
import re

MIN_A, MAX_A, MAX_X, MAX_B = 2, 9, 12, 9
MAX_ATTEMPTS = 6
TEST_SEED, TEST_SIZE = 26026, 200
DIRECT_THOUGHTS = ("I know this one.", "The answer is quick to see.", "This is easy.", "Let me answer directly.")
_PROBLEM = re.compile(r"find x: (\d+) \* x \+ (\d+) = (\d+)")


def all_equations() -> list[tuple[int, int, int]]:
    """Every ``(a, b, c)`` of the task, in a fixed order (``c = a * x + b``)."""
    return [(a, b, a * x + b) for a in range(MIN_A, MAX_A + 1) for x in range(1, MAX_X + 1)
            for b in range(1, MAX_B + 1)]


def problem_text(a: int, b: int, c: int) -> str:
    return f"find x: {a} * x + {b} = {c}"


def parse_problem(problem: str) -> tuple[int, int, int]:
    """``(a, b, c)`` of ``find x: a * x + b = c``; ValueError for any other text."""
    m = _PROBLEM.fullmatch(problem.strip())
    if not m:
        raise ValueError(f"not a substitution problem: {problem!r}")
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def satisfies(a: int, b: int, c: int, x: int) -> bool:
    """The rule of the reward: ``x`` solves ``a * x + b = c``."""
    return a * x + b == c


def evaluation(a: int, b: int, x: int) -> str:
    """The forward evaluation of ``a * x + b`` at ``x``: ``7 * 6 = 42, 42 + 3 = 45``."""
    return f"{a} * {x} = {a * x}, {a * x} + {b} = {a * x + b}"


def comparison(value: int, target: int) -> str:
    """The comparison of a candidate's value with the target: ``45 < 59, too small`` /
    ``63 > 59, too big`` / ``59 = 59, yes``."""
    if value < target:
        return f"{value} < {target}, too small"
    if value > target:
        return f"{value} > {target}, too big"
    return f"{value} = {target}, yes"


def search_attempts(x: int, rng: random.Random) -> list[int]:
    """The candidates of one search for ``x``: a uniform draw between the known bounds, narrowed
    after each rejection, until ``x``; redrawn until it takes at most :data:`MAX_ATTEMPTS` tries."""
    while True:
        lo, hi, tries = 1, MAX_X, []
        while True:
            g = rng.randint(lo, hi)
            tries.append(g)
            if g == x:
                break
            lo, hi = (g + 1, hi) if g < x else (lo, g - 1)
        if len(tries) <= MAX_ATTEMPTS:
            return tries


def verdict(value: int, target: int, x: int) -> str:
    """What a comparison says about ``x``: ``so x > 6`` / ``so x < 9`` / ``so x = 8``."""
    return f"so x {'>' if value < target else '<' if value > target else '='} {x}"


def search_text(a: int, b: int, c: int, tries: list[int]) -> str:
    """The chain of thought of a search over ``tries`` (the last one solves the equation)."""
    parts = []
    for g in tries:
        v = a * g + b
        parts.append(f"try x = {g}: {evaluation(a, b, g)}. compare {v} with {c}: {comparison(v, c)}, "
                     f"{verdict(v, c, g)}.")
    return " wait, ".join(parts)


def completion(thought: str, answer: int) -> str:
    return f" <think> {thought} </think> <answer> {answer} </answer>"


def solution(a: int, b: int, c: int, style: str, rng: random.Random) -> str:
    """A completion in ``style``: ``direct`` (a uniform guess of ``x``) or ``search``."""
    if style == "direct":
        return completion(rng.choice(DIRECT_THOUGHTS), rng.randint(1, MAX_X))
    x = (c - b) // a
    return completion(search_text(a, b, c, search_attempts(x, rng)), x)


def _example(a: int, b: int, c: int, prefix: str, i: int) -> dict:
    return {"id": f"{prefix}-{i:04d}", "problem": problem_text(a, b, c), "answer": str((c - b) // a),
            "task": "substitution"}


def _split() -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
    eqs = all_equations()
    random.Random(TEST_SEED).shuffle(eqs)
    return eqs[TEST_SIZE:], eqs[:TEST_SIZE]


def test_set(n: int = TEST_SIZE) -> list[dict]:
    """The held-out problems: the first ``n`` (≤ :data:`TEST_SIZE`) of a fixed-seed draw."""
    if not 0 < n <= TEST_SIZE:
        raise ValueError(f"substitution test set has {TEST_SIZE} problems; asked for {n}")
    return [_example(*e, "substitution-test", i) for i, e in enumerate(_split()[1][:n])]


def train_set() -> list[dict]:
    """Every equation not in the held-out set (:data:`TEST_SIZE` fewer than :func:`all_equations`)."""
    return [_example(*e, "substitution-train", i) for i, e in enumerate(_split()[0])]


def drill(rng: random.Random) -> str:
    """One drill document: a forward evaluation (any ``a``, ``x``, ``b`` of the range) or a comparison
    of two numbers of the range of ``c`` (equal a third of the time)."""
    if rng.random() < 0.5:
        a, x, b = rng.randint(MIN_A, MAX_A), rng.randint(1, MAX_X), rng.randint(1, MAX_B)
        return f"User: evaluate {a} * x + {b} at x = {x}. Assistant: {evaluation(a, b, x)}."
    top = MAX_A * MAX_X + MAX_B
    u = rng.randint(MIN_A + 1, top)
    v = u if rng.random() < 1 / 3 else rng.randint(MIN_A + 1, top)
    return f"User: {u} vs {v}? Assistant: {comparison(u, v)}."


def corpus_documents(size: int, template_fraction: float, drill_fraction: float,
                     template_search_rate: float, short_search_rate: float, seed: int) -> list[str]:
    """The pre-training documents: ``size`` of them, ``drill_fraction`` drills, ``template_fraction``
    of the rest under the R1-Zero template (search with probability ``template_search_rate``, else
    direct), the others short (search with probability ``short_search_rate``). Training problems
    only; deterministic for ``seed``."""
    from r1kit.prompts import r1_zero_prompt

    rng = random.Random(seed)
    train = [parse_problem(p["problem"]) for p in train_set()]
    docs = []
    n_drill = int(size * drill_fraction)
    n_full = int((size - n_drill) * template_fraction)
    for i in range(size - n_drill):
        a, b, c = rng.choice(train)
        full = i < n_full
        rate = template_search_rate if full else short_search_rate
        style = "search" if rng.random() < rate else "direct"
        prompt = r1_zero_prompt(problem_text(a, b, c)) if full else f"User: {problem_text(a, b, c)}. Assistant:"
        docs.append(prompt + solution(a, b, c, style, rng))
    docs += [drill(rng) for _ in range(n_drill)]
    rng.shuffle(docs)
    return docs
