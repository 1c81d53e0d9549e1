"""Language consistency (DeepSeek-R1 stage 2's reward, registered as ``language_consistency`` by
:mod:`r1kit.rewards.language`): the share of the chain of thought's words that are in the target
language. Also used by the readability filter and the evaluation's language figures.

Chain of thought: the text inside ``<think>...</think>``; if the prompt opened ``<think>`` (the
completion has ``</think>`` but no ``<think>``), the text before ``</think>``; if ``<think>`` is
never closed (a truncated generation), the text after it; with no think tags, the whole completion.

Words: LaTeX commands (``\\frac``, ``\\sqrt``...) are removed first; then every maximal run of
letters (Unicode letters, no digits, no ``_``) is a word, except that each CJK character is a word
of its own (Chinese is written without spaces). Numbers, math symbols and punctuation are not
words, so they are neutral; a single ASCII letter (``x``, ``n``) is taken for a math variable and
is neutral too.

Classification: a word is in the target language when ``LANGUAGES[target](word)`` is true and
the lowercased word is not in ``example["foreign_words"]`` (an optional caller-provided set, to
catch foreign words that the predicate alone would accept, e.g. French ``donc`` looks English).
Built-in predicates: ``en`` = ASCII Latin letters only (so ``café`` or ``所以`` are not English);
``zh`` = CJK ideographs. Add a language by adding a predicate to :data:`LANGUAGES`.

Target: ``example.get("language", "en")``. Reward = in-target words / all words; 1.0 if there are
no words. An unknown language code raises ValueError (counted as a reward failure when scored).
"""
from __future__ import annotations

import re
from typing import Callable

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef"
_CJK_CHAR = re.compile(f"[{_CJK}]")
_LATEX_COMMAND = re.compile(r"\\[A-Za-z]+")
_WORD = re.compile(rf"[{_CJK}]|(?:(?![{_CJK}])[^\W\d_])+")


def _is_english(word: str) -> bool:
    """ASCII Latin letters only."""
    return word.isascii() and word.isalpha()


def _is_chinese(word: str) -> bool:
    """CJK ideographs only."""
    return all(_CJK_CHAR.fullmatch(ch) for ch in word)


LANGUAGES: dict[str, Callable[[str], bool]] = {"en": _is_english, "zh": _is_chinese}
"""Language code -> predicate ``is_word_in_language(word)``."""


def chain_of_thought(completion: str) -> str:
    """The thinking part of ``completion`` (rules in the module docstring)."""
    if "</think>" in completion:
        before = completion.split("</think>", 1)[0]
        return before.split("<think>", 1)[1] if "<think>" in before else before
    if "<think>" in completion:
        return completion.split("<think>", 1)[1]
    return completion


def words(text: str) -> list[str]:
    """The words of ``text`` (rules in the module docstring); single ASCII letters excluded."""
    text = _LATEX_COMMAND.sub(" ", text)
    return [w for w in _WORD.findall(text) if not (len(w) == 1 and w.isascii())]


def language_consistency(completion: str, example: dict) -> float:
    """Share of the chain of thought's words in ``example.get("language", "en")``; 1.0 if no words."""
    target = example.get("language", "en")
    try:
        in_language = LANGUAGES[target]
    except KeyError:
        raise ValueError(f"unknown language {target!r}; known: {', '.join(sorted(LANGUAGES))}") from None
    foreign = {w.lower() for w in example.get("foreign_words") or ()}
    found = words(chain_of_thought(completion))
    if not found:
        return 1.0
    good = sum(1 for w in found if in_language(w) and w.lower() not in foreign)
    return good / len(found)
