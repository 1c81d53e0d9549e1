"""Evaluation metrics of the DeepSeek-R1 protocol: pass@1 averaged over k samples, pass@k
(unbiased estimator) and cons@K (majority vote by mathematical equivalence)."""
from __future__ import annotations

from typing import Callable, Sequence

from r1kit.rewards.math import answers_equivalent


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of Chen et al. 2021 for ``c`` correct among ``n`` samples:
    ``1 - C(n-c, k) / C(n, k)``, computed as ``1 - prod_{i=n-c+1}^{n} (1 - k/i)`` (no huge
    binomials). 1.0 when ``n - c < k`` (every k-subset holds a correct sample)."""
    if not (0 <= c <= n and 1 <= k <= n):
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    prob_all_wrong = 1.0
    for i in range(n - c + 1, n + 1):
        prob_all_wrong *= 1.0 - k / i
    return 1.0 - prob_all_wrong


def majority_vote(answers: Sequence[str | None],
                  equivalent: Callable[[str, str], bool] = answers_equivalent) -> str | None:
    """The majority answer, grouping answers by ``equivalent`` (not string equality).

    Each answer joins the first group whose representative (its first member) it is equivalent
    to, checked as ``equivalent(answer, representative)``; identical strings join without a check
    and each distinct pair is checked once. None answers are ignored (None only if all are None).
    Returns the representative of the largest group; ties go to the group formed first.
    """
    representatives: list[str] = []
    sizes: list[int] = []
    group_of: dict[str, int] = {}
    for answer in answers:
        if answer is None:
            continue
        if answer not in group_of:
            group_of[answer] = next(
                (g for g, rep in enumerate(representatives) if equivalent(answer, rep)), len(representatives))
            if group_of[answer] == len(representatives):
                representatives.append(answer)
                sizes.append(0)
        sizes[group_of[answer]] += 1
    if not sizes:
        return None
    best = max(range(len(sizes)), key=lambda g: (sizes[g], -g))
    return representatives[best]


def summarize(per_problem: Sequence[Sequence[bool]],
              per_problem_answers: Sequence[Sequence[str | None]] | None = None,
              references: Sequence[str] | None = None,
              equivalent: Callable[[str, str], bool] = answers_equivalent) -> dict:
    """Benchmark results from per-problem sample correctness.

    per_problem[i][j]: whether sample j of problem i is correct. per_problem_answers[i][j]: its
    extracted answer (or None); references[i]: the reference answer. Keys:

    * ``pass@1``: mean over problems of the share of correct samples (the paper's pass@1);
    * ``pass@k`` for k = 2, 4, 8, ... <= K and k = K (unbiased estimator, all samples used);
    * ``cons@K`` (K >= 2 and answers given): share of problems whose majority answer over the
      first K samples is equivalent to the reference (or, without references, whose
      majority-answer sample was graded correct);
    * ``accuracy`` (correct / all responses), ``n_problems``, ``n_responses``, ``n_correct``,
      ``samples_per_problem`` (K).

    K is the smallest number of samples of any problem; when problems have different numbers of
    samples, ``samples_min``/``samples_max`` and a ``note`` say so.
    """
    if not per_problem or any(len(s) == 0 for s in per_problem):
        raise ValueError("need at least one problem, each with at least one sample")
    counts = [len(s) for s in per_problem]
    k_max = min(counts)
    n_correct = sum(sum(map(bool, s)) for s in per_problem)
    results: dict = {
        "n_problems": len(per_problem),
        "n_responses": sum(counts),
        "n_correct": n_correct,
        "samples_per_problem": k_max,
        "accuracy": n_correct / sum(counts),
        "pass@1": sum(sum(map(bool, s)) / len(s) for s in per_problem) / len(per_problem),
    }
    ks = sorted({2 ** e for e in range(1, k_max.bit_length()) if 2 ** e <= k_max} | ({k_max} - {1}))
    for k in ks:
        estimates = [pass_at_k(len(s), sum(map(bool, s)), k) for s in per_problem]
        results[f"pass@{k}"] = sum(estimates) / len(estimates)
    if k_max >= 2 and per_problem_answers is not None:
        hits = 0
        for i, (correct, answers) in enumerate(zip(per_problem, per_problem_answers)):
            answers = list(answers[:k_max])
            winner = majority_vote(answers, equivalent)
            if winner is None:
                continue
            if references is not None:
                hits += bool(equivalent(winner, str(references[i])))
            else:
                hits += bool(correct[answers.index(winner)])
        results[f"cons@{k_max}"] = hits / len(per_problem)
    if min(counts) != max(counts):
        results["samples_min"], results["samples_max"] = min(counts), max(counts)
        results["note"] = (f"problems have {min(counts)} to {max(counts)} samples; cons@{k_max} uses the "
                           f"first {k_max} of each, pass@k uses all")
    return results
