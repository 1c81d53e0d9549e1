"""The paper's evaluation protocol: K samples per problem, pass@1, cons@K and unbiased pass@k.

``evaluate`` samples K completions per problem (temperature 0.6, top-p 0.95 by default: greedy
decoding repeats itself and varies between checkpoints), extracts each final answer, grades it by
mathematical equivalence and summarises. It is used by ``r1kit eval`` and by the trainers'
periodic evaluation.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from r1kit.data.jsonl import write_jsonl
from r1kit.eval.metrics import summarize
from r1kit.prompts import build_prompt
from r1kit.rewards import REWARD_FUNCS
from r1kit.rewards.math import answers_equivalent, extract_answer
from r1kit.rollout import SamplingParams, sample

DEFAULT_REFLECTION_PHRASES = ("wait", "let me check", "verify", "re-evaluate", "double-check")


@dataclass
class EvalConfig:
    """Options of one evaluation.

    k: samples per problem. temperature/top_p: the paper's 0.6 / 0.95. max_new_tokens: completion
    cap. template: prompt template (``r1_zero``, ``chat``, ``plain``). batch_size: problems per
    sampling call (each expands to ``k`` rows). limit: evaluate only the first N problems.
    seed: sampling seed. reflection_phrases: phrases that count as self-verification.
    """

    k: int = 4
    temperature: float = 0.6
    top_p: float = 0.95
    max_new_tokens: int = 256
    template: str = "r1_zero"
    batch_size: int = 32
    limit: int | None = None
    seed: int = 0
    reflection_phrases: list[str] = field(default_factory=lambda: list(DEFAULT_REFLECTION_PHRASES))


def has_reflection(text: str, phrases) -> bool:
    """True when ``text`` contains any self-verification phrase (case-insensitive, whole words)."""
    lowered = text.lower()
    return any(re.search(rf"\b{re.escape(p.lower())}\b", lowered) for p in phrases)


def evaluate(model, tokenizer, problems: list[dict], cfg: EvalConfig, progress: bool = True):
    """Sample, grade and summarise. Returns ``(samples, results)``."""
    problems = problems[: cfg.limit] if cfg.limit else problems
    samples, start = [], time.time()
    bar = tqdm(total=len(problems) * cfg.k, desc="eval samples", disable=not progress, mininterval=2)
    for lo in range(0, len(problems), cfg.batch_size):
        chunk = problems[lo: lo + cfg.batch_size]
        prompts = [build_prompt(p["problem"], cfg.template, tokenizer) for p in chunk]
        params = SamplingParams(n=cfg.k, temperature=cfg.temperature, top_p=cfg.top_p,
                                max_new_tokens=cfg.max_new_tokens, seed=cfg.seed + lo)
        for r in sample(model, tokenizer, prompts, params):
            ex = chunk[r.prompt_index]
            extracted = extract_answer(r.text)
            correct = extracted is not None and answers_equivalent(extracted, ex["answer"])
            samples.append({
                "id": ex["id"], "sample": len(samples) % cfg.k, "response": r.text,
                "extracted": extracted, "correct": bool(correct), "num_tokens": len(r.token_ids),
                "finish_reason": r.finish_reason,
                "format": REWARD_FUNCS["format"](r.text, ex) if cfg.template == "r1_zero" else None,
                "reflection": has_reflection(r.text, cfg.reflection_phrases),
            })
        bar.update(len(chunk) * cfg.k)
    bar.close()
    results = summarize_samples(samples, problems, cfg.k)
    results["seconds"] = round(time.time() - start, 2)
    return samples, results


def summarize_samples(samples: list[dict], problems: list[dict], k: int) -> dict:
    """pass@1, cons@k, pass@k plus mean length, format and reflection rates."""
    by_id: dict[str, list[dict]] = {}
    for s in samples:
        by_id.setdefault(s["id"], []).append(s)
    ordered = [by_id[p["id"]] for p in problems]
    results = summarize([[s["correct"] for s in g] for g in ordered],
                        [[s["extracted"] for s in g] for g in ordered],
                        [p["answer"] for p in problems])
    n = len(samples)
    results["k"] = k
    results["mean_length"] = sum(s["num_tokens"] for s in samples) / n
    results["truncated_frac"] = sum(s["finish_reason"] == "length" for s in samples) / n
    results["reflection_rate"] = sum(s["reflection"] for s in samples) / n
    if samples and samples[0]["format"] is not None:
        results["format_rate"] = sum(s["format"] for s in samples) / n
    return results


def write_eval(out_dir: str | Path, samples: list[dict], results: dict) -> None:
    import json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "samples.jsonl", samples)
    (out / "results.json").write_text(json.dumps(results, indent=2))
