"""Crux check of a tiny base: accuracy per answer style at T 1.0 on held-out problems.

Usage: python scripts/style_accuracy.py MODEL [N_PROBLEMS] [K] [SEED] [MAX_NEW_TOKENS] [PROMPT]
PROMPT: ``template`` (the R1-Zero template, the default) or ``short`` (the corpus's short
``User: ... Assistant:`` form, under which the tiny bases check more often: more check samples).
Prints the share and accuracy of direct / steps / check answers, the reflection fixes and a few
check samples. A style is read from the text: a reflection phrase -> check; an equation -> steps.
"""
from __future__ import annotations

import re
import sys

from r1kit.data import synthetic
from r1kit.eval.probes import has_correction
from r1kit.models import load_model, load_tokenizer
from r1kit.prompts import r1_zero_prompt
from r1kit.rollout import SamplingParams, sample

PHRASES = ("wait", "let me check", "verify", "re-evaluate", "double-check")


def style_of(text: str) -> str:
    """direct / steps / check, read from a completion's text."""
    if "wait" in text.lower():
        return "check"
    return "steps" if "=" in text else "direct"


def answer_of(text: str) -> str | None:
    m = re.search(r"<answer>\s*(-?\d+)\s*</answer>", text)
    return m.group(1) if m else None


def main() -> None:
    name = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 64
    k = int(sys.argv[3]) if len(sys.argv) > 3 else 8
    seed = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    max_new = int(sys.argv[5]) if len(sys.argv) > 5 else 256
    form = sys.argv[6] if len(sys.argv) > 6 else "template"
    if form not in ("template", "short"):
        raise SystemExit(f"PROMPT must be template or short, not {form!r}")
    tok, model = load_tokenizer(name), load_model(name)
    problems = synthetic.test_set(n)
    outs = sample(model, tok, [r1_zero_prompt(p["problem"]) if form == "template"
                                  else f"User: {p['problem']}. Assistant:" for p in problems],
                  SamplingParams(n=k, temperature=1.0, max_new_tokens=max_new, stop=["</answer>"], seed=seed))
    stats: dict[str, list[bool]] = {"direct": [], "steps": [], "check": []}
    fixes, lengths, examples = 0, [], []
    for r in outs:
        ok = answer_of(r.text) == problems[r.prompt_index]["answer"]
        s = style_of(r.text)
        stats[s].append(ok)
        lengths.append(len(r.token_ids))
        if s == "check":
            fixes += ok and has_correction(r.text, PHRASES)
            if len(examples) < 4:
                examples.append((ok, problems[r.prompt_index]["problem"], r.text))
    total = len(outs)
    print(f"{name}: {n} problems x {k} samples, T 1.0, {max_new} new tokens, {form} prompt; mean length {sum(lengths) / total:.1f}; "
          f"accuracy {sum(sum(v) for v in stats.values()) / total:.3f}")
    for s, v in stats.items():
        acc = sum(v) / len(v) if v else float("nan")
        print(f"  {s:6s} share {len(v) / total:.3f}  accuracy {acc:.3f}  ({len(v)} samples)")
    print(f"  check answers with a fix that end right: {fixes}")
    print("  equation accuracy (value right for its own operands):", equation_stats([r.text for r in outs]))
    for ok, p, t in examples:
        print(f"--- {'RIGHT' if ok else 'WRONG'} {p}\n{t}")



def equation_stats(texts) -> dict:
    """Per-equation accuracy (is the written value right for its own operands), by role: ``plain``
    step values, ``first`` values (the value a check follows), ``pieces`` of a place-value
    re-derivation (``tiny-aha2``: ``7 + 8 = 15, 30 + 15 = 45``) and ``rederived`` values (the
    checked operation written again after the phrase; for the older bases, the first equation
    after the phrase)."""
    eq = re.compile(r"(\d+) ([-+]) (\d+) = (-?\d+)")
    out: dict[str, list[bool]] = {"plain": [], "first": [], "pieces": [], "rederived": []}
    for text in texts:
        parts = re.split(r"(wait, let me check:)", text.split("</think>")[0])
        checked_lhs = None
        for i, part in enumerate(parts):
            if part == "wait, let me check:":
                continue
            ms = list(eq.finditer(part))
            lhss = [m.group(1, 2, 3) for m in ms]
            again = (lhss.index(checked_lhs) if checked_lhs in lhss else 0) if checked_lhs else -1
            for j, m in enumerate(ms):
                a, op, b, v = int(m.group(1)), m.group(2), int(m.group(3)), int(m.group(4))
                ok = (a + b if op == "+" else a - b) == v
                if j == again:
                    role = "rederived"
                elif j < again:
                    role = "pieces"
                elif j == len(ms) - 1 and i < len(parts) - 1:
                    role = "first"
                else:
                    role = "plain"
                out[role].append(ok)
            checked_lhs = lhss[-1] if ms and i < len(parts) - 1 else None
    return {k: (round(sum(v) / len(v), 3) if v else None, len(v)) for k, v in out.items()}


if __name__ == "__main__":
    main()
