"""Phenomenon probes: the figures that tell whether the paper's observations happen in a run.

Computed the same way on training rollouts (``metrics.jsonl``) and on held-out samples
(``eval.jsonl``), from each response's text, correctness, length and language consistency:

* ``accuracy_reflective`` / ``accuracy_non_reflective``: accuracy of the responses with and
  without a self-verification phrase (``has_reflection``); None when that side is empty. The
  "aha" only matters if reflective responses are the more accurate ones.
* ``reflection_fixes``: share of reflective responses that hold a *real correction* (or a search
  fix, below) and end right.
  A correction is an equation written twice with the same left side and different values, with a
  reflection phrase between the two (``7 + 5 = 11. wait, let me check: 7 + 5 = 12.``). A phrase
  that re-derives the same value, or that is never followed by a re-derivation, is not one.
* ``length_correct`` / ``length_incorrect``: mean length (tokens) of right and wrong responses.
  Dr. GRPO's test: a length bias of the loss inflates wrong answers; real growth lengthens right ones.
* ``language_mixing_rate``: share of chains of thought whose language consistency is below
  :data:`MIXING_THRESHOLD` (responses without a consistency figure are left out).

Search (issue 26; Countdown, ``reach 16 with 7 3 5``, r1kit.data.countdown): a *candidate check* is a
comparison of a lone number with another, ``u < v`` / ``u > v`` / ``u = v`` / ``u != v``, whose left
side is not the end of an arithmetic expression (``5 != 16, no``, ``16 = 16, yes``; not the
``5 = 16`` of ``21 - 5 = 16``). A check of a candidate against the target *is* self-verification,
so a *verified check*, a candidate check followed by its verdict (``, yes``, ``, no``,
``, too small``, ``, too big``), counts as reflection beside the phrases: ``reflection_rate``,
``accuracy_reflective`` / ``accuracy_non_reflective`` count a response with either. The verdict is
required because the arithmetic task's chains restate values (``12 = 12``) with none: counting
those would move the arithmetic runs' reflection figures (the default run's training
``reflection_rate`` at step 33 from 3.1% to 12.5%), which stay phrase-based. And:

* ``reflection_fixes`` also counts a *search fix* that ends right (:func:`has_search_fix`: a check
  that rejects a candidate, ``<``, ``>`` or ``!=``, followed by a check of a different value);
* ``search_fix_rate``: share of responses with a search fix, right or not;
* ``attempts_mean``: mean number of candidate checks per response (a direct guess: 0), and
  ``accuracy_attempts_0`` / ``_1`` / ``_2`` / ``_3plus``: accuracy of the responses with that many
  (None when there is none).

What the phrase counter cannot tell: a model can say "wait" and copy its first value; only
``reflection_fixes`` counts re-derivations that changed a value and it understands only
equations of the form ``<numbers and + - * /> = <number>``.
"""
from __future__ import annotations

import re
from collections.abc import Sequence

from r1kit.data.language import language_consistency

MIXING_THRESHOLD = 0.9
_EQUATION = re.compile(r"(-?\d+(?:\s*[-+*/×]\s*-?\d+)+)\s*=\s*(-?\d+)")
_COMPARISON = re.compile(r"(?<![\d.])(-?\d+)\s*(!=|<|>|=)\s*(-?\d+)(?!\s*[-+*/×\d])")
_VERDICT = re.compile(r",\s*(yes|no|too small|too big)\b")
ATTEMPT_BUCKETS = ("0", "1", "2", "3plus")


def _check_matches(text: str) -> list[re.Match]:
    out = []
    for m in _COMPARISON.finditer(text):
        before = text[:m.start()].rstrip()
        if not (before and before[-1] in "+-*/×=<>!"):
            out.append(m)
    return out


def candidate_checks(text: str) -> list[tuple[int, str, int]]:
    """The candidate checks ``(value, relation, target)`` of ``text``, in order: comparisons of a lone
    number with a number (``45 < 59``, ``59 = 59``, ``36 != 16``), the left side not being the end
    of an arithmetic expression nor the right side the start of one."""
    return [(int(m.group(1)), m.group(2), int(m.group(3))) for m in _check_matches(text)]


def has_verified_check(text: str) -> bool:
    """True when a candidate check is followed by its verdict: ``16 = 16, yes``, ``5 != 16, no``,
    ``45 < 59, too small``."""
    return any(_VERDICT.match(text, m.end()) for m in _check_matches(text))


def attempts(text: str) -> int:
    """Number of candidates checked against a target in ``text`` (a direct guess: 0)."""
    return len(candidate_checks(text))


def has_search_fix(text: str) -> bool:
    """True when a candidate check rejects (``<``, ``>``, ``!=``) and a later check has another value."""
    checks = candidate_checks(text)
    return any(rel != "=" and any(later[0] != value for later in checks[i + 1:])
               for i, (value, rel, _) in enumerate(checks))


def has_reflection(text: str, phrases) -> bool:
    """True when ``text`` contains any self-verification phrase (case-insensitive, whole words) or a
    :func:`has_verified_check`."""
    return bool(_phrase_positions(text, phrases)) or has_verified_check(text)


def _phrase_positions(text: str, phrases) -> list[int]:
    lowered = text.lower()
    return sorted(m.start() for p in phrases for m in re.finditer(rf"\b{re.escape(p.lower())}\b", lowered))


def has_correction(text: str, phrases) -> bool:
    """True when an equation is re-written with a different value after a reflection phrase.

    Equations ``lhs = value`` are compared on ``lhs`` with spaces removed; a correction is a pair
    (first, later) with equal ``lhs``, different values and a phrase starting between them.
    """
    marks = _phrase_positions(text, phrases)
    if not marks:
        return False
    seen: list[tuple[str, str, int]] = []
    for m in _EQUATION.finditer(text):
        lhs, value = re.sub(r"\s+", "", m.group(1)), m.group(2)
        if any(lhs == l0 and value != v0 and any(end0 <= p < m.start() for p in marks)
               for l0, v0, end0 in seen):
            return True
        seen.append((lhs, value, m.end()))
    return False


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def phenomena(texts: Sequence[str], correct: Sequence[bool], lengths: Sequence[float], phrases,
              consistency: Sequence[float | None] | None = None) -> dict:
    """The probes of the module docstring over parallel lists of responses (None: no figure)."""
    reflective = [has_reflection(t, phrases) for t in texts]
    ref = [c for c, r in zip(correct, reflective) if r]
    out = {
        "accuracy_reflective": _mean([float(c) for c in ref]),
        "accuracy_non_reflective": _mean([float(c) for c, r in zip(correct, reflective) if not r]),
        "reflection_fixes": _mean([float(c and (has_correction(t, phrases) or has_search_fix(t)))
                                   for t, c, r in zip(texts, correct, reflective) if r]),
        "length_correct": _mean([n for n, c in zip(lengths, correct) if c]),
        "length_incorrect": _mean([n for n, c in zip(lengths, correct) if not c]),
    }
    out.update(attempt_figures(texts, correct))
    known = [x for x in (consistency or ()) if x is not None]
    out["language_mixing_rate"] = _mean([float(x < MIXING_THRESHOLD) for x in known])
    return out


def attempt_bucket(n: int) -> str:
    """The :data:`ATTEMPT_BUCKETS` name of ``n`` attempts."""
    return ATTEMPT_BUCKETS[min(n, len(ATTEMPT_BUCKETS) - 1)]


def attempt_figures(texts: Sequence[str], correct: Sequence[bool]) -> dict:
    """``attempts_mean``, ``search_fix_rate`` (share with a :func:`has_search_fix`) and
    ``accuracy_attempts_<bucket>`` (None for an empty bucket)."""
    counts = [attempts(t) for t in texts]
    out: dict = {"attempts_mean": _mean([float(n) for n in counts]),
                 "search_fix_rate": _mean([float(has_search_fix(t)) for t in texts])}
    for bucket in ATTEMPT_BUCKETS:
        out[f"accuracy_attempts_{bucket}"] = _mean([float(c) for n, c in zip(counts, correct)
                                                    if attempt_bucket(n) == bucket])
    return out


def consistency_or_none(text: str, example: dict) -> float | None:
    """Language consistency of ``text``'s chain of thought (None for an unknown target language)."""
    try:
        return language_consistency(text, example)
    except ValueError:
        return None


def rollout_phenomena(groups, accuracy_reward: str, phrases) -> dict:
    """:func:`phenomena` of a training step's groups (``rollouts``, ``parts``, ``example``).

    A completion is correct when its ``accuracy_reward`` is 1; completions that reward did not
    score (general prompts) count only for the language figures. Adds ``language_consistency``.
    """
    graded = [(r, p[accuracy_reward] >= 1.0) for g in groups for r, p in zip(g.rollouts, g.parts)
              if accuracy_reward in p]
    out = phenomena([r.text for r, _ in graded], [c for _, c in graded],
                    [r.policy_tokens for r, _ in graded], phrases)
    known = [x for x in (consistency_or_none(r.text, g.example) for g in groups for r in g.rollouts)
             if x is not None]
    out["language_consistency"] = _mean(known)
    out["language_mixing_rate"] = _mean([float(x < MIXING_THRESHOLD) for x in known])
    return out


def tool_probes(calls: Sequence[int], errors: Sequence[int], turns: Sequence[int],
                correct: Sequence[bool | float]) -> dict:
    """The tool-use probes of multi-turn episodes (r1kit.environments), over responses:

    * ``tool_call_rate``: share of responses with at least one tool call;
    * ``tool_calls_mean``: calls per response; ``turns_mean``: model turns per response (calls + 1,
      or fewer when the budget ran out);
    * ``tool_error_rate``: share of the calls whose observation was an error (None without calls);
    * ``accuracy_with_tool`` / ``accuracy_without_tool``: accuracy of the responses with / without
      a call (None when that side is empty).
    """
    n = len(calls)
    used = [bool(c) for c in calls]
    with_tool = [float(ok) for ok, u in zip(correct, used) if u]
    without = [float(ok) for ok, u in zip(correct, used) if not u]
    return {"tool_call_rate": sum(used) / n, "tool_calls_mean": sum(calls) / n,
            "tool_error_rate": sum(errors) / sum(calls) if sum(calls) else None,
            "accuracy_with_tool": sum(with_tool) / len(with_tool) if with_tool else None,
            "accuracy_without_tool": sum(without) / len(without) if without else None,
            "turns_mean": sum(turns) / n}
