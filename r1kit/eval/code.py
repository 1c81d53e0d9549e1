"""Code evaluation: HumanEval problems and grading of sampled programs in the sandbox.

HumanEval's problems are loaded by :func:`r1kit.data.benchmarks.load_humaneval`. Programs are graded with
:mod:`r1kit.rewards.code` (sandboxed), and the results follow the R1 evaluation protocol
(:func:`r1kit.eval.metrics.summarize`: pass@1 averaged over the k samples, unbiased pass@k).
"""
from __future__ import annotations

import re
from collections import Counter
from typing import Sequence

from tqdm.auto import tqdm

from r1kit.eval.config import EvalConfig
from r1kit.eval.metrics import summarize
from r1kit.rewards.code import TestPlan, TestReport, extract_program, plan_tests
from r1kit.rollout.engines import as_engine
from r1kit.sandbox import SandboxLimits, SandboxPool


def defines_function(code: str, name: str) -> bool:
    """Whether ``code`` defines a top-level function ``name``."""
    return re.search(rf"^(async\s+)?def\s+{re.escape(name)}\s*\(", code, re.MULTILINE) is not None


def humaneval_program(problem: dict, completion: str) -> str:
    """The program for a HumanEval-style completion.

    A completion is either the function body continuing the prompt, or a program (fenced, or in
    ``<answer>``) that defines the entry point itself. In the first case the program is prompt +
    completion; in the second, the prompt followed by the program: the prompt's imports and helper
    functions stay available, and the program's definition replaces the prompt's stub.
    """
    code = extract_program(completion)
    if code is None:
        code = completion
    if defines_function(code, problem["entry_point"]):
        return problem["problem"].rstrip() + "\n\n\n" + code + "\n"
    return problem["problem"] + code


def program_for(problem: dict, completion: str) -> str | None:
    """The program to test: HumanEval style when the problem has a prompt and an entry point,
    else :func:`~r1kit.rewards.code.extract_program` (None: nothing to run)."""
    if problem.get("entry_point") and problem.get("problem") and problem.get("test"):
        return humaneval_program(problem, completion)
    return extract_program(completion)


def grade_code_samples(problems: Sequence[dict], completions_per_problem: Sequence[Sequence[str]],
                       pool: SandboxPool | None = None, limits: SandboxLimits | None = None) -> dict:
    """Grade k sampled completions per problem in the sandbox; a sample is correct if it passes
    ALL the problem's tests.

    Returns :func:`~r1kit.eval.metrics.summarize`'s results (``pass@1`` over the k samples,
    unbiased ``pass@k``, ``accuracy``...) plus ``outcomes`` (count of each test outcome:
    ``passed``, ``failed``, ``timeout``, ``no_program``...), ``correct`` (the per-sample flags,
    problem by problem) and ``per_problem``
    (``{"id", "n_samples", "n_correct"}`` each). All runs go through ``pool`` (default: a pool
    with one worker per CPU, closed afterwards).
    """
    if len(problems) != len(completions_per_problem):
        raise ValueError(f"{len(problems)} problems but {len(completions_per_problem)} lists of completions")
    plans: list[list[TestPlan | None]] = []
    for problem, completions in zip(problems, completions_per_problem):
        row = []
        for completion in completions:
            program = program_for(problem, completion)
            row.append(None if program is None else plan_tests(program, problem, limits))
        plans.append(row)
    jobs = [job for row in plans for plan in row if plan is not None for job in plan.jobs]
    own_pool = pool is None
    pool = pool or SandboxPool()
    try:
        results = iter(pool.map(jobs))
    finally:
        if own_pool:
            pool.close()
    correct: list[list[bool]] = []
    outcomes: Counter[str] = Counter()
    for row in plans:
        flags = []
        for plan in row:
            if plan is None:
                report = TestReport(0, 0, "no_program")
            else:
                report = plan.judge([next(results) for _ in plan.jobs])
            outcomes[report.outcome] += 1
            flags.append(report.all_passed)
        correct.append(flags)
    summary = summarize(correct)
    summary["correct"] = correct
    summary["outcomes"] = dict(outcomes)
    summary["per_problem"] = [{"id": p.get("id"), "n_samples": len(c), "n_correct": sum(c)}
                              for p, c in zip(problems, correct)]
    return summary


CODE_STOP = ["\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#", "\n```"]


def evaluate_code(model, tokenizer, problems: list[dict], cfg: EvalConfig, progress: bool = True):
    """The paper's protocol on a code benchmark: K continuations of each prompt, run in the sandbox.

    Prompts are used as they are (HumanEval's prompt is a function header to continue); sampling
    stops at the next top-level statement. Returns ``(samples, results)`` like ``evaluate``.
    """
    problems = problems[: cfg.limit] if cfg.limit else problems
    params = cfg.sampling_params(stop=CODE_STOP)
    engine = as_engine(model, tokenizer, cfg.batch_size * cfg.k)  # a torch model, or any engine
    with tqdm(total=len(problems) * cfg.k, desc="code samples", disable=not progress, mininterval=2) as bar:
        rollouts = engine.generate([p["problem"] for p in problems], params, progress=bar.update)
    completions = [[_cut_stop(r.text) for r in rollouts[i * cfg.k: (i + 1) * cfg.k]] for i in range(len(problems))]
    results = grade_code_samples(problems, completions)
    results.pop("correct")
    samples = [{"id": p["id"], "sample": j, "response": c}
               for p, cs in zip(problems, completions) for j, c in enumerate(cs)]
    return samples, results


def _cut_stop(text: str) -> str:
    """Drop the stop string a sampled continuation ended with (the next top-level statement)."""
    cut = min((text.find(s) for s in CODE_STOP if s in text), default=-1)
    return text[:cut] if cut >= 0 else text
