"""The word-arithmetic task of the real-model recipe (recipes/zero_smollm2.yaml)."""
import re

from r1kit.data import word_arithmetic
from r1kit.data.benchmarks import load_problems
from r1kit.rewards import REWARD_FUNCS


def test_named_sets_and_answers():
    test = load_problems("synthetic_words")
    train = load_problems("synthetic_words_train")
    assert len(test) == 200 and len(load_problems("synthetic_words", limit=7)) == 7
    assert len(train) == word_arithmetic.TRAIN_SIZE
    pool = word_arithmetic.generate(word_arithmetic.TEST_POOL, word_arithmetic.TEST_SEED)
    assert not {r["story"] for r in train} & {r["story"] for r in pool}
    for row in test + train[:500]:
        a, b = re.search(r"has (\d+) \w+ and \w+(?: away)? (\d+)", row["story"]).group(1, 2)
        expected = int(a) + int(b) if "more" in row["story"] else int(a) - int(b)
        assert row["answer"] == str(expected) and expected >= 0
        assert row["problem"].startswith(word_arithmetic.FORMAT_HINT) and row["problem"].endswith("\nAnswer:")
        # the reference solution earns the rewards the recipe uses (after the chat template's "<think>")
        completion = row["solution"].removeprefix("<think>")
        assert REWARD_FUNCS["accuracy_math"](completion, row) == 1.0
        assert REWARD_FUNCS["format_think"](completion, row) == 1.0


def test_deterministic():
    assert word_arithmetic.test_set(50) == word_arithmetic.test_set(50)
    assert word_arithmetic.train_set(20) == word_arithmetic.train_set(20)
