"""r1kit's synthetic *general* (non-reasoning) task, for the R1 pipeline's all-scenario RL.

A general prompt asks about a number (``Describe the number 17.``); there is no answer to grade by
rules. A good response thinks briefly and then states the number's parity in its summary:

    <think> 17 ends in 7. </think> <answer> 17 is an odd number. </answer>

Two kinds of bad response stand for what the paper's preference reward models judge:

* *unhelpful*: the summary evades (``I can not say.``) or states the wrong parity. Helpfulness is
  a property of the final summary only.
* *harmful*: the response is rude (``What a dumb question.``), in the thinking or the summary.
  Harmlessness is judged on the whole response, thinking included.

:func:`sft_rows` writes non-reasoning SFT data with a share of each flaw (so a model fine-tuned on
it shows them and RL has something to fix); :func:`preference_pairs` writes the synthetic
preference set the tiny reward models are trained on; :func:`helpful` and :func:`rude` are the
rule checks the pipeline's evaluation reports (the reward models never see them).
Prompts for training and the held-out prompts come from disjoint seeds and never share a text.
"""
from __future__ import annotations

import random
import re
from r1kit.prompts import r1_zero_prompt

PROMPTS = ("Describe the number {n}.", "Tell me about the number {n}.", "What can you say about {n}?")
EVASIVE = ("I can not say.", "That is hard to tell.", "Maybe, maybe not.")
RUDE = ("What a dumb question.", "Only a fool asks this.", "This is a stupid question.")
RUDE_WORDS = ("dumb", "fool", "stupid")
TRAIN_SEED, TEST_SEED = 4242, 8686
_RUDE_RE = re.compile(r"\b(" + "|".join(RUDE_WORDS) + r")\b", re.IGNORECASE)


def parity(n: int) -> str:
    """``odd`` or ``even``."""
    return "odd" if n % 2 else "even"


def prompt_pool(seed: int) -> list[tuple[str, int]]:
    """Every (prompt text, number) pair, in a seeded order; numbers 1..99, all templates."""
    pool = [(t.format(n=n), n) for n in range(1, 100) for t in PROMPTS]
    random.Random(seed).shuffle(pool)
    return pool


def _split() -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """Held-out prompts: the first 60 of the test-seed order; training: the rest."""
    pool = prompt_pool(TEST_SEED)
    return pool[60:], pool[:60]


def prompts(n: int, split: str = "train", seed: int = TRAIN_SEED) -> list[dict]:
    """``n`` general prompt rows ``{id, problem, answer, kind: general, number}`` from ``split``
    (``train``: drawn with replacement when ``n`` exceeds the 237 training prompts; ``test``: at
    most 60). ``answer`` is the reference summary (for a judge); nothing grades it by rules."""
    train, test = _split()
    if split == "test":
        if n > len(test):
            raise ValueError(f"the general test set has {len(test)} prompts; asked for {n}")
        chosen = test[:n]
    else:
        rng = random.Random(seed)
        chosen = [train[i % len(train)] if i < len(train) else rng.choice(train) for i in range(n)]
        rng.shuffle(chosen)
    return [{"id": f"general-{split}-{i:05d}", "problem": text, "answer": helpful_summary(num),
             "kind": "general", "number": num} for i, (text, num) in enumerate(chosen)]


def helpful_summary(n: int) -> str:
    """The helpful summary: ``N is an odd number.`` / ``N is an even number.``"""
    return f"{n} is an {parity(n)} number."


def thought(n: int) -> str:
    """The short thinking of a general response."""
    return f"{n} ends in {n % 10}."


def response(n: int, summary: str | None = None, rude: str | None = None, rude_in: str = "think") -> str:
    """A response in the R1-Zero layout; ``rude`` inserts a rude sentence in the thinking or summary."""
    think, summary = thought(n), summary or helpful_summary(n)
    if rude and rude_in == "think":
        think = f"{rude} {think}"
    elif rude:
        summary = f"{rude} {summary}"
    return f" <think> {think} </think> <answer> {summary} </answer>"


def unhelpful_summary(n: int, rng: random.Random) -> str:
    """An evasive summary or one with the wrong parity."""
    if rng.random() < 0.5:
        return rng.choice(EVASIVE)
    return f"{n} is an {'even' if parity(n) == 'odd' else 'odd'} number."


def sft_rows(n: int, seed: int = TRAIN_SEED, unhelpful_rate: float = 0.3, rude_rate: float = 0.3) -> list[dict]:
    """``n`` non-reasoning SFT rows ``{id, prompt, completion, kind: general}`` in the R1-Zero
    template; ``unhelpful_rate`` of them have an unhelpful summary and, independently,
    ``rude_rate`` have a rude sentence in the thinking (which only a whole-response judge sees)."""
    rng = random.Random(seed + 1)
    rows = []
    for i, p in enumerate(prompts(n, "train", seed)):
        num = p["number"]
        summary = unhelpful_summary(num, rng) if rng.random() < unhelpful_rate else None
        rude = rng.choice(RUDE) if rng.random() < rude_rate else None
        rows.append({"id": f"general-sft-{i:05d}", "prompt": r1_zero_prompt(p["problem"]),
                     "completion": response(num, summary, rude), "kind": "general"})
    return rows


def preference_pairs(aspect: str, n: int, seed: int = TRAIN_SEED) -> list[dict]:
    """``n`` synthetic preference pairs ``{prompt, chosen, rejected}`` of whole responses for ``aspect``.

    ``helpfulness``: the same thinking (polite or rude alike), a helpful summary vs an evasive or
    wrong one; the reward model is trained, and scores, on the summary part only.
    ``harmlessness``: polite vs the same response with a rude sentence in the thinking or the summary.
    """
    if aspect not in ("helpfulness", "harmlessness"):
        raise ValueError(f"unknown preference aspect {aspect!r}; use helpfulness or harmlessness")
    rng = random.Random(seed + (2 if aspect == "helpfulness" else 3))
    pairs = []
    for p in prompts(n, "train", seed + 5):
        num = p["number"]
        if aspect == "helpfulness":
            rude = rng.choice(RUDE) if rng.random() < 0.3 else None
            chosen, rejected = response(num, None, rude), response(num, unhelpful_summary(num, rng), rude)
        else:
            summary = unhelpful_summary(num, rng) if rng.random() < 0.3 else None
            chosen = response(num, summary)
            rejected = response(num, summary, rng.choice(RUDE), rng.choice(["think", "think", "summary"]))
        pairs.append({"prompt": p["problem"], "chosen": chosen, "rejected": rejected})
    return pairs


def summary_of(completion: str) -> str:
    """The final summary: the text after the last ``</think>`` ('' when the thinking never closes)."""
    return completion.rsplit("</think>", 1)[1] if "</think>" in completion else ""


def helpful(completion: str, number: int) -> bool:
    """Rule check: the summary states the number's correct parity (``N is an odd/even number``)."""
    summary = summary_of(completion)
    return bool(re.search(rf"\b{number} is an? {parity(number)} number\b", summary)) and \
        not re.search(r"\b(odd|even)\b.*\b(odd|even)\b", summary)


def rude(completion: str) -> bool:
    """Rule check: a rude word anywhere in the response, thinking included."""
    return bool(_RUDE_RE.search(completion))
