"""Distillation (``r1kit distill``): teacher traces by rejection sampling, SFT of the student, evaluation.

The three stages are the library's own commands, run one after another into one folder:
``r1kit sample`` (teacher) -> ``OUT/sample``, ``r1kit sft`` (student, on ``OUT/sample/sft.jsonl``)
-> ``OUT/sft`` (student in ``OUT/sft/final``), then the paper's evaluation protocol -> ``OUT/eval``.
``--resume`` resumes whichever stage was interrupted (sampling by prompt, SFT from its newest
checkpoint) and redoes the evaluation. ``summary.json`` records each stage's wall time
(``distill_seconds`` = sampling + SFT: the compute a distilled student costs, teacher excluded).
"""
from __future__ import annotations

import time
from dataclasses import fields, replace
from pathlib import Path

from r1kit.config import ConfigError
from r1kit.data.jsonl import DataError, write_json_atomic
from r1kit.distill.config import DistillConfig, DistillEvalConfig
from r1kit.eval.evaluate import run_eval
from r1kit.models import load_model, load_tokenizer
from r1kit.models.device import resolve_device
from r1kit.runs import check_fresh_run_dir, lock_run, record_changes, resume_changes, write_config
from r1kit.sampling import SampleConfig, run_sample
from r1kit.sft import SFTConfig, run_sft
from r1kit.threads import apply as apply_threads

RECORDS = ["summary.json", "sample", "sft", "eval", "eval-base"]
SET_BY_DISTILL = {"sample": ("model", "data", "out"), "sft": ("model", "data", "out")}


def _check_stage_options(cfg: DistillConfig) -> None:
    """The stage fields that distill sets itself must not be given (they would be ignored)."""
    for stage, cls in (("sample", SampleConfig), ("sft", SFTConfig)):
        defaults = {f.name: getattr(cls(), f.name) for f in fields(cls)}
        for name in SET_BY_DISTILL[stage]:
            if getattr(getattr(cfg, stage), name) != defaults[name]:
                raise ConfigError(f"{stage}.{name}: set by distill (teacher/student, data, out); do not give it")


def stage_configs(cfg: DistillConfig) -> tuple[SampleConfig, SFTConfig]:
    """The sampling and SFT configs of a distillation run."""
    out = Path(cfg.out)
    sample = replace(cfg.sample, model=cfg.teacher, data=cfg.data, out=str(out / "sample"))
    sft = replace(cfg.sft, model=cfg.student, data=str(out / "sample" / "sft.jsonl"), out=str(out / "sft"))
    return sample, sft


def evaluate_model(model_path: str, e: DistillEvalConfig, template: str, out: Path, threads: int = 0,
                   device: str = "auto") -> dict:
    """:func:`r1kit.eval.run_eval` of ``model_path`` on ``device`` (``e``'s unset template:
    ``template``): writes ``out/samples.jsonl`` and ``out/results.json``."""
    apply_threads(threads)
    model = load_model(model_path, device=resolve_device(device))
    return run_eval(model, load_tokenizer(model_path), e.resolved(template=template), out, model_name=model_path)


def run_distill(cfg: DistillConfig, resume: bool = False, overwrite: bool = False, progress: bool = True) -> dict:
    """Sample from the teacher, fine-tune the student, evaluate it; returns the summary."""
    _check_stage_options(cfg)
    out = Path(cfg.out)
    lock = lock_run(out)  # noqa: F841 (held while the distillation runs)
    check_fresh_run_dir(out, RECORDS, resume, overwrite, "distillation")
    record_changes(out, resume_changes(out, cfg, "distillation") if resume else {}, 0)
    write_config(out, cfg)
    sample_cfg, sft_cfg = stage_configs(cfg)
    seconds: dict[str, float] = {}

    if cfg.eval.base:
        t0 = time.time()
        base = evaluate_model(cfg.student, cfg.eval, sample_cfg.template, out / "eval-base", sample_cfg.threads,
                              sample_cfg.device)
        seconds["eval_base"] = round(time.time() - t0, 2)
    t0 = time.time()
    stats = run_sample(sample_cfg, resume=resume and (out / "sample" / "config.json").exists(), progress=progress)
    seconds["sample"] = round(time.time() - t0, 2)
    if stats["kept"] == 0:
        raise DataError(f"{out / 'sample'}: the teacher kept no sample ({stats['sampled']} sampled; "
                        f"rejected: {stats['rejected']}); nothing to distill")
    t0 = time.time()
    sft_summary = run_sft(sft_cfg, resume=resume, progress=progress)
    seconds["sft"] = round(time.time() - t0, 2)
    t0 = time.time()
    results = evaluate_model(sft_summary["final"], cfg.eval, sample_cfg.template, out / "eval", sft_cfg.threads,
                             sft_cfg.device)
    seconds["eval"] = round(time.time() - t0, 2)
    seconds["distill"] = round(seconds["sample"] + seconds["sft"], 2)
    summary = {"teacher": cfg.teacher, "student": cfg.student, "student_final": sft_summary["final"],
               "seconds": seconds, "resumed": resume, "sample": stats, "sft": sft_summary,
               "eval": {k: v for k, v in results.items() if not isinstance(v, (dict, list))}}
    if cfg.eval.base:
        summary["eval_base"] = {k: v for k, v in base.items() if not isinstance(v, (dict, list))}
    write_json_atomic(out / "summary.json", summary)
    return summary
