"""r1kit's synthetic reasoning task: multi-step integer arithmetic.

A problem is a chain such as ``Compute 17 + 8 - 5 + 12``. The pre-training corpus answers it in
one of three styles, so that the tiny base model carries behaviours for RL to select:

* ``direct``: an empty-ish thought and the answer. A few-million-parameter model cannot add four
  numbers in one shot, so this style is usually wrong on longer chains.
* ``steps``: one binary operation per sentence (``17 + 8 = 25. 25 - 5 = 20. ...``). Each step is
  easy, so this style is usually right, and it is longer.
* ``check``: steps with self-verification: after some steps the text says ``wait, let me check``
  and recomputes; sometimes the first value was wrong and the check corrects it. This is the
  "aha" behaviour the reflection-rate metric counts.

The held-out test set is drawn from a different seed and never shares a problem with training.

Language mixing (for the R1 pipeline's language-consistency reward): with ``worded=True`` every
step sentence opens with a connective word (``First 17 + 8 = 25. Then 25 - 5 = 20.``), so chains of
thought have words; with ``mix_language_rate > 0`` that share of documents draws each of its words
(connectives, direct thoughts) from :data:`SECOND_LANGUAGE` with probability 1/2: a made-up
language whose every word carries a diacritic, so the language-consistency reward's ASCII test for
English (:mod:`r1kit.rewards.language`) catches it without a word list. ``mix_styles`` limits the
mixing to some styles (the ``tiny-mixed`` base mixes only the step-by-step chains, so that its
one-line guesses are English) and ``mix_word_rate`` sets the 1/2. With the defaults
(``worded=False``, rate 0) the generator draws exactly what it always did.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

STYLES = ("direct", "steps", "check")
DIRECT_THOUGHTS = (
    "The answer is quick to see.",
    "I know this one.",
    "This is easy.",
    "Let me answer directly.",
)
CHECK_PHRASE = "wait, let me check"
CONNECTIVES = ("First", "Then")
SECOND_LANGUAGE = {
    "First": "Prëmo",
    "Then": "Dåna",
    "The answer is quick to see.": "Ël rëspondo ës vïsto.",
    "I know this one.": "Yö sä ëstø.",
    "This is easy.": "Ësto ës fäcil.",
    "Let me answer directly.": "Rëspondo dïrëcto.",
}
"""The second, made-up language: English connective or direct thought -> its translation."""


@dataclass(frozen=True)
class SyntheticConfig:
    """Shape of the synthetic arithmetic task.

    min_terms/max_terms: numbers per chain (2 means a single operation).
    max_operand: operands are drawn from 1..max_operand.
    style_weights: sampling weights of the direct / steps / check answer styles in the corpus.
    slip_rate: in the ``check`` style, the chance that a checked step's first value is wrong (and fixed).
    check_rate: in the ``check`` style, the chance that a step is checked.
    worded: step sentences open with a connective word (``First``, then ``Then``).
    mix_language_rate: share of documents whose words come, each with probability
        ``mix_word_rate``, from the second language (:data:`SECOND_LANGUAGE`); 0 writes English only.
    mix_word_rate: in a mixing document, the chance that each word is in the second language.
    mix_styles: the answer styles whose documents may mix (the others are always English); the
        default, every style, draws as before.
    """

    min_terms: int = 3
    max_terms: int = 6
    max_operand: int = 9
    style_weights: tuple[float, float, float] = (0.5, 0.4, 0.1)
    slip_rate: float = 0.5
    check_rate: float = 0.5
    worded: bool = False
    mix_language_rate: float = 0.0
    mix_word_rate: float = 0.5
    mix_styles: tuple[str, ...] = STYLES


def make_problem(rng: random.Random, cfg: SyntheticConfig) -> tuple[list[int], list[str]]:
    """Draw operands and operators; the running total never goes below zero."""
    n_terms = rng.randint(cfg.min_terms, cfg.max_terms)
    numbers = [rng.randint(1, cfg.max_operand)]
    ops: list[str] = []
    total = numbers[0]
    for _ in range(n_terms - 1):
        b = rng.randint(1, cfg.max_operand)
        op = rng.choice("+-") if b <= total else "+"
        total = total + b if op == "+" else total - b
        numbers.append(b)
        ops.append(op)
    return numbers, ops


def problem_text(numbers: list[int], ops: list[str]) -> str:
    expr = str(numbers[0]) + "".join(f" {op} {b}" for op, b in zip(ops, numbers[1:]))
    return f"Compute {expr}"


def evaluate_chain(numbers: list[int], ops: list[str]) -> list[tuple[int, str, int, int]]:
    """Return the steps ``(a, op, b, result)`` of the chain, left to right."""
    steps, total = [], numbers[0]
    for op, b in zip(ops, numbers[1:]):
        result = total + b if op == "+" else total - b
        steps.append((total, op, b, result))
        total = result
    return steps


def _speaker(rng: random.Random, cfg: SyntheticConfig, style: str):
    """The word chooser of one document: English, or (a ``mix_language_rate`` share of the documents
    of a style in ``mix_styles``) each word from :data:`SECOND_LANGUAGE` with probability
    ``mix_word_rate``. No draw at rate 0 or for a style outside ``mix_styles``."""
    if (cfg.mix_language_rate <= 0 or style not in cfg.mix_styles
            or rng.random() >= cfg.mix_language_rate):
        return lambda text: text
    return lambda text: SECOND_LANGUAGE[text] if rng.random() < cfg.mix_word_rate else text


def _slipped(result: int, rng: random.Random) -> int:
    """A wrong value near ``result``: off by 1 or 2."""
    return result + rng.choice([-2, -1, 1, 2])


def reasoning_text(steps, style: str, rng: random.Random, cfg: SyntheticConfig) -> tuple[str, int]:
    """The chain of thought in ``style`` and the value it ends on (the answer it leads to)."""
    say = _speaker(rng, cfg, style)
    if style == "direct":
        return say(rng.choice(DIRECT_THOUGHTS)), steps[-1][3]
    sentences, carried = [], steps[0][0]
    for i, (_, op, b, _) in enumerate(steps):
        a = carried
        result = a + b if op == "+" else a - b
        lead = f"{say(CONNECTIVES[min(i, 1)])} " if cfg.worded else ""
        lhs = f"{a} {op} {b}"
        if style == "check" and rng.random() < cfg.check_rate:
            first = _slipped(result, rng) if rng.random() < cfg.slip_rate else result
            sentences.append(f"{lead}{lhs} = {first}. {CHECK_PHRASE}: {lhs} = {result}.")
        else:
            sentences.append(f"{lead}{lhs} = {result}.")
        carried = result
    return " ".join(sentences), carried


def completion_text(thought: str, answer: int) -> str:
    """The R1-Zero completion layout: ``<think> ... </think> <answer> ... </answer>``."""
    return f" <think> {thought} </think> <answer> {answer} </answer>"


def generate_examples(n: int, seed: int, cfg: SyntheticConfig = SyntheticConfig(),
                      exclude: set[str] | None = None, id_prefix: str = "synthetic") -> list[dict]:
    """Generate ``n`` distinct examples with ``id``, ``problem``, ``answer``, ``style``, ``solution``."""
    rng = random.Random(seed)
    exclude = exclude or set()
    seen: set[str] = set()
    examples = []
    while len(examples) < n:
        numbers, ops = make_problem(rng, cfg)
        problem = problem_text(numbers, ops)
        if problem in seen or problem in exclude:
            continue
        seen.add(problem)
        steps = evaluate_chain(numbers, ops)
        answer = steps[-1][3]
        style = rng.choices(STYLES, weights=cfg.style_weights)[0]
        thought, reached = reasoning_text(steps, style, rng, cfg)
        examples.append({
            "id": f"{id_prefix}-{len(examples):05d}",
            "problem": problem,
            "answer": str(answer),
            "style": style,
            "solution": completion_text(thought, reached),
        })
    return examples


CODE_STYLES = ("expression", "value", "steps")


def to_code_example(ex: dict, rng: random.Random,
                    style_weights: tuple[float, float, float] = (0.3, 0.4, 0.3)) -> dict:
    """The code version of an arithmetic example: write a program that prints the chain's value.

    Graded by running the program in the sandbox against a stdin/stdout case (``tests``). Styles:
    ``expression`` prints the expression itself (Python computes it: always right when copied),
    ``value`` prints a guessed value, ``steps`` reasons step by step, then prints the value.
    """
    expr = ex["problem"].removeprefix("Compute ")
    style = rng.choices(CODE_STYLES, weights=style_weights)[0]
    if style == "expression":
        thought, program = "Python can compute it.", f"print({expr})"
    elif style == "value":
        thought, program = rng.choice(DIRECT_THOUGHTS), f"print({ex['answer']})"
    else:
        thought = ex["solution"].split("<think>")[1].split("</think>")[0].strip()
        if "=" not in thought:  # a direct arithmetic answer has no steps to reuse
            thought = "I will compute it."
        program = f"print({ex['answer']})"
    return {
        "id": ex["id"].replace("synthetic-", "synthetic-code-"),
        "problem": f"Write a Python program that prints {expr}",
        "answer": ex["answer"],
        "tests": [{"input": "", "output": ex["answer"]}],
        "style": style,
        "solution": f" <think> {thought} </think> <answer> {program} </answer>",
    }


def code_set(examples: list[dict], seed: int) -> list[dict]:
    rng = random.Random(seed)
    return [to_code_example(ex, rng) for ex in examples]


TRAIN_SEED, TEST_SEED, TEST_POOL = 1234, 98765, 1000


def test_set(n: int = 200) -> list[dict]:
    """r1kit's held-out synthetic test set: the first ``n`` (≤ 1000) of a fixed-seed pool."""
    if not 0 < n <= TEST_POOL:
        raise ValueError(f"synthetic test set has {TEST_POOL} problems; asked for {n}")
    return generate_examples(TEST_POOL, TEST_SEED, id_prefix="synthetic-test")[:n]


def train_set(n: int, seed: int = TRAIN_SEED, cfg: SyntheticConfig = SyntheticConfig()) -> list[dict]:
    """Training prompts/corpus, never sharing a problem with the held-out pool."""
    held_out = {ex["problem"] for ex in test_set(TEST_POOL)}
    return generate_examples(n, seed, cfg, exclude=held_out, id_prefix="synthetic-train")


def code_test_set(n: int = 200) -> list[dict]:
    """Held-out code task: the held-out arithmetic problems as "write a program that prints ..."."""
    return code_set(test_set(n), TEST_SEED)


def code_train_set(n: int, seed: int = TRAIN_SEED) -> list[dict]:
    return code_set(train_set(n, seed + 7), seed)
