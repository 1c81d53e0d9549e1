"""The pipeline's ``evaluate`` stage: every model of the run on the held-out sets, and the table.

Reasoning (the held-out synthetic set or ``evaluate.reasoning.data``), with the paper's protocol
(``r1kit.eval.evaluate``: k samples at T 0.6, top-p 0.95): pass@1, cons@k, format rate, mean
length in tokens and the language consistency of the chains of thought (share of their words in
the pipeline's ``language``). General (r1kit's held-out general prompts): the share of responses
whose summary is helpful and of responses that are rude (rule checks of ``r1kit.data.general``;
the reward models never see these), and the reward models' mean scores.

Each model's results go to ``evaluate/<model>/results.json`` (a resumed stage skips the models
already done) and the whole table to ``evaluate/table.md`` and ``evaluate/table.json``.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from r1kit.data import general
from r1kit.data.jsonl import write_json_atomic, write_jsonl
from r1kit.eval.evaluate import run_eval
from r1kit.models import load_model, load_tokenizer
from r1kit.models.device import resolve_device
from r1kit.prompts import build_prompt
from r1kit.data.language import language_consistency
from r1kit.rewards.config import RewardModelConfig
from r1kit.rewards.reward_model import load_reward_model
from r1kit.rollout import sample
from r1kit.pipeline.runner import StageContext, read_json
from r1kit.threads import apply as apply_threads

LABELS = {"base": "base", "r1_zero": "R1-Zero", "cold_start": "cold start (SFT)", "reasoning_rl": "reasoning RL",
          "sft": "rejection-sampling SFT (from base)", "all_scenario_rl": "all-scenario RL (final R1)"}


def models_of(ctx: StageContext) -> list[tuple[str, str, str]]:
    """``(key, label, model path)`` of every model the run made, the base first."""
    found = [("base", "base", ctx.cfg.base)]
    for stage in ("r1_zero", "cold_start", "reasoning_rl", "sft", "all_scenario_rl"):
        if stage in ctx.inputs:
            found.append((stage, LABELS[stage], ctx.inputs[stage]["model"]))
    for student, info in (ctx.inputs.get("distill") or {}).get("students", {}).items():
        found.append((f"distill-{info['folder']}", f"distilled into {student}", info["model"]))
    return found


def reasoning_eval(model, tokenizer, ctx: StageContext, out: Path) -> dict:
    """:func:`r1kit.eval.run_eval` on ``evaluate.reasoning`` (template and language: the run's)."""
    reasoning = ctx.cfg.evaluate.reasoning
    cfg = replace(reasoning, language=reasoning.language or ctx.cfg.language).resolved(template=ctx.cfg.template)
    return run_eval(model, tokenizer, cfg, out, progress=ctx.progress)


def general_eval(model, tokenizer, ctx: StageContext, out: Path) -> dict:
    """Helpful and rude shares (rules) and mean reward-model scores on the held-out general prompts."""
    eval_cfg = ctx.cfg.evaluate
    rows = general.prompts(eval_cfg.general_limit, "test")
    params = eval_cfg.reasoning.sampling_params()  # the reasoning evaluation's decoding options
    rollouts = sample(model, tokenizer, [build_prompt(r["problem"], ctx.cfg.template, tokenizer) for r in rows], params)
    samples = []
    for r in rollouts:
        row = rows[r.prompt_index]
        samples.append({"id": row["id"], "response": r.text, "helpful": general.helpful(r.text, row["number"]),
                        "rude": general.rude(r.text),
                        "language_consistency": language_consistency(r.text, {"language": ctx.cfg.language})})
    results = {"n_prompts": len(rows), "n_responses": len(samples),
               "helpful_rate": sum(s["helpful"] for s in samples) / len(samples),
               "rude_rate": sum(s["rude"] for s in samples) / len(samples)}
    for aspect, info in (ctx.inputs.get("reward_models") or {}).items():
        rm = load_reward_model(RewardModelConfig(path=info["path"], part=info["part"],
                                                 max_length=ctx.cfg.reward_models.max_length))
        scores = [rm.score([rows[r.prompt_index]["problem"]], [r.text])[0] for r in rollouts]
        results[f"rm_{aspect}"] = sum(scores) / len(scores)
    write_jsonl(out / "samples.jsonl", samples)
    return results


def evaluate_one(key: str, path: str, ctx: StageContext) -> dict:
    """Evaluate one model into ``evaluate/<key>/`` (reasoning + general)."""
    out = ctx.dir / key
    model, tokenizer = load_model(path, device=resolve_device(ctx.cfg.device)), load_tokenizer(path)
    result = {"model": path, "reasoning": reasoning_eval(model, tokenizer, ctx, out / "reasoning")}
    if ctx.cfg.evaluate.general_limit:
        result["general"] = general_eval(model, tokenizer, ctx, out / "general")
    write_json_atomic(out / "results.json", result)
    return result


def table_markdown(rows: list[dict], k: int) -> str:
    """The comparison table (paper-style): one row per model."""
    head = (f"| model | pass@1 | cons@{k} | language consistency | format rate | mean length (tokens) "
            "| general: helpful | general: rude |")
    lines = [head, "| --- " * 8 + "|"]
    for r in rows:
        rs, g = r["reasoning"], r.get("general") or {}
        pct = (lambda v: f"{100 * v:.1f}%" if v is not None else "–")
        lines.append(f"| {r['label']} | {pct(rs.get('pass@1'))} | {pct(rs.get(f'cons@{k}'))} | "
                     f"{pct(rs.get('language_consistency'))} | {pct(rs.get('format_rate'))} | "
                     f"{rs['mean_length']:.1f} | {pct(g.get('helpful_rate'))} | {pct(g.get('rude_rate'))} |")
    return "\n".join(lines) + "\n"


def evaluate_models(ctx: StageContext) -> dict:
    """Evaluate every model of the run (skipping those a resumed stage already did); write the table."""
    apply_threads(ctx.cfg.threads)
    rows = []
    for key, label, path in models_of(ctx):
        done = read_json(ctx.dir / key / "results.json") if ctx.resume else None
        result = done if done and done.get("model") == path else evaluate_one(key, path, ctx)
        rows.append({"key": key, "label": label, **result})
        print(f"[evaluate] {label}: pass@1 {result['reasoning']['pass@1']:.3f}, language consistency "
              f"{result['reasoning'].get('language_consistency', float('nan')):.3f}")
    k = ctx.cfg.evaluate.reasoning.k
    write_json_atomic(ctx.dir / "table.json", rows)
    (ctx.dir / "table.md").write_text(table_markdown(rows, k))
    return {"table": str(ctx.dir / "table.md"), "models": [r["key"] for r in rows]}
