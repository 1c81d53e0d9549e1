"""Crux check of a Countdown base (issue 26): does checking a candidate pay, before any GRPO run?

Usage: python scripts/countdown_crux.py MODEL [N_PROBLEMS] [K] [SEED] [MAX_NEW_TOKENS] [PROMPT]
Samples K completions of each of the first N held-out problems (r1kit.data.countdown.test_set:
three and four numbers alternating) at T 1.0 (PROMPT: ``template``, the R1-Zero template, or
``short``) and prints, against the issue's targets, overall and by problem size:

* the share and accuracy (by the rule reward) of answers with a candidate check
  (r1kit.eval.probes: ``5 != 16``, ``16 = 16``) and of direct ones, and their ratio (target >= 2;
  checks <= 5% of answers under the template);
* forward evaluations inside tries (``7 * 3 = 21, 21 - 5 = 16``): every step right for its own
  operands and each using the previous value (target >= 95%), and how many follow the tried
  expression; split by whether the tried candidate's partial values stay in 0..30 (the range of
  every candidate the corpus evaluates) or leave it;
* comparisons: relation right for its own two numbers, value carried, target copied;
* false "yes": accepting checks whose tried expression does not solve the problem (target < 2%),
  by cause; answers whose last check accepts a solving candidate and answer it; tries whose
  numbers are not the problem's, in order;
* accuracy by number of attempts, and a few samples.
"""
from __future__ import annotations

import re
import sys
from collections import defaultdict

from r1kit.data.countdown import Candidate, apply, parse_problem, test_set
from r1kit.eval.probes import attempt_bucket, attempts
from r1kit.models import load_model, load_tokenizer
from r1kit.prompts import r1_zero_prompt
from r1kit.rewards.countdown import accuracy_countdown, solves
from r1kit.rollout import SamplingParams, sample

_TRY = re.compile(r"try ([^:<]+): ((?:-?\d+ [-+*] -?\d+ = -?\d+(?:, )?)+)\.\s*reach (-?\d+)\? (-?\d+) (!=|=) (-?\d+), "
                  r"(yes|no)(?:, so ([^.<]*))?")
_STEP = re.compile(r"(-?\d+) ([-+*]) (-?\d+) = (-?\d+)")


def audit_try(m: re.Match, numbers, target: int, out: dict) -> None:
    """Count one parsed try into ``out``."""
    expr = m.group(1).strip()
    expr_numbers = [int(w) for w in re.findall(r"\d+", expr)]
    expr_ops = re.findall(r"(?<=\s)[-+*](?=\s)", expr)
    steps = [(int(u), op, int(n), int(v)) for u, op, n, v in _STEP.findall(m.group(2))]
    value, rel, cmp_target, verdict = int(m.group(4)), m.group(5), int(m.group(6)), m.group(7)
    out["tries"] += 1
    out["foreign_tries"] += expr_numbers != list(numbers)
    chained = all(steps[i][0] == steps[i - 1][3] for i in range(1, len(steps)))
    right = chained and all(apply(op, u, n) == v for u, op, n, v in steps)
    out["evals"] += 1
    out["evals_right"] += right
    if len(expr_numbers) == len(expr_ops) + 1:
        where = "in_range" if Candidate(expr_numbers, expr_ops).in_range() else "out_of_range"
        out[f"evals_{where}"] += 1
        out[f"evals_{where}_right"] += right
    out["follows"] += ([steps[0][0]] + [s[2] for s in steps] == expr_numbers and [s[1] for s in steps] == expr_ops)
    out["relation_right"] += (rel == "=") == (value == cmp_target) and (verdict == "yes") == (rel == "=")
    out["value_carried"] += value == steps[-1][3]
    out["target_copied"] += cmp_target == target
    if verdict != "yes":
        return
    out["yes"] += 1
    if solves(expr, numbers, target):
        out["restated"] += (m.group(8) or "").strip() == expr
        return
    out["false_yes"] += 1
    cause = ("foreign_numbers" if sorted(expr_numbers) != sorted(numbers) else
             "eval_wrong_onto_target" if not right and steps[-1][3] == target else "other")
    out[f"false_yes_{cause}"] += 1


def audit(text: str, problem: str, out: dict) -> None:
    numbers, target = parse_problem(problem)
    tries = list(_TRY.finditer(text))
    for m in tries:
        audit_try(m, numbers, target, out)
    if tries and tries[-1].group(7) == "yes" and solves(tries[-1].group(1), numbers, target):
        out["true_last_yes"] += 1
        out["true_last_yes_answered"] += accuracy_countdown(text, {"problem": problem}) == 1.0


def pct(a, b) -> str:
    return f"{100 * a / b:.1f}% ({a}/{b})" if b else "-"


def report(name: str, rows: list[tuple[str, str]]) -> None:
    out = defaultdict(int)
    by = defaultdict(lambda: [0, 0])
    check, direct = [0, 0], [0, 0]
    for problem, text in rows:
        acc = accuracy_countdown(text, {"problem": problem}) == 1.0
        n = attempts(text)
        bucket = check if n else direct
        bucket[0] += 1
        bucket[1] += acc
        by[attempt_bucket(n)][0] += 1
        by[attempt_bucket(n)][1] += acc
        audit(text, problem, out)
    total = len(rows)
    ca = check[1] / check[0] if check[0] else 0.0
    da = direct[1] / direct[0] if direct[0] else 0.0
    print(f"== {name}: {total} answers, accuracy {pct(check[1] + direct[1], total)}")
    print(f"checks: share {pct(check[0], total)}; accuracy check {pct(check[1], check[0])} / direct {pct(direct[1], direct[0])}; "
          f"ratio {ca / da if da else float('inf'):.2f}")
    print(f"forward evaluations right {pct(out['evals_right'], out['evals'])}; follow the expression {pct(out['follows'], out['evals'])}; "
          f"tries with numbers not the problem's in order {pct(out['foreign_tries'], out['tries'])}")
    print(f"  of tried candidates whose partial values stay in 0..30: {pct(out['evals_in_range_right'], out['evals_in_range'])}; "
          f"that leave it: {pct(out['evals_out_of_range_right'], out['evals_out_of_range'])}")
    print(f"comparisons: relation right {pct(out['relation_right'], out['evals'])}; value carried "
          f"{pct(out['value_carried'], out['evals'])}; target copied {pct(out['target_copied'], out['evals'])}")
    print(f"false yes {pct(out['false_yes'], out['yes'])}: foreign numbers {out['false_yes_foreign_numbers']}, "
          f"evaluation wrong onto the target {out['false_yes_eval_wrong_onto_target']}, other {out['false_yes_other']}; "
          f"true accepts restated {out['restated']}")
    print(f"last check accepts a solving candidate: {out['true_last_yes']}, answered right {out['true_last_yes_answered']}")
    print("accuracy by attempts: " + ", ".join(f"{b}: {pct(by[b][1], by[b][0])}" for b in ("0", "1", "2", "3plus")))


def main() -> None:
    args = sys.argv[1:]
    name = args[0]
    n, k, seed, max_new = (int(a) for a in (args[1:5] + ["100", "8", "0", "320"][len(args[1:5]):]))
    form = args[5] if len(args) > 5 else "template"
    problems = [ex["problem"] for ex in test_set(n)]
    prompts = [r1_zero_prompt(p) if form == "template" else f"User: {p}. Assistant:" for p in problems]
    tok, model = load_tokenizer(name), load_model(name)
    outs = sample(model, tok, prompts, SamplingParams(n=k, temperature=1.0, max_new_tokens=max_new, stop=["</answer>"], seed=seed))
    rows = [(problems[o.prompt_index], o.text) for o in outs]
    print(f"{name}: {n} problems x {k}, seed {seed}, {form} prompt, {max_new} new tokens")
    report("all", rows)
    for size in (3, 4):
        report(f"{size} numbers", [r for r in rows if len(parse_problem(r[0])[0]) == size])
    shown = 0
    for problem, text in rows:
        if attempts(text) and shown < 6:
            print(f"--- {problem}:{text}")
            shown += 1


if __name__ == "__main__":
    main()
