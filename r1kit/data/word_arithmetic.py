"""Word arithmetic for real small pretrained models: one addition or subtraction in a short story.

``Mia has 14 marbles and finds 6 more. How many marbles does Mia have now?`` (answer ``20``).
Operands have one or two digits, results are never negative. Each problem carries a one-shot
demonstration of the answer layout (``<think> 2 + 3 = 5 </think> <answer> 5 </answer>``): a 135M
chat model does not use ``<answer>`` tags unprompted, and a reward it never earns teaches nothing.
With the ``chat`` template (which opens the assistant turn at ``<think>``) SmolLM2-135M-Instruct
starts at about 10% pass@1 (k = 4, 64 new tokens), which 30 GRPO steps raise to about 49%
(``recipes/zero_smollm2.yaml``).

Names for ``load_problems``: ``synthetic_words`` (the held-out test set: the first ``limit`` or
200 of a fixed-seed pool of 1,000) and ``synthetic_words_train`` (4,000 training problems that
never share a story with the pool).
"""
from __future__ import annotations

import random
from dataclasses import dataclass

NAMES = ("Sam", "Mia", "Tom", "Ana", "Leo", "Zoe", "Max", "Ivy")
ITEMS = ("apples", "books", "coins", "pens", "cards", "stickers", "marbles", "shells")
GAIN = ("gets {b} more", "buys {b} more", "finds {b} more")
LOSS = ("gives away {b}", "loses {b}", "sells {b}")
FORMAT_HINT = (
    "Answer in this format.\n"
    "Question: Ben has 2 cups and gets 3 more. How many cups does Ben have now?\n"
    "Answer: <think> 2 + 3 = 5 </think> <answer> 5 </answer>"
)
TEST_SEED, TRAIN_SEED, TEST_POOL, TRAIN_SIZE = 4242, 777, 1000, 4000


@dataclass(frozen=True)
class WordArithmeticConfig:
    """max_start: the story's first number is drawn from 1..max_start; max_change: the change
    from 1..max_change. subtract_rate: share of subtraction stories."""

    max_start: int = 19
    max_change: int = 9
    subtract_rate: float = 0.5


def make_story(rng: random.Random, cfg: WordArithmeticConfig) -> tuple[str, int, str]:
    """A story, its answer and its one-line solution (``14 + 6 = 20``)."""
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    a, b = rng.randint(1, cfg.max_start), rng.randint(1, cfg.max_change)
    if rng.random() < cfg.subtract_rate:
        a += b  # the result a stays ≥ 1
        verb = rng.choice(LOSS).format(b=b)
        story = f"{name} has {a} {item} and {verb}. How many {item} does {name} have left?"
        return story, a - b, f"{a} - {b} = {a - b}"
    verb = rng.choice(GAIN).format(b=b)
    story = f"{name} has {a} {item} and {verb}. How many {item} does {name} have now?"
    return story, a + b, f"{a} + {b} = {a + b}"


def problem_text(story: str) -> str:
    return f"{FORMAT_HINT}\nQuestion: {story}\nAnswer:"


def generate(n: int, seed: int, cfg: WordArithmeticConfig = WordArithmeticConfig(),
             exclude: set[str] | None = None, id_prefix: str = "words") -> list[dict]:
    """``n`` distinct problems with ``id``, ``problem``, ``answer``, ``story`` and ``solution``."""
    rng, exclude, seen, rows = random.Random(seed), exclude or set(), set(), []
    while len(rows) < n:
        story, answer, steps = make_story(rng, cfg)
        if story in seen or story in exclude:
            continue
        seen.add(story)
        rows.append({"id": f"{id_prefix}-{len(rows):05d}", "problem": problem_text(story), "answer": str(answer),
                     "story": story, "solution": f"<think> {steps} </think> <answer> {answer} </answer>"})
    return rows


def test_set(n: int = 200) -> list[dict]:
    """The held-out set: the first ``n`` (≤ 1000) of a fixed-seed pool."""
    if not 0 < n <= TEST_POOL:
        raise ValueError(f"synthetic_words test set has {TEST_POOL} problems; asked for {n}")
    return generate(TEST_POOL, TEST_SEED, id_prefix="words-test")[:n]


def train_set(n: int = TRAIN_SIZE, seed: int = TRAIN_SEED) -> list[dict]:
    """Training problems, never sharing a story with the held-out pool."""
    held_out = {row["story"] for row in generate(TEST_POOL, TEST_SEED)}
    return generate(n, seed, exclude=held_out, id_prefix="words-train")
