"""The paper's evaluation protocol: K samples per problem, pass@1, cons@K and unbiased pass@k.

``evaluate`` samples K completions per problem (temperature 0.6, top-p 0.95 by default: greedy
decoding repeats itself and varies between checkpoints), extracts each final answer, grades it by
mathematical equivalence and summarises. It also reports the language consistency of the chains
of thought (``language_consistency``: the mean over samples of the share of chain-of-thought words
in the problem's ``language``, default ``en``; :mod:`r1kit.rewards.language`) and the phenomenon
probes of :mod:`r1kit.eval.probes` (accuracy with / without reflection, real fixes, length of right
and wrong answers, language mixing). :func:`run_eval` is the one driver: ``r1kit eval``, the
trainers' periodic evaluation, distillation and the pipeline all call it with an
:class:`r1kit.eval.config.EvalConfig`.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from tqdm.auto import tqdm

from r1kit.data.benchmarks import load_problems
from r1kit.data.jsonl import DataError, write_json_atomic, write_jsonl
from r1kit.eval.code import evaluate_code, grade_code_samples
from r1kit.eval.config import DEFAULT_REFLECTION_PHRASES, EvalConfig
from r1kit.eval.metrics import summarize
from r1kit.environments import make_environment, prompt_for
from r1kit.eval.probes import consistency_or_none, has_reflection, phenomena, tool_probes
from r1kit.rewards import REWARD_FUNCS
from r1kit.rewards.code import extract_program
from r1kit.rewards.math import answers_equivalent, extract_answer
from r1kit.rollout.engines import as_engine

def grade_math(samples: list[dict], problems: list[dict], k: int) -> None:
    """Extract each final answer and compare it with the reference by mathematical equivalence."""
    by_id = {p["id"]: p for p in problems}
    for s in samples:
        s["extracted"] = extract_answer(s["response"])
        s["correct"] = s["extracted"] is not None and answers_equivalent(s["extracted"], by_id[s["id"]]["answer"])


def grade_code(samples: list[dict], problems: list[dict], k: int) -> None:
    """Run each program against the problem's tests in the sandbox; correct = all tests pass."""
    flags = grade_code_samples(problems, [[s["response"] for s in samples[i * k:(i + 1) * k]]
                                          for i in range(len(problems))])["correct"]
    for s, correct in zip(samples, (f for row in flags for f in row)):
        s["extracted"], s["correct"] = extract_program(s["response"]), bool(correct)


def grade_countdown(samples: list[dict], problems: list[dict], k: int) -> None:
    """Countdown problems (``task: countdown``) by their rule, not by the value of the answer: it must
    use the problem's numbers once each and equal the target (``accuracy_countdown``)."""
    by_id = {p["id"]: p for p in problems}
    for s in samples:
        s["extracted"] = extract_answer(s["response"])
        s["correct"] = REWARD_FUNCS["accuracy_countdown"](s["response"], by_id[s["id"]]) == 1.0


def grader_for(problems: list[dict]):
    """Code problems carry tests (``tests`` cases or a ``test`` program); Countdown problems say so
    (``task: countdown``); the rest are math."""
    if problems and ("tests" in problems[0] or "test" in problems[0]):
        return grade_code
    return grade_countdown if problems and problems[0].get("task") == "countdown" else grade_math


def _same(answer: str, other: str) -> bool:
    return " ".join(answer.split()) == " ".join(other.split())


VOTES = {grade_math: "equivalent", grade_countdown: "same"}
"""How the graders' answers vote for cons@k: ``equivalent``, grouped by mathematical equivalence and
the majority checked against the reference; ``same``, grouped by identical text (two expressions
worth the target are not the same answer) and the majority's own grade; code answers do not vote."""


def eval_problems(cfg: EvalConfig) -> list[dict]:
    """The problems ``cfg`` evaluates on (``data``, ``data_dir``, ``limit``; ``language`` set on each
    when given). DataError when there are none."""
    problems = load_problems(cfg.data, cfg.data_dir, cfg.limit)
    if not problems:
        raise DataError(f"{cfg.data}: no problems to evaluate")
    return [{**p, "language": cfg.language} for p in problems] if cfg.language else problems


def run_eval(model, tokenizer, cfg: EvalConfig, out: str | Path | None = None, problems: list[dict] | None = None,
             progress: bool = True, model_name: str | None = None) -> dict:
    """The one evaluation driver: sample ``cfg.k`` completions of every problem from ``model`` (a
    torch model, or a :class:`r1kit.rollout.engines.RolloutEngine`: a vLLM server, an endpoint), grade, summarise;
    with ``out``, write ``samples.jsonl`` and ``results.json`` there (the results then also
    record ``model_name``, ``data`` and the decoding options). Returns the results.

    ``cfg``'s unset fields take r1kit's defaults (a trainer resolves them to its run's first,
    :meth:`EvalConfig.resolved`); ``problems``: the already loaded ``eval_problems(cfg)`` (a trainer loads them once). HumanEval prompts are function
    headers to continue, not questions for a template: they go through :func:`evaluate_code`.
    """
    problems = eval_problems(cfg) if problems is None else problems
    run = evaluate_code if cfg.data == "humaneval" else evaluate
    samples, results = run(model, tokenizer, problems, cfg, progress=progress)
    if out is not None:  # a standalone evaluation's record says what it ran
        results.update({**({"model": model_name} if model_name else {}), "data": cfg.data,
                        "temperature": cfg.temperature, "top_p": cfg.top_p, "max_new_tokens": cfg.max_new_tokens})
        write_eval(out, samples, results)
    return results


def evaluate(model, tokenizer, problems: list[dict], cfg: EvalConfig, progress: bool = True):
    """Sample, grade and summarise. Returns ``(samples, results)``."""
    cfg = cfg.resolved()
    problems = problems[: cfg.limit] if cfg.limit else problems
    samples, start = [], time.time()
    environment = make_environment(cfg.environment or "none", cfg.tools)  # None: single-turn
    prompts = [prompt_for(environment, p, cfg.template, tokenizer) for p in problems]
    # one continuous batch; a problem's samples depend on the seed and its index only (row_seeds)
    engine = as_engine(model, tokenizer, cfg.batch_size * cfg.k)  # a torch model, or any engine
    with tqdm(total=len(problems) * cfg.k, desc="eval samples", disable=not progress, mininterval=2) as bar:
        rollouts = engine.generate(prompts, cfg.sampling_params(), progress=bar.update, environment=environment,
                                   examples=problems if environment else None)
    for r in rollouts:
        ex = problems[r.prompt_index]
        episode = ({"tool_calls": r.tool_calls, "tool_errors": r.tool_errors, "turns": r.turns}
                   if environment else {})
        samples.append({
            "id": ex["id"], "sample": len(samples) % cfg.k, "response": r.text, **episode,
            "num_tokens": r.policy_tokens, "finish_reason": r.finish_reason,
            "format": REWARD_FUNCS["format"](r.text, ex) if cfg.template == "r1_zero" else None,
            "reflection": has_reflection(r.text, cfg.reflection_phrases),
            "language_consistency": consistency_or_none(r.text, ex),
        })
    grader = grader_for(problems)
    grader(samples, problems, cfg.k)
    results = summarize_samples(samples, problems, cfg.k, votes=VOTES.get(grader), phrases=cfg.reflection_phrases)
    results["seconds"] = round(time.time() - start, 2)
    return samples, results


def summarize_samples(samples: list[dict], problems: list[dict], k: int, votes: str | None = "equivalent",
                      phrases=DEFAULT_REFLECTION_PHRASES) -> dict:
    """pass@1, pass@k (and cons@k when answers can vote: ``votes`` as in :data:`VOTES`) plus mean
    length, format, reflection and the phenomenon probes (:mod:`r1kit.eval.probes`)."""
    by_id: dict[str, list[dict]] = {}
    for s in samples:
        by_id.setdefault(s["id"], []).append(s)
    ordered = [by_id[p["id"]] for p in problems]
    results = summarize([[s["correct"] for s in g] for g in ordered],
                        [[s["extracted"] for s in g] for g in ordered] if votes else None,
                        [p["answer"] for p in problems] if votes == "equivalent" else None,
                        equivalent=_same if votes == "same" else answers_equivalent)
    n = len(samples)
    results["k"] = k
    results["mean_length"] = sum(s["num_tokens"] for s in samples) / n
    results["truncated_frac"] = sum(s["finish_reason"] == "length" for s in samples) / n
    results["reflection_rate"] = sum(s["reflection"] for s in samples) / n
    consistency = [s["language_consistency"] for s in samples if s.get("language_consistency") is not None]
    if consistency:
        results["language_consistency"] = sum(consistency) / len(consistency)
    if samples and samples[0]["format"] is not None:
        results["format_rate"] = sum(s["format"] for s in samples) / n
    results.update(phenomena([s["response"] for s in samples], [s["correct"] for s in samples],
                             [s["num_tokens"] for s in samples], phrases,
                             [s.get("language_consistency") for s in samples]))
    if samples and "tool_calls" in samples[0]:  # multi-turn episodes
        results.update(tool_probes([s["tool_calls"] for s in samples], [s["tool_errors"] for s in samples],
                                   [s["turns"] for s in samples], [s["correct"] for s in samples]))
    return results


def write_eval(out_dir: str | Path, samples: list[dict], results: dict) -> None:
    """``samples.jsonl``, then ``results.json`` (last: it marks a finished evaluation)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "samples.jsonl.tmp", samples)
    os.replace(out / "samples.jsonl.tmp", out / "samples.jsonl")
    write_json_atomic(out / "results.json", results)  # last: results.json marks a finished evaluation
