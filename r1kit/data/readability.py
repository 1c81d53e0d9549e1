"""Readability filter for chains of thought (DeepSeek-R1 stages 1 and 3).

R1 drops reasoning samples that mix languages, have very long paragraphs, hold code blocks where
the task has none, or repeat themselves. Each check here is a small pure function; :func:`readability_issue`
runs them in a fixed order and names the first that fails, so that a filter's statistics count
every rejected text exactly once:

1. ``mixed_language``: fewer than ``min_language_share`` of the text's words are in the target
   language (words and languages as the language-consistency reward counts them,
   :mod:`r1kit.rewards.language`: numbers, symbols, LaTeX commands and single ASCII letters are
   neutral). The target is the row's ``language`` field, else ``ReadabilityConfig.language``.
2. ``long_paragraph``: a paragraph (text between blank lines) longer than ``max_paragraph_chars``
   characters (characters, not words, so that languages written without spaces count alike).
3. ``code_block``: a fenced ```` ``` ```` block in a text whose task has no code
   (:func:`task_has_code`: the row has ``tests``/``test`` or ``kind: code``).
4. ``repetition``: the share of word ``repetition_ngram``-grams that repeat an earlier one is above
   ``max_repetition``. A text looping over one passage r times scores about 1 - 1/r.

The layout markers (``<think>``, ``</think>``, ``<answer>``, ``</answer>`` and the cold-start
``|special_token|``) are removed before checking, so the layout never counts as foreign words.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from r1kit.prompts import COLD_START_MARKER
from r1kit.data.language import LANGUAGES, words

READABILITY_REASONS = ("mixed_language", "long_paragraph", "code_block", "repetition")
_LAYOUT = re.compile("|".join(re.escape(t) for t in ("<think>", "</think>", "<answer>", "</answer>",
                                                       COLD_START_MARKER)))
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")


@dataclass
class ReadabilityConfig:
    """What makes a chain of thought readable (each check documented in :mod:`r1kit.data.readability`).

    language: target language code (``en``, ``zh``; see ``r1kit.rewards.language.LANGUAGES``) when
        the row has no ``language`` field.
    min_language_share: least share of words in the target language (``mixed_language`` below it);
        0 disables the check.
    max_paragraph_chars: longest allowed paragraph in characters (``long_paragraph``); 0 disables.
    reject_code_blocks: reject fenced code blocks when the task has no code (``code_block``).
    repetition_ngram: n of the word n-grams that the repetition check counts.
    max_repetition: largest allowed share of repeated n-grams (``repetition``); 1 disables.
    """

    language: str = "en"
    min_language_share: float = 0.95
    max_paragraph_chars: int = 2000
    reject_code_blocks: bool = True
    repetition_ngram: int = 8
    max_repetition: float = 0.5


def strip_layout(text: str) -> str:
    """``text`` without the layout markers (think/answer tags, the cold-start marker)."""
    return _LAYOUT.sub(" ", text)


def language_share(text: str, language: str = "en") -> float:
    """Share of the words of ``text`` in ``language``; 1.0 when it has no words.

    Raises ValueError for a language code that is not in ``LANGUAGES``.
    """
    try:
        in_language = LANGUAGES[language]
    except KeyError:
        raise ValueError(f"unknown language {language!r}; known: {', '.join(sorted(LANGUAGES))}") from None
    found = words(text)
    return sum(map(in_language, found)) / len(found) if found else 1.0


def paragraphs(text: str) -> list[str]:
    """The non-blank paragraphs of ``text`` (separated by blank lines), stripped."""
    return [p.strip() for p in _PARAGRAPH_BREAK.split(text) if p.strip()]


def longest_paragraph(text: str) -> int:
    """Length in characters of the longest paragraph of ``text`` (0 for a blank text)."""
    return max((len(p) for p in paragraphs(text)), default=0)


def has_code_block(text: str) -> bool:
    """Whether ``text`` holds a fenced code block (an opening ```` ``` ````, closed or not)."""
    return "```" in text


def repetition_share(text: str, n: int = 8) -> float:
    """Share of the word n-grams of ``text`` that repeat an earlier n-gram (0 if it has none)."""
    tokens = text.split()
    grams = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


def task_has_code(example: dict | None) -> bool:
    """Whether a row's task involves code: it has tests (``tests``/``test``) or ``kind: code``."""
    if not example:
        return False
    return bool(example.get("tests") or example.get("test")) or example.get("kind") == "code"


def readability_issue(text: str, cfg: ReadabilityConfig = ReadabilityConfig(),
                      example: dict | None = None) -> str | None:
    """The first readability check ``text`` fails (a name in :data:`READABILITY_REASONS`), or None.

    ``example`` is the task's row: its ``language`` sets the target language and its tests or
    ``kind`` say whether code blocks belong (:func:`task_has_code`).
    """
    plain = strip_layout(text)
    language = (example or {}).get("language") or cfg.language
    if cfg.min_language_share > 0 and language_share(plain, language) < cfg.min_language_share:
        return "mixed_language"
    if cfg.max_paragraph_chars > 0 and longest_paragraph(plain) > cfg.max_paragraph_chars:
        return "long_paragraph"
    if cfg.reject_code_blocks and has_code_block(plain) and not task_has_code(example):
        return "code_block"
    if cfg.max_repetition < 1 and repetition_share(plain, cfg.repetition_ngram) > cfg.max_repetition:
        return "repetition"
    return None
