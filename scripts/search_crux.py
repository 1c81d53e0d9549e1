"""Crux check of a substitution base (issue 26): does checking a candidate pay, before any GRPO run?

Usage: python scripts/search_crux.py MODEL [N_PROBLEMS] [K] [SEED] [MAX_NEW_TOKENS] [PROMPT]
Samples K completions of each of the first N held-out problems (r1kit.data.substitution.test_set)
at T 1.0 (PROMPT: ``template``, the R1-Zero template, or ``short``) and prints:

* the share and accuracy (by the rule reward) of answers with a candidate check (r1kit.eval.probes:
  ``45 < 59``, ``59 = 59``) and of direct ones, and their ratio (target >= 2);
* forward evaluations inside checks: each ``a * g = p, p + b = v`` right for its own operands
  (target >= 95%), and how many copy the problem's ``a`` and ``b``;
* false "yes": accepting checks (``v = c, yes``) whose candidate does not solve the equation
  (target < 2%), and comparisons whose relation is wrong for their own numbers;
* accuracy by number of attempts, and a few samples.
"""
from __future__ import annotations

import re
import sys

from r1kit.data.substitution import parse_problem, satisfies, test_set
from r1kit.eval.probes import attempt_bucket, attempts, candidate_checks
from r1kit.models import load_model, load_tokenizer
from r1kit.prompts import r1_zero_prompt
from r1kit.rewards.substitution import accuracy_substitution
from r1kit.rollout import SamplingParams, sample

_TRY = re.compile(r"try x = (-?\d+): (\d+) \* (-?\d+) = (-?\d+), (-?\d+) \+ (\d+) = (-?\d+)\.\s*"
                  r"(?:wait, |compare -?\d+ with -?\d+: )?(-?\d+) (<|>|=|!=) (-?\d+)")


def _rel(u: int, v: int) -> str:
    return "<" if u < v else ">" if u > v else "="


def audit(text: str, a: int, b: int, c: int) -> dict:
    """Per-try figures of one completion: evaluations right, operands copied, comparisons right,
    accepting checks and false ones."""
    out = {"evals": 0, "evals_right": 0, "operands_copied": 0, "comparisons": 0, "comparisons_right": 0,
           "relation_right": 0, "target_copied": 0,
           "products_right": 0, "sums_right": 0,
           "yes": 0, "false_yes": 0}
    for m in _TRY.finditer(text.split("</think>")[0]):
        g, a2, g2, p, p2, b2, v = (int(m.group(i)) for i in range(1, 8))
        u, rel, t = int(m.group(8)), m.group(9), int(m.group(10))
        out["evals"] += 1
        out["evals_right"] += (a2 * g2 == p and p2 == p and p2 + b2 == v)
        out["products_right"] += a2 * g2 == p
        out["sums_right"] += p2 == p and p2 + b2 == v
        out["operands_copied"] += (a2 == a and b2 == b and g2 == g)
        out["comparisons"] += 1
        out["comparisons_right"] += (rel == _rel(u, t) and u == v and t == c)
        out["relation_right"] += rel == _rel(u, t)
        out["target_copied"] += t == c
        if rel == "=":
            out["yes"] += 1
            out["false_yes"] += not satisfies(a, b, c, g)
    return out


def main() -> None:
    name = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    k = int(sys.argv[3]) if len(sys.argv) > 3 else 8
    seed = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    max_new = int(sys.argv[5]) if len(sys.argv) > 5 else 320
    form = sys.argv[6] if len(sys.argv) > 6 else "template"
    if form not in ("template", "short"):
        raise SystemExit(f"PROMPT must be template or short, not {form!r}")
    tok, model = load_tokenizer(name), load_model(name)
    problems = test_set(n)
    prompts = [r1_zero_prompt(p["problem"]) if form == "template" else f"User: {p['problem']}. Assistant:"
               for p in problems]
    outs = sample(model, tok, prompts, SamplingParams(n=k, temperature=1.0, max_new_tokens=max_new,
                                                      stop=["</answer>"], seed=seed))
    rows = {"direct": [], "check": []}
    by_attempts: dict[str, list[bool]] = {}
    totals: dict[str, int] = {}
    lengths, samples = [], []
    for r in outs:
        ex = problems[r.prompt_index]
        a, b, c = parse_problem(ex["problem"])
        ok = accuracy_substitution(r.text, ex) == 1.0
        n_att = attempts(r.text)
        rows["check" if n_att else "direct"].append(ok)
        by_attempts.setdefault(attempt_bucket(n_att), []).append(ok)
        for key, v in audit(r.text, a, b, c).items():
            totals[key] = totals.get(key, 0) + v
        totals["checks_any"] = totals.get("checks_any", 0) + len(candidate_checks(r.text))
        lengths.append(len(r.token_ids))
        if n_att and len(samples) < 5:
            samples.append((ok, ex["problem"], r.text))
    total = len(outs)
    acc = {s: (sum(v) / len(v) if v else float("nan")) for s, v in rows.items()}
    print(f"{name}: {n} held-out problems x {k} samples, T 1.0, {max_new} new tokens, {form} prompt, seed {seed}")
    print(f"  accuracy {sum(map(sum, rows.values())) / total:.3f}; mean length {sum(lengths) / total:.1f} tokens")
    for s, v in rows.items():
        print(f"  {s:6s} share {len(v) / total:.3f}  accuracy {acc[s]:.3f}  ({len(v)} samples)")
    print(f"  check / direct accuracy ratio: {acc['check'] / acc['direct']:.2f}" if acc["direct"] else "")
    t = totals
    if t.get("evals"):
        print(f"  forward evaluations right: {t['evals_right'] / t['evals']:.3f} ({t['evals']}); "
              f"operands copied from the problem: {t['operands_copied'] / t['evals']:.3f}; products right "
              f"{t['products_right'] / t['evals']:.3f}, sums right {t['sums_right'] / t['evals']:.3f}")
        print(f"  comparisons right (relation, value carried, target copied): "
              f"{t['comparisons_right'] / t['comparisons']:.3f} ({t['comparisons']}); relation right for its own "
              f"numbers {t['relation_right'] / t['comparisons']:.3f}, target copied {t['target_copied'] / t['comparisons']:.3f}")
        print(f"  accepting checks: {t['yes']}; false yes: {t['false_yes']} "
              f"({t['false_yes'] / max(1, t['yes']):.3f} of accepting checks)")
    print(f"  candidate checks (probe) {t.get('checks_any', 0)}; tries parsed {t.get('evals', 0)}")
    for bucket in sorted(by_attempts):
        v = by_attempts[bucket]
        print(f"  attempts {bucket:5s}: {len(v):4d} answers, accuracy {sum(v) / len(v):.3f}")
    for ok, p, text in samples:
        print(f"--- {'RIGHT' if ok else 'WRONG'} {p}\n{text}")


if __name__ == "__main__":
    main()
