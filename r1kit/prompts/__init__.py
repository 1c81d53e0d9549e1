"""Prompt templates: the R1-Zero template, the R1 chat format and the cold-start layout.

* ``r1_zero``: the DeepSeek-R1 paper's template (its Table 1) verbatim; the completion continues after
  ``Assistant:`` with ``<think> ... </think> <answer> ... </answer>``.
* ``chat``: for R1-style output (``<think>`` reasoning ``</think>`` then a summary). Uses the
  tokenizer's own chat template when it has one; otherwise a plain ``User:/Assistant:`` layout.
* ``cold_start``: the readable layout of stage 1, ``|special_token|<reasoning>|special_token|<summary>``.
"""
from __future__ import annotations

R1_ZERO_TEMPLATE = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant "
    "solves it. The assistant first thinks about the reasoning process in the mind and then "
    "provides the user with the answer. The reasoning process and answer are enclosed within "
    "<think> </think> and <answer> </answer> tags, respectively, i.e., <think> reasoning process "
    "here </think> <answer> answer here </answer>. User: {prompt}. Assistant:"
)
CHAT_SYSTEM = "Think step by step inside <think> </think>, then give a short summary with the final answer."
COLD_START_MARKER = "|special_token|"
TEMPLATES = ("r1_zero", "chat", "plain")


def r1_zero_prompt(problem: str) -> str:
    """The R1-Zero template with ``problem`` substituted (verbatim from the R1 paper's Table 1)."""
    return R1_ZERO_TEMPLATE.format(prompt=problem)


def chat_prompt(problem: str, tokenizer=None) -> str:
    """R1 chat format: the tokenizer's chat template if it has one, opened at ``<think>``."""
    if tokenizer is not None and getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(
            [{"role": "system", "content": CHAT_SYSTEM}, {"role": "user", "content": problem}],
            tokenize=False, add_generation_prompt=True)
    else:
        text = f"{CHAT_SYSTEM}\nUser: {problem}\nAssistant:"
    return text + " <think>" if not text.rstrip().endswith("<think>") else text


def cold_start_text(reasoning: str, summary: str) -> str:
    """Cold-start layout: ``|special_token|<reasoning_process>|special_token|<summary>``."""
    return f"{COLD_START_MARKER}{reasoning.strip()}{COLD_START_MARKER}{summary.strip()}"


def build_prompt(problem: str, template: str = "r1_zero", tokenizer=None) -> str:
    """Render ``problem`` with the named template (``r1_zero``, ``chat`` or ``plain``)."""
    if template == "r1_zero":
        return r1_zero_prompt(problem)
    if template == "chat":
        return chat_prompt(problem, tokenizer)
    if template == "plain":
        return problem
    raise ValueError(f"unknown template {template!r}; choose one of {TEMPLATES}")
