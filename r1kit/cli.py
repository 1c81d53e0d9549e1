"""The ``r1kit`` command line: one sub-command per stage.

    r1kit base   --out DIR                 build + pre-train the embedded tiny base model
    r1kit eval   --model M --data D ...    the paper's protocol: pass@1 over K samples, cons@K, pass@k
    r1kit grade  --data D --responses R    grade given responses (no model)
    r1kit zero   [--config Y] [k=v ...]    R1-Zero: GRPO with rule rewards on a base model
    r1kit report RUN_DIR                   plots + index.html of a run
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _add_eval(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a model with the paper's protocol")
    p.add_argument("--model", default="tiny", help="HF folder, hub id, or 'tiny' (embedded base)")
    p.add_argument("--data", default="synthetic",
                   help="math500 | aime2024 | gsm8k | synthetic | humaneval (code, run in the sandbox) | "
                        "path to a JSONL/Parquet file")
    p.add_argument("--data-dir", default=None, help="folder of the benchmark files (default ../shared/data)")
    p.add_argument("--k", type=int, default=4, help="samples per problem")
    p.add_argument("--temperature", type=float, default=0.6)
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--template", default="r1_zero", choices=["r1_zero", "chat", "plain"])
    p.add_argument("--batch-size", type=int, default=32, help="problems per sampling batch")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N problems")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--out", default="runs/eval", help="output folder (samples.jsonl, results.json)")


def _add_zero(sub) -> None:
    p = sub.add_parser("zero", help="R1-Zero: GRPO with rule-based rewards straight on a base model")
    p.add_argument("--config", default=None, help="YAML recipe (defaults run without one)")
    p.add_argument("--out", default=None, help="run directory (overrides the recipe's 'out')")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in the run directory")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier run in the run directory")
    p.add_argument("--no-report", action="store_true", help="skip writing the report at the end")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. grpo.beta=0.04 steps=50")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="r1kit", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("base", help="build and pre-train the embedded tiny base model")
    p.add_argument("--out", required=True, help="output HF folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=None, help="pre-training steps (default: the builder's)")
    _add_eval(sub)
    p = sub.add_parser("grade", help="grade a JSONL of {id, response} against a data file")
    p.add_argument("--data", required=True, help="data file or benchmark name with id, problem, answer")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--responses", required=True, help="JSONL of {\"id\": ..., \"response\": ...}")
    p.add_argument("--out", required=True)
    _add_zero(sub)
    p = sub.add_parser("report", help="write RUN_DIR/report/ (PNG plots + index.html)")
    p.add_argument("run_dir")
    return ap


def cmd_base(args) -> None:
    from dataclasses import replace

    from r1kit.models.tiny import TinyModelConfig, build_tiny_base

    cfg = TinyModelConfig(seed=args.seed)
    if args.steps:
        cfg = replace(cfg, steps=args.steps)
    build_tiny_base(args.out, cfg)


def cmd_eval(args) -> None:
    from r1kit.data.benchmarks import load_problems
    from r1kit.eval.evaluate import EvalConfig, evaluate, write_eval
    from r1kit.models import load_model, load_tokenizer

    from r1kit.eval.code import evaluate_code

    problems = load_problems(args.data, args.data_dir, args.limit)
    cfg = EvalConfig(k=args.k, temperature=args.temperature, top_p=args.top_p,
                     max_new_tokens=args.max_new_tokens, template=args.template,
                     batch_size=args.batch_size, seed=args.seed)
    model, tokenizer = load_model(args.model, args.dtype), load_tokenizer(args.model)
    # HumanEval prompts are function headers to continue, not questions for a template
    run = evaluate_code if args.data == "humaneval" else evaluate
    samples, results = run(model, tokenizer, problems, cfg)
    results.update({"model": args.model, "data": args.data, "temperature": args.temperature,
                    "top_p": args.top_p, "max_new_tokens": args.max_new_tokens})
    write_eval(args.out, samples, results)
    print(json.dumps({k: v for k, v in results.items() if not isinstance(v, (dict, list))}, indent=2))


def cmd_grade(args) -> None:
    from r1kit.eval.grade import run_grade

    results = run_grade(args.data, args.responses, args.out, data_dir=args.data_dir)
    print(json.dumps(results, indent=2))


def cmd_zero(args) -> None:
    from r1kit.config import load_config
    from r1kit.grpo.config import ZeroConfig
    from r1kit.grpo.trainer import GRPOTrainer

    overrides = list(args.overrides) + ([f"out={args.out}"] if args.out else [])
    cfg = load_config(ZeroConfig, args.config, overrides)
    summary = GRPOTrainer(cfg, resume=args.resume, overwrite=args.overwrite).train()
    print(json.dumps(summary.get("final_eval") or {}, indent=2, default=str))
    if not args.no_report:
        from r1kit.report import write_report
        print(f"report: {write_report(cfg.out)}")


def cmd_report(args) -> None:
    from r1kit.report import write_report

    print(write_report(args.run_dir))


COMMANDS = {"base": cmd_base, "eval": cmd_eval, "grade": cmd_grade, "zero": cmd_zero, "report": cmd_report}


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from r1kit.config import ConfigError
    from r1kit.data.jsonl import DataError

    try:
        COMMANDS[args.command](args)
    except (ConfigError, DataError, FileNotFoundError) as exc:
        print(f"r1kit {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
