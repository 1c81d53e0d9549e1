r"""Math answer extraction and the accuracy reward (equivalence checked with math-verify).

Extraction rules
================

:func:`extract_answer` (strict; used by the ``accuracy_math`` reward, as the paper puts the answer
"in a fixed place"):

1. If the completion has one or more complete ``<answer>...</answer>`` blocks, the answer is the
   content of the LAST one (an unclosed ``<answer>`` does not count). If that content itself holds a
   ``\boxed{...}``, the last box's content is taken. An empty block gives ``None``: it does not fall
   through to the rules below.
2. Otherwise the content of the LAST complete ``\boxed{...}`` or ``\fbox{...}`` (braces balanced;
   ``\{``/``\}`` are escaped braces and do not count), or the token after ``\boxed `` when written
   without braces (``\boxed 5``). A box whose braces never close (a truncated generation) is skipped.
3. Otherwise ``None`` (reward 0).

:func:`extract_answer_lenient` (for grading free-form responses, e.g. ``r1kit grade`` and reference
solutions) tries, in this order, and takes the first rule that yields an answer:

1. :func:`extract_answer` (``<answer>`` block, else last ``\boxed``/``\fbox``).
2. ``#### X`` on the last non-blank line (GSM8K style; a markdown ``#### Heading`` earlier in the
   text does not count): X is the rest of that line, thousands separators (``1,234``) removed.
3. The last ``The answer is X`` / ``final answer is X`` / ``Answer: X`` (case-insensitive, ``**``
   markdown ignored). If X starts with a math span (``$...$``, ``\(...\)``, ``\[...\]``) its content
   is taken; otherwise X runs to the end of its line or sentence (a ``.`` followed by a space or the
   end), and if X is a number followed by words (``18 dollars``), just the number.
4. The content of the last math span ``$...$`` / ``$$...$$`` / ``\(...\)`` / ``\[...\]``
   (an escaped ``\$`` is a dollar sign, not a delimiter).
5. Otherwise ``None``.

Every extracted answer is cleaned: surrounding whitespace, ``$``/``\(\)``/``\[\]`` delimiters,
one trailing ``.``, ``,`` or ``;``, and a ``\textbf{...}``/``\mathbf{...}``/``\boldsymbol{...}``
wrapping the whole answer are removed (math-verify reads ``\textbf{073}`` as text, not 73); an
empty result is ``None``.

Equivalence
===========

:func:`answers_equivalent` parses the reference as ``$\boxed{ref}$`` and the prediction as
``$\boxed{pred}$`` with ``math_verify.parse`` (LaTeX first, then plain expressions, so ``25``,
``025``, ``\frac12``, ``0.5``, ``1/2``, ``2,125`` and ``x = 5`` all parse) and compares them with
``math_verify.verify(gold, pred)`` (gold first: math-verify is not symmetric). Identical strings are
equivalent without parsing. Parses are cached.

Time limit: each call has a hard limit of ``timeout_s`` seconds for parsing and comparing together
(:mod:`r1kit.rewards.time_limit`).

* In the main thread (the usual case) a ``SIGALRM`` interval timer (``signal.setitimer``) interrupts
  the work; any timer the caller had armed (e.g. pytest-timeout's) is restored afterwards with its
  remaining time. math-verify's own timeouts are switched off, because they call ``signal.alarm``,
  which only works in the main thread and cancels any timer the caller had set. A signal cannot
  interrupt a single long C-level operation (e.g. a huge integer power), but sympy is pure Python.
* In any other thread signals are not available, so the check runs in a helper process (started
  on first use, one per Python process, shared by all threads with a lock), which is killed and
  restarted if it does not answer within ``timeout_s`` plus a small grace time. The first call
  pays for starting it (about a second, to import sympy).

A timeout or an unexpected exception makes the answer count as not equivalent (``False``); it is
logged as a warning and counted in :data:`VERIFY_FAILURES` (``"timeout"`` or ``"error: <Type>"``).
"""
from __future__ import annotations

import logging
import re
from collections import Counter
from functools import lru_cache

from r1kit.rewards import register
from r1kit.rewards.time_limit import HelperProcess, call_with_time_limit

logger = logging.getLogger(__name__)

VERIFY_FAILURES: Counter[str] = Counter()
"""Failed equivalence checks since import, by reason (``"timeout"``, ``"error: <Type>"``)."""

# ---------------------------------------------------------------------------------------------
# Extraction
# ---------------------------------------------------------------------------------------------

_ANSWER_BLOCK = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_BOX_START = re.compile(r"\\(?:boxed|fbox)\b\s*")
_HASHES = re.compile(r"####[ \t]*([^\n]*)")
_ANSWER_IS = re.compile(r"(?:final\s+answer\s*(?:is|:)|answer\s+is|answer\s*:)[ \t]*:?[ \t]*", re.IGNORECASE)
_MATH_SPAN = re.compile(r"\$\$(.+?)\$\$|(?<!\\)\$(.+?)(?<!\\)\$|\\\((.+?)\\\)|\\\[(.+?)\\\]", re.DOTALL)
_LEADING_MATH = re.compile(r"\$\$(.+?)\$\$|\$(.+?)(?<!\\)\$|\\\((.+?)\\\)|\\\[(.+?)\\\]", re.DOTALL)
_NUMBER_THEN_WORDS = re.compile(r"^(-?\\?\$?\d[\d,]*(?:\.\d+)?)\s+[A-Za-z]")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_SENTENCE_END = re.compile(r"\.(?:\s|$)")
_BOLD = re.compile(r"\\(?:textbf|mathbf|boldsymbol)\s*\{")


def _closing_braces(text: str) -> dict[int, int]:
    """Map each ``{`` position in ``text`` to the position of its matching ``}`` (unclosed ones
    are absent). Backslash-escaped characters (``\\{``, ``\\}``) are skipped. One linear pass,
    so a degenerate completion with thousands of unclosed boxes stays cheap."""
    pairs: dict[int, int] = {}
    stack: list[int] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "{":
            stack.append(i)
        elif ch == "}" and stack:
            pairs[stack.pop()] = i
        i += 1
    return pairs


def last_boxed(text: str) -> str | None:
    r"""Content of the last complete ``\boxed{...}``/``\fbox{...}`` (or ``\boxed x``) in ``text``."""
    found = None
    pairs: dict[int, int] | None = None
    for m in _BOX_START.finditer(text):
        pos = m.end()
        if pos < len(text) and text[pos] == "{":
            if pairs is None:
                pairs = _closing_braces(text)
            if pos in pairs:
                found = text[pos + 1:pairs[pos]]
        elif m.group(0) != m.group(0).rstrip():  # "\boxed 5": a space, then a bare token
            token = re.match(r"[^\s$]+", text[pos:])
            if token:
                found = token.group(0)
    return found


def _clean(answer: str | None) -> str | None:
    """Strip whitespace, math delimiters, a bold wrapper and one trailing ``.``/``,``/``;``;
    empty -> None."""
    if answer is None:
        return None
    s = answer.strip()
    for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if len(s) >= len(left) + len(right) and s.startswith(left) and s.endswith(right):
            s = s[len(left):len(s) - len(right)].strip()
            break
    if s and s[-1] in ".,;" and not s.endswith("\\."):
        s = s[:-1].rstrip()
    bold = _BOLD.match(s)
    if bold and _closing_braces(s).get(bold.end() - 1) == len(s) - 1:  # math-verify reads \textbf{073} as text
        s = s[bold.end():-1].strip()
    return s or None


def extract_answer(completion: str) -> str | None:
    """The answer by the strict rules in the module docstring: last ``<answer>`` block, else last
    ``\\boxed{}``/``\\fbox{}``, else None."""
    blocks = _ANSWER_BLOCK.findall(completion)
    if blocks:
        content = blocks[-1]
        boxed = last_boxed(content)
        return _clean(boxed if boxed is not None else content)
    return _clean(last_boxed(completion))


def _after_answer_is(rest: str) -> str | None:
    """The answer X in ``The answer is X...``, ``rest`` being the text after the phrase."""
    rest = rest.lstrip(" \t*")
    m = _LEADING_MATH.match(rest)
    if m:
        return next(g for g in m.groups() if g is not None)
    line = rest.split("\n", 1)[0]
    end = _SENTENCE_END.search(line)
    if end:
        line = line[:end.start()]
    line = line.strip().strip("*").strip()
    number = _NUMBER_THEN_WORDS.match(line)
    return number.group(1) if number else line


def extract_answer_lenient(completion: str) -> str | None:
    """The answer by the lenient rules in the module docstring: strict rules, else a final
    ``#### X`` line, else ``The answer is X``, else the last ``$...$`` math span, else None."""
    strict = extract_answer(completion)
    if strict is not None:
        return strict
    last_line = completion.rstrip().rsplit("\n", 1)[-1]
    hashes = _HASHES.match(last_line.strip())
    if hashes:
        answer = _clean(_THOUSANDS.sub("", hashes.group(1)))
        if answer is not None:
            return answer
    plain = completion.replace("**", "")
    phrases = list(_ANSWER_IS.finditer(plain))
    if phrases:
        answer = _clean(_after_answer_is(plain[phrases[-1].end():]))
        if answer is not None:
            return answer
    spans = _MATH_SPAN.findall(completion)
    if spans:
        return _clean(next(g for g in spans[-1] if g))
    return None


# ---------------------------------------------------------------------------------------------
# Equivalence with a hard time limit
# ---------------------------------------------------------------------------------------------

class _DropNoTimeoutWarning(logging.Filter):
    """Hide math-verify's one-time 'Timeout is disabled' warning: r1kit enforces its own limit."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Timeout is disabled" not in record.getMessage()


for _name in ("math_verify.parser", "math_verify.grader"):
    logging.getLogger(_name).addFilter(_DropNoTimeoutWarning())


@lru_cache(maxsize=8192)
def _parse(text: str):
    """``math_verify.parse`` of ``$\\boxed{text}$`` (cached; a timed-out parse is not cached)."""
    from math_verify import parse
    return parse("$\\boxed{" + text + "}$", parsing_timeout=None)


def _verify_now(pred: str, ref: str) -> bool:
    """The equivalence check itself, with no time limit."""
    from math_verify import verify
    return bool(verify(_parse(ref), _parse(pred), timeout_seconds=None))


_HELPER = HelperProcess("r1kit.rewards.math:_verify_now")


def check_equivalent(pred: str, ref: str, timeout_s: float = 5) -> bool:
    """Like :func:`answers_equivalent` but raising ``TimeoutError`` (or the underlying exception)
    instead of returning False."""
    pred, ref = pred.strip(), ref.strip()
    if not pred or not ref:
        return False
    if pred == ref:
        return True
    return call_with_time_limit(_verify_now, (pred, ref), timeout_s, _HELPER)


def answers_equivalent(pred: str | None, ref: str | None, timeout_s: float = 5) -> bool:
    """Whether answer ``pred`` is mathematically equivalent to reference ``ref`` (math-verify).

    Never raises: an empty/None answer is False; a timeout (``timeout_s`` seconds, hard limit, see
    the module docstring) or an error is False, logged and counted in :data:`VERIFY_FAILURES`.
    """
    if pred is None or ref is None:
        return False
    try:
        return check_equivalent(str(pred), str(ref), timeout_s)
    except TimeoutError:
        VERIFY_FAILURES["timeout"] += 1
        logger.warning("equivalence check timed out after %gs: pred=%.80r ref=%.80r", timeout_s, pred, ref)
    except Exception as exc:
        VERIFY_FAILURES[f"error: {type(exc).__name__}"] += 1
        logger.warning("equivalence check failed (%s: %s): pred=%.80r ref=%.80r",
                       type(exc).__name__, exc, pred, ref)
    return False


@register("accuracy_math", "accuracy")
def accuracy_math(completion: str, example: dict) -> float:
    """1.0 if the strictly extracted answer (``<answer>`` block or last ``\\boxed``) is equivalent
    to ``example["answer"]``, else 0.0 (also when no answer is found)."""
    answer = extract_answer(completion)
    if answer is None:
        return 0.0
    return 1.0 if answers_equivalent(answer, str(example["answer"])) else 0.0
