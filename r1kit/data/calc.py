"""The calculator task (docs/tools.md): products of a 3 and a 2 digit number, sums of three 3 digit ones.

``Compute 734 * 56`` or ``Compute 482 + 907 + 218``: too much for a one-million-parameter model to
do in one shot, one call for the ``calculator`` environment (r1kit.environments); the values
(3-5 digits) are short enough for it to copy. The pre-training corpus of the ``tiny-calc`` base
(docs/tools.md) answers in two styles:

* ``direct``: a short thought (half of the time one that states the value) and the right answer,
  which the model cannot reproduce; the stated values teach it to copy a number into the answer;
* ``tool``: ``<think> <calc>734 * 56</calc><output> 41104 </output> </think> <answer> 41104
  </answer>``, the value copied from the calculator's output: the form the calculator environment's
  observations take, so that RL on the base can select it (rare in the corpus: ``tool_rate``).

The held-out test set comes from another seed and never shares a problem with training sets.
"""
from __future__ import annotations

import random

from r1kit.data.synthetic import DIRECT_THOUGHTS

TRAIN_SEED, TEST_SEED, TEST_POOL = 4321, 56789, 1000
STYLES = ("direct", "tool")


def make_problem(rng: random.Random) -> tuple[str, int]:
    """A product of a 3 digit number and a 2 digit one, or a sum of three 3 digit numbers (even
    odds), with its value: ``("734 * 56", 41104)``."""
    if rng.random() < 0.5:
        a, b = rng.randint(100, 999), rng.randint(10, 99)
        return f"{a} * {b}", a * b
    terms = [rng.randint(100, 999) for _ in range(3)]
    return " + ".join(map(str, terms)), sum(terms)


def solution_text(expr: str, value: int, style: str, rng: random.Random) -> str:
    """The completion of a corpus document in ``style`` (see the module docstring)."""
    if style == "tool":
        return f" <think> <calc>{expr}</calc><output> {value} </output> </think> <answer> {value} </answer>"
    thought = f"It is {value}." if rng.random() < 0.5 else rng.choice(DIRECT_THOUGHTS)
    return f" <think> {thought} </think> <answer> {value} </answer>"


def generate_examples(n: int, seed: int, tool_rate: float = 0.0, exclude: set[str] | None = None,
                      id_prefix: str = "calc") -> list[dict]:
    """``n`` distinct examples with ``id``, ``problem``, ``answer``, ``style`` and ``solution``; a share
    ``tool_rate`` of the solutions call the calculator."""
    rng = random.Random(seed)
    exclude, seen, out = exclude or set(), set(), []
    while len(out) < n:
        expr, value = make_problem(rng)
        problem = f"Compute {expr}"
        if problem in seen or problem in exclude:
            continue
        seen.add(problem)
        style = "tool" if rng.random() < tool_rate else "direct"
        out.append({"id": f"{id_prefix}-{len(out):05d}", "problem": problem, "answer": str(value), "style": style,
                    "solution": solution_text(expr, value, style, rng)})
    return out


def test_set(n: int = 200) -> list[dict]:
    """The held-out calculator problems: the first ``n`` (<= 1000) of a fixed-seed pool."""
    if not 0 < n <= TEST_POOL:
        raise ValueError(f"the calculator test set has {TEST_POOL} problems; asked for {n}")
    return generate_examples(TEST_POOL, TEST_SEED, id_prefix="calc-test")[:n]


def train_set(n: int, seed: int = TRAIN_SEED, tool_rate: float = 0.0) -> list[dict]:
    """Training prompts (and the base's corpus), never sharing a problem with the held-out pool."""
    held_out = {ex["problem"] for ex in test_set(TEST_POOL)}
    return generate_examples(n, seed, tool_rate, exclude=held_out, id_prefix="calc-train")
