"""The R1 pipeline's stages: each builds its trainer's config from the recipe and runs the library's
own trainer (``r1kit sft``, ``r1kit zero``'s GRPO, ``r1kit sample``, ``r1kit distill``); none
reimplements training. Each returns its outputs (``{"model": folder, ...}``), which the runner
records in the stage's completion marker and hands to the stages that depend on it.

Graph (``deps``)::

    cold_start -> reasoning_rl -> rejection_sampling -> sft --+
                                       reward_models ---------+-> all_scenario_rl -> distill
    r1_zero (baseline, from the base)
    evaluate (every model above)
"""
from __future__ import annotations

import json
import random
import re
from dataclasses import replace
from pathlib import Path

from r1kit.config import ConfigError
from r1kit.data import general, synthetic
from r1kit.data.benchmarks import load_problems
from r1kit.data.cold_start import ColdStartConfig, run_cold_start, sft_row
from r1kit.data.jsonl import DataError, read_rows, write_jsonl
from r1kit.data.readability import ReadabilityConfig
from r1kit.distill import DistillConfig, DistillEvalConfig, run_distill
from r1kit.grpo.trainer import GRPOTrainer
from r1kit.pipeline.config import PipelineConfig
from r1kit.pipeline.evaluate import evaluate_models
from r1kit.pipeline.reward_models import train_reward_model
from r1kit.pipeline.runner import Stage, StageContext
from r1kit.rewards.config import RewardModelConfig
from r1kit.rewards.reward_model import META_FILE
from r1kit.runs import latest_checkpoint
from r1kit.sampling import run_sample
from r1kit.sft import run_sft
from r1kit.sft.data import row_kind

MODEL_STAGES = ("r1_zero", "cold_start", "reasoning_rl", "sft", "all_scenario_rl")
FORMAT_FOR_TEMPLATE = {"r1_zero": "format", "chat": "format_think", "plain": None}


# ---- shared helpers ------------------------------------------------------------------------------
def reasoning_prompts(cfg: PipelineConfig, n: int) -> list[dict]:
    """Reasoning prompt rows ``{id, problem, answer, kind: reasoning, language}`` (first ``n``;
    synthetic: ``n`` training problems drawn with the pipeline's seed)."""
    if cfg.reasoning_data == "synthetic":
        rows = synthetic.train_set(n, seed=synthetic.TRAIN_SEED + cfg.seed)
    else:
        rows = load_problems(cfg.reasoning_data)[:n]
    keep = ("id", "problem", "answer", "tests", "test")
    return [{**{k: r[k] for k in keep if k in r}, "kind": "reasoning", "language": cfg.language} for r in rows]


def write_prompts(path: Path, rows: list[dict]) -> str:
    write_jsonl(path, rows)
    return str(path)


def rule_rewards(cfg: PipelineConfig, format_weight: float, language_weight: float) -> dict[str, float]:
    """accuracy 1 + format_weight * format (the template's) + λ * language consistency; zero weights dropped."""
    rewards = {"accuracy_math": 1.0}
    fmt = FORMAT_FOR_TEMPLATE[cfg.template]
    if fmt and format_weight:
        rewards[fmt] = format_weight
    if language_weight:
        rewards["language_consistency"] = language_weight
    return rewards


def _threads(cfg: PipelineConfig, value: int) -> int:
    return value or cfg.threads


def _device(cfg: PipelineConfig, value: str) -> str:
    """A stage's own device, or the pipeline's when the stage leaves it at ``auto``."""
    return cfg.device if value == "auto" else value


def _run_grpo(ctx: StageContext, grpo, **fields) -> dict:
    cfg = ctx.cfg
    run = replace(grpo, out=str(ctx.dir / "grpo"), template=cfg.template, seed=cfg.seed,
                  threads=_threads(cfg, grpo.threads), device=_device(cfg, grpo.device), **fields)
    summary = GRPOTrainer(run, resume=ctx.resume, progress=ctx.progress).train()
    return {"model": str(latest_checkpoint(Path(run.out))), "steps": summary["steps"]}


def _run_sft(ctx: StageContext, sft, model: str, data: str) -> dict:
    cfg = ctx.cfg
    run = replace(sft, model=model, data=data, out=str(ctx.dir / "sft"), seed=cfg.seed, threads=_threads(cfg, sft.threads),
                  device=_device(cfg, sft.device))
    summary = run_sft(run, resume=ctx.resume, progress=ctx.progress)
    return {"model": summary["final"], "steps": summary["steps"], "final_loss": summary["final_loss"]}


# ---- the stages ----------------------------------------------------------------------------------
def cold_start_rows(cfg: PipelineConfig) -> list[dict]:
    """Readable cold-start SFT rows: step-by-step (some self-checking) English chains of thought."""
    style = synthetic.SyntheticConfig(style_weights=(0.0, 0.8, 0.2), worded=True)
    examples = synthetic.train_set(cfg.cold_start.size, seed=synthetic.TRAIN_SEED + cfg.seed + 17, cfg=style)
    return [sft_row(ex["id"], ex["problem"], ex["solution"], cfg.template, "prompt_completion",
                    answer=ex["answer"], language=cfg.language) for ex in examples]


def run_cold_start_stage(ctx: StageContext) -> dict:
    """SFT of the base on readable chains of thought (r1kit's own, or a user file via ``r1kit cold-start``)."""
    cfg = ctx.cfg
    if cfg.cold_start.data == "synthetic":
        rows = cold_start_rows(cfg)
        data = ctx.dir / "data.jsonl"
        write_jsonl(data, rows)
    else:
        if cfg.template not in ("r1_zero", "plain"):
            raise ConfigError(f"cold_start.data: a file is formatted for the r1_zero or plain template, not {cfg.template}")
        run_cold_start(ColdStartConfig(data=cfg.cold_start.data, out=str(ctx.dir / "cold-start"), template=cfg.template,
                                       readability=ReadabilityConfig(language=cfg.language)))
        data = ctx.dir / "cold-start" / "sft.jsonl"
        rows = read_rows(data)
        if not rows:
            raise DataError(f"{cfg.cold_start.data}: no readable row left for the cold start")
    return {**_run_sft(ctx, cfg.cold_start.sft, cfg.base, str(data)), "data": str(data), "rows": len(rows)}


def run_reasoning_rl_stage(ctx: StageContext) -> dict:
    """GRPO from the cold-start model: accuracy + format + λ language consistency."""
    cfg, stage = ctx.cfg, ctx.cfg.reasoning_rl
    prompts = write_prompts(ctx.dir / "prompts.jsonl", reasoning_prompts(cfg, stage.grpo.train_size))
    return _run_grpo(ctx, stage.grpo, model=ctx.inputs["cold_start"]["model"], data=prompts,
                     rewards=rule_rewards(cfg, stage.format_weight, stage.language_weight))


def non_reasoning_rows(cfg: PipelineConfig) -> list[dict]:
    """The non-reasoning SFT rows of ``rejection_sampling.non_reasoning_data``."""
    spec = cfg.rejection_sampling.non_reasoning_data
    if not spec:
        return []
    if spec == "synthetic_general":
        return general.sft_rows(cfg.rejection_sampling.non_reasoning_size, seed=general.TRAIN_SEED + cfg.seed)
    rows = read_rows(spec)
    for i, row in enumerate(rows):
        row_kind(row, f"{spec}:{i + 1}")
    return rows


def run_rejection_sampling_stage(ctx: StageContext) -> dict:
    """Rejection sampling from the reasoning-RL model (correct + readable), plus non-reasoning data."""
    cfg, stage = ctx.cfg, ctx.cfg.rejection_sampling
    prompts = write_prompts(ctx.dir / "prompts.jsonl", reasoning_prompts(cfg, stage.sample.train_size))
    run = replace(stage.sample, model=ctx.inputs["reasoning_rl"]["model"], data=prompts, out=str(ctx.dir / "sample"),
                  template=cfg.template, seed=cfg.seed, threads=_threads(cfg, stage.sample.threads),
                  device=_device(cfg, stage.sample.device))
    stats = run_sample(run, resume=ctx.resume and (ctx.dir / "sample" / "config.json").exists(), progress=ctx.progress)
    reasoning = read_rows(ctx.dir / "sample" / "sft.jsonl") if stats["kept"] else []
    if not reasoning:
        raise DataError(f"{ctx.dir / 'sample'}: no sample kept ({stats['sampled']} sampled; rejected: "
                        f"{stats['rejected']}); nothing to fine-tune on")
    extra = non_reasoning_rows(cfg)
    data = ctx.dir / "sft_data.jsonl"
    write_jsonl(data, reasoning + extra)
    return {"data": str(data), "reasoning_rows": len(reasoning), "non_reasoning_rows": len(extra),
            "sampled": stats["sampled"], "kept": stats["kept"], "rejected": stats["rejected"]}


def run_sft_stage(ctx: StageContext) -> dict:
    """SFT of the *base* model on the rejection-sampled + non-reasoning data."""
    cfg = ctx.cfg
    return _run_sft(ctx, cfg.sft.sft, cfg.base, ctx.inputs["rejection_sampling"]["data"])


ASPECT_PART = {"helpfulness": "summary", "harmlessness": "whole"}


def run_reward_models_stage(ctx: StageContext) -> dict:
    """The two preference reward models: given paths, or tiny Bradley-Terry models trained here."""
    cfg, stage = ctx.cfg, ctx.cfg.reward_models
    outputs = {}
    for aspect, part in ASPECT_PART.items():
        spec = getattr(stage, aspect)
        if spec != "train":
            if spec.startswith((".", "/", "~")) and not Path(spec).expanduser().exists():
                raise ConfigError(f"reward_models.{aspect}: {spec} not found")
            outputs[aspect] = {"path": spec, "part": part}
            continue
        folder = ctx.dir / aspect
        meta_path = folder / META_FILE
        if not meta_path.exists():  # a model finished before an interruption is kept
            pairs = general.preference_pairs(aspect, stage.train.pairs, seed=general.TRAIN_SEED + cfg.seed)
            write_jsonl(ctx.dir / f"{aspect}_pairs.jsonl", pairs)
            train_reward_model(pairs, folder, replace(stage.train, tokenizer=stage.train.tokenizer or cfg.base, seed=cfg.seed),
                               part=part, progress=ctx.progress)
        meta = json.loads(meta_path.read_text())
        outputs[aspect] = {"path": str(folder), "part": part, "test_pair_accuracy": meta["test_pair_accuracy"]}
    return outputs


def all_scenario_prompts(cfg: PipelineConfig) -> list[dict]:
    """The all-scenario RL prompt pool: reasoning and general prompts, shuffled with the seed."""
    stage = cfg.all_scenario_rl
    n_general = round(stage.prompts * stage.general_fraction)
    rows = reasoning_prompts(cfg, stage.prompts - n_general)
    if stage.general_data == "synthetic_general":
        extra = general.prompts(n_general, "train", seed=general.TRAIN_SEED + cfg.seed)
    else:
        extra = read_rows(stage.general_data)[:n_general]
        for i, row in enumerate(extra):
            if row.get("id") is None or row.get("problem") is None:
                raise DataError(f"{stage.general_data}:{i + 1}: a general prompt needs 'id' and 'problem'")
    # general rows carry a reference in 'answer' (the GRPO loader needs the field; no rule grades it)
    rows += [{**r, "kind": "general", "answer": r.get("answer") or r.get("reference") or "-",
              "language": cfg.language} for r in extra]
    random.Random(cfg.seed).shuffle(rows)
    return rows


def run_all_scenario_rl_stage(ctx: StageContext) -> dict:
    """GRPO from the SFT model over reasoning (rule rewards) and general (reward models) prompts."""
    cfg, stage = ctx.cfg, ctx.cfg.all_scenario_rl
    prompts = write_prompts(ctx.dir / "prompts.jsonl", all_scenario_prompts(cfg))
    rms = ctx.inputs["reward_models"]
    reward_models = {aspect: RewardModelConfig(path=rms[aspect]["path"], part=rms[aspect]["part"],
                                               max_length=cfg.reward_models.max_length) for aspect in ASPECT_PART}
    general_weights = {"helpfulness": stage.helpfulness_weight, "harmlessness": stage.harmlessness_weight}
    fmt = FORMAT_FOR_TEMPLATE[cfg.template]
    if fmt and stage.format_weight:
        general_weights[fmt] = stage.format_weight
    return _run_grpo(ctx, stage.grpo, model=ctx.inputs["sft"]["model"], data=prompts,
                     rewards=rule_rewards(cfg, stage.format_weight, stage.language_weight),
                     rewards_by_kind={"general": {k: w for k, w in general_weights.items() if w}},
                     reward_models=reward_models)


def student_folder(student: str) -> str:
    """A folder name for a student model name or path."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", student.strip("/")).strip("_.") or "student"


def run_distill_stage(ctx: StageContext) -> dict:
    """``r1kit distill`` of the final model into each student (a finished student is not redone)."""
    cfg, stage = ctx.cfg, ctx.cfg.distill
    prompts = write_prompts(ctx.dir / "prompts.jsonl", reasoning_prompts(cfg, stage.sample.train_size))
    students = {}
    for student in stage.students:
        out = ctx.dir / student_folder(student)
        if not (out / "summary.json").exists():
            run = DistillConfig(teacher=ctx.inputs["all_scenario_rl"]["model"], student=student, data=prompts,
                                out=str(out), sample=replace(stage.sample, template=cfg.template, seed=cfg.seed,
                                                             threads=_threads(cfg, stage.sample.threads),
                                                             device=_device(cfg, stage.sample.device)),
                                sft=replace(stage.sft, seed=cfg.seed, threads=_threads(cfg, stage.sft.threads),
                                            device=_device(cfg, stage.sft.device)),
                                eval=DistillEvalConfig(**vars(cfg.evaluate.reasoning)))
            run_distill(run, resume=(out / "config.json").exists(), progress=ctx.progress)
        summary = json.loads((out / "summary.json").read_text())
        students[student] = {"model": summary["student_final"], "folder": out.name}
    return {"students": students}


def run_r1_zero_stage(ctx: StageContext) -> dict:
    """The R1-Zero baseline: GRPO straight on the base with its own rewards (accuracy + format)."""
    cfg, grpo = ctx.cfg, ctx.cfg.r1_zero.grpo
    prompts = write_prompts(ctx.dir / "prompts.jsonl", reasoning_prompts(cfg, grpo.train_size))
    return _run_grpo(ctx, grpo, model=cfg.base, data=prompts)


def run_evaluate_stage(ctx: StageContext) -> dict:
    return evaluate_models(ctx)


def enabled_distill(cfg: PipelineConfig) -> bool:
    return bool(cfg.distill.students)


STAGES = [
    Stage("cold_start", (), run_cold_start_stage),
    Stage("reasoning_rl", ("cold_start",), run_reasoning_rl_stage),
    Stage("rejection_sampling", ("reasoning_rl",), run_rejection_sampling_stage),
    Stage("sft", ("rejection_sampling",), run_sft_stage),
    Stage("reward_models", (), run_reward_models_stage),
    Stage("all_scenario_rl", ("sft", "reward_models"), run_all_scenario_rl_stage),
    Stage("distill", ("all_scenario_rl",), run_distill_stage, enabled_distill),
    Stage("r1_zero", (), run_r1_zero_stage, lambda cfg: cfg.r1_zero.enabled),
    Stage("evaluate", (*MODEL_STAGES, "distill", "reward_models"), run_evaluate_stage,
          lambda cfg: cfg.evaluate.enabled),
]
"""The R1 recipe's stages, in run order (see the module docstring for the graph)."""
