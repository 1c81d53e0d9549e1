"""Countdown in order: a search task where checking a candidate is a forward computation against a
target the prompt gives.

A problem is ``reach 16 with 7 3 5`` (three numbers) or ``reach 18 with 7 3 5 2`` (four): put an
operator (``+ - *``) between the numbers, *in the order given*, and evaluate left to right, so
that the result is the target. Numbers are 1..:data:`MAX_NUMBER`; every value a candidate computes
(each partial result) stays in 0..:data:`MAX_VALUE`, so forward evaluation is a small table a tiny
model can learn. A *candidate* is a choice of operators: ``(7 * 3) - 5``, ``((7 * 3) - 5) + 2``.
There is no one-shot algorithm to imitate: the corpus teaches the forward direction and the
comparison with the target, and a search trace guesses operators, evaluates, compares, retries::

    <think> numbers 7 3 5. try (7 + 3) - 5: 7 + 3 = 10, 10 - 5 = 5. reach 16? 5 != 16, no.
    wait, try (7 * 3) - 5: 7 * 3 = 21, 21 - 5 = 16. reach 16? 16 = 16, yes, so (7 * 3) - 5.
    </think> <answer> (7 * 3) - 5 </answer>

Why in order (docs/phenomena.md has the three traces that failed before it): when a candidate
could take the numbers in any order, a 0.9M model wrote numbers the problem does not have in a
third to a half of its tries (numbers that reach the target: a false "yes" no comparison catches),
and a check of the numbers was never learnt. In order, a candidate's numbers are a copy of the
``numbers`` line, left to right, and only its operators are a choice. The rest is what the earlier
traces taught: the candidate is written first; the comparison writes both numbers before its
relation (``5 != 16``), so the verdict is read off two written numbers; the target is copied
after the prompt's own word (``reach 16?``), which no drill uses; an accepting verdict restates its
candidate (``yes, so (7 * 3) - 5``) so that the answer copies a few tokens back.

A search draws candidates uniformly without replacement and stops at the first that reaches the
target or after :data:`MAX_ATTEMPTS` rejections (then it answers an unchecked guess): the chance of
a "yes" does not depend on how many tries came before. Four numbers have up to 27 candidates
against three numbers' 9, so they take more tries: the difficulty that keeps attempts rising.

The held-out set (:func:`test_set`) shares no ``(sorted numbers, target)`` with the training
problems (:func:`train_set`).
"""
from __future__ import annotations

import random
import re
from functools import lru_cache
from itertools import product

MAX_NUMBER, MAX_VALUE = 9, 30
SIZES = (3, 4)
MAX_ATTEMPTS = 6
TEST_SEED, TEST_SIZE = 26027, 200
TRAIN_FOUR = 6000
OPS = ("+", "-", "*")
DIRECT_THOUGHTS = ("I know this one.", "The answer is quick to see.", "This is easy.", "Let me answer directly.")
_PROBLEM = re.compile(r"reach (\d+) with (\d+(?: \d+)+)")


def apply(op: str, u: int, v: int) -> int:
    """``u op v`` for ``op`` in ``+ - *``."""
    return u + v if op == "+" else u - v if op == "-" else u * v


class Candidate:
    """The numbers, in order, with an operator between each two: ``(7 * 3) - 5``.
    ``partials``: the value after each operator, left to right; ``value``: the last."""

    def __init__(self, numbers, ops):
        self.numbers, self.ops = tuple(numbers), tuple(ops)
        values = [self.numbers[0]]
        for op, n in zip(self.ops, self.numbers[1:]):
            values.append(apply(op, values[-1], n))
        self.partials = values[1:]
        self.value = values[-1]

    def text(self) -> str:
        """The expression, fully parenthesised: ``((7 * 3) - 5) + 2``."""
        out = str(self.numbers[0])
        for i, (op, n) in enumerate(zip(self.ops, self.numbers[1:])):
            out = f"({out} {op} {n})" if i < len(self.ops) - 1 else f"{out} {op} {n}"
        return out

    def evaluation(self) -> str:
        """The forward evaluation: ``7 * 3 = 21, 21 - 5 = 16``."""
        lefts = [self.numbers[0], *self.partials[:-1]]
        return ", ".join(f"{u} {op} {n} = {v}" for u, op, n, v in zip(lefts, self.ops, self.numbers[1:], self.partials))

    def in_range(self) -> bool:
        return all(0 <= v <= MAX_VALUE for v in self.partials)


def candidates(numbers) -> list[Candidate]:
    """Every in-range candidate of ``numbers``, in a fixed order (by operators)."""
    pool = (Candidate(numbers, ops) for ops in product(OPS, repeat=len(numbers) - 1))
    return [c for c in pool if c.in_range()]


def problem_text(numbers, target: int) -> str:
    return f"reach {target} with {_words(numbers)}"


def parse_problem(problem: str) -> tuple[tuple[int, ...], int]:
    """``(numbers, target)`` of ``reach T with a b c [d]``; ValueError for any other text."""
    m = _PROBLEM.fullmatch(problem.strip())
    if not m:
        raise ValueError(f"not a countdown problem: {problem!r}")
    return tuple(int(w) for w in m.group(2).split()), int(m.group(1))


@lru_cache(maxsize=None)
def all_problems(size: int) -> tuple[tuple[tuple[int, ...], int], ...]:
    """Every ``(numbers, target)`` of ``size`` numbers: each tuple of 1..MAX_NUMBER and each target
    1..MAX_VALUE that one of its candidates reaches, in a fixed order."""
    out = []
    for numbers in product(range(1, MAX_NUMBER + 1), repeat=size):
        for target in sorted({c.value for c in candidates(numbers) if c.value >= 1}):
            out.append((numbers, target))
    return tuple(out)


def comparison(value: int, target: int) -> str:
    """``5 != 16, no`` / ``16 = 16, yes``."""
    return f"{value} = {target}, yes" if value == target else f"{value} != {target}, no"


def _words(numbers) -> str:
    return " ".join(map(str, numbers))


def try_text(cand: Candidate, target: int) -> str:
    """One try: the candidate, its forward evaluation and its comparison with the target; an
    accepting one restates the candidate."""
    verdict = comparison(cand.value, target) + (f", so {cand.text()}" if cand.value == target else "")
    return f"try {cand.text()}: {cand.evaluation()}. reach {target}? {verdict}."


def search_tries(numbers, target: int, rng: random.Random, max_attempts: int = MAX_ATTEMPTS) -> list[Candidate]:
    """Candidates drawn uniformly without replacement until one reaches ``target`` or
    ``max_attempts`` have been rejected."""
    pool = candidates(numbers)
    rng.shuffle(pool)
    tries = []
    while pool and len(tries) < max_attempts:
        tries.append(pool.pop())
        if tries[-1].value == target:
            break
    return tries


def completion(thought: str, answer: str) -> str:
    return f" <think> {thought} </think> <answer> {answer} </answer>"


def solution(numbers, target: int, style: str, rng: random.Random) -> str:
    """A completion in ``style``: ``direct`` (a uniformly drawn candidate, unchecked), ``single``
    (one checked try; if rejected, an unchecked guess) or ``search`` (up to MAX_ATTEMPTS tries)."""
    pool = candidates(numbers)
    if style == "direct":
        return completion(rng.choice(DIRECT_THOUGHTS), rng.choice(pool).text())
    tries = search_tries(numbers, target, rng, 1 if style == "single" else MAX_ATTEMPTS)
    thought = f"numbers {_words(numbers)}. " + " wait, ".join(try_text(c, target) for c in tries)
    answer = tries[-1].text() if tries[-1].value == target else rng.choice(pool).text()
    return completion(thought, answer)


def _example(numbers, target: int, prefix: str, i: int) -> dict:
    solved = next(c for c in candidates(numbers) if c.value == target)
    return {"id": f"{prefix}-{i:05d}", "problem": problem_text(numbers, target), "answer": solved.text(),
            "task": "countdown", "level": len(numbers)}


@lru_cache(maxsize=None)
def _split(size: int):
    """(train, test) problems of ``size`` numbers: ``TEST_SIZE // len(SIZES)`` (sorted numbers,
    target) keys held out, one ordering of each in the test set, no ordering of them in train."""
    problems = all_problems(size)
    keys = sorted({(tuple(sorted(n)), t) for n, t in problems})
    random.Random(TEST_SEED + size).shuffle(keys)
    held = set(keys[:TEST_SIZE // len(SIZES)])
    test, seen = [], set()
    for n, t in problems:
        key = (tuple(sorted(n)), t)
        if key in held and key not in seen:
            seen.add(key)
            test.append((n, t))
    random.Random(TEST_SEED + 1).shuffle(test)
    train = [(n, t) for n, t in problems if (tuple(sorted(n)), t) not in held]
    return tuple(train), tuple(test)


def _train_problems() -> list[tuple[tuple[int, ...], int]]:
    """Every three-number training problem and :data:`TRAIN_FOUR` four-number ones (a fixed draw
    of the 54,112)."""
    three, four = _split(3)[0], _split(4)[0]
    return list(three) + random.Random(TEST_SEED + 2).sample(four, TRAIN_FOUR)


def test_set(n: int = TEST_SIZE) -> list[dict]:
    """The held-out problems, three and four numbers alternating."""
    if not 0 < n <= TEST_SIZE:
        raise ValueError(f"countdown test set has {TEST_SIZE} problems; asked for {n}")
    three, four = _split(3)[1], _split(4)[1]
    mixed = [p for pair in zip(three, four) for p in pair]
    return [_example(nums, t, "countdown-test", i) for i, (nums, t) in enumerate(mixed[:n])]


def train_set() -> list[dict]:
    """The training problems (:func:`_train_problems`)."""
    return [_example(nums, t, "countdown-train", i) for i, (nums, t) in enumerate(_train_problems())]


def _near(target: int, rng: random.Random) -> int:
    """A number that looks like ``target``: its digits swapped, or off by 1, 2 or 10."""
    swapped = int(str(target)[::-1]) if target >= 10 else target + 10
    v = rng.choice([swapped, target + 1, target - 1, target + 2, target - 2, target + 10, target - 10])
    return v if 0 <= v <= MAX_VALUE and v != target else (target + 1 if target < MAX_VALUE else target - 1)


def random_candidate(rng: random.Random, size: int) -> Candidate:
    """A uniformly drawn in-range candidate of ``size`` random numbers."""
    while True:
        cand = Candidate([rng.randint(1, MAX_NUMBER) for _ in range(size)], [rng.choice(OPS) for _ in range(size - 1)])
        if cand.in_range():
            return cand


def drill(rng: random.Random) -> str:
    """One drill document: the forward evaluation of a random in-range candidate (half; three or
    four numbers) or a comparison of two numbers of 0..MAX_VALUE (equal a third of the time, a near
    miss a third)."""
    if rng.random() < 0.5:
        cand = random_candidate(rng, rng.choice(SIZES))
        return f"User: evaluate {cand.text()}. Assistant: {cand.evaluation()}."
    u = rng.randint(0, MAX_VALUE)
    r = rng.random()
    v = u if r < 1 / 3 else _near(u, rng) if r < 2 / 3 else rng.randint(0, MAX_VALUE)
    return f"User: {u} vs {v}? Assistant: {comparison(u, v)}."


def corpus_documents(size: int, template_fraction: float, drill_fraction: float,
                     template_rates: tuple[float, float], short_rates: tuple[float, float], seed: int) -> list[str]:
    """The pre-training documents: ``size`` of them, ``drill_fraction`` drills, ``template_fraction``
    of the rest under the R1-Zero template, the others short (``User: reach ... . Assistant:``).
    ``template_rates`` / ``short_rates``: the chance that such a document is a search trace and a
    single try (the rest guess directly). Training problems only; deterministic for ``seed``."""
    from r1kit.prompts import r1_zero_prompt

    rng = random.Random(seed)
    train = _train_problems()
    docs = []
    n_drill = int(size * drill_fraction)
    n_full = int((size - n_drill) * template_fraction)
    for i in range(size - n_drill):
        numbers, target = rng.choice(train)
        full = i < n_full
        search, single = template_rates if full else short_rates
        r = rng.random()
        style = "search" if r < search else "single" if r < search + single else "direct"
        text = problem_text(numbers, target)
        prompt = r1_zero_prompt(text) if full else f"User: {text}. Assistant:"
        docs.append(prompt + solution(numbers, target, style, rng))
    docs += [drill(rng) for _ in range(n_drill)]
    rng.shuffle(docs)
    return docs
