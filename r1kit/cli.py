"""The ``r1kit`` command line: one sub-command per stage, each a row of the COMMANDS table.

Commands with a config (every one that trains, samples or evaluates) take --config RECIPE.yaml and
key=value overrides anywhere after the command; `r1kit config COMMAND` lists their options. Errors
exit with status 2 and a message naming the bad option or file; Ctrl-C exits with 130 after saving
what it safely can.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from r1kit import __version__

# Each command imports what it runs inside its function: `r1kit --help`, `r1kit config` and option
# errors answer without loading torch and transformers (seconds of start-up).
from r1kit.config import ConfigError
from r1kit.data.jsonl import DataError


def _eval_arguments(p) -> None:
    for flag, kind, help_ in (("--model", str, "HF folder, hub id, 'tiny' or 'smollm2-135m'"),
                              ("--data", str, "benchmark name, 'synthetic' or a JSONL/JSON/Parquet file"),
                              ("--data-dir", str, "folder of the benchmark files"),
                              ("--k", int, "samples per problem"), ("--temperature", float, None),
                              ("--top-p", float, None), ("--max-new-tokens", int, None),
                              ("--template", str, None), ("--batch-size", int, "problems per sampling batch"),
                              ("--limit", int, "evaluate only the first N problems"), ("--seed", int, None),
                              ("--dtype", str, None), ("--device", str, "auto | cpu | cuda | cuda:N"),
                              ("--engine", str, "torch | vllm | openai"),
                              ("--endpoint", str, "evaluate the model an OpenAI-compatible endpoint serves: its base "
                                                  "URL (implies engine=openai; endpoint.url)"),
                              ("--endpoint-model", str, "the model name the endpoint serves (endpoint.model)")):
        p.add_argument(flag, type=kind, default=None, help=(help_ or "") + " (alias of the config key)")
    p.add_argument("--config", default=None, help="YAML recipe (defaults run without one)")
    p.add_argument("--out", default=None, help="output folder (samples.jsonl, results.json)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier evaluation in --out")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. k=8 data=gsm8k limit=100")


EVAL_FLAGS = {name: name for name in ("model", "data", "data_dir", "k", "temperature", "top_p", "max_new_tokens",
                                      "template", "batch_size", "limit", "seed", "dtype", "device", "out", "engine")}
EVAL_FLAGS.update(endpoint="endpoint.url", endpoint_model="endpoint.model")


def _zero_arguments(p) -> None:
    _add_run_flags(p, "run")
    p.add_argument("--no-report", action="store_true", help="skip writing the report at the end")


def _add_run_flags(p, what: str) -> None:
    """--config, --out, --resume, --overwrite and key=value overrides, as ``r1kit zero`` has them."""
    p.add_argument("--config", default=None, help="YAML recipe (defaults run without one)")
    p.add_argument("--out", default=None, help=f"output folder of the {what} (overrides the recipe's 'out')")
    p.add_argument("--resume", action="store_true", help=f"continue an interrupted {what} in --out")
    p.add_argument("--overwrite", action="store_true", help=f"replace an earlier {what} in --out")
    p.add_argument("overrides", nargs="*", help="key=value overrides of the config (see its class docstring)")


def _sft_arguments(p) -> None:
    p.add_argument("--model", default=None, help="HF folder, hub id, 'tiny' or 'tiny-small'")
    p.add_argument("--data", default=None, help="JSONL/JSON/Parquet, hf:NAME[:SPLIT] or a datasets folder")
    _add_run_flags(p, "fine-tuning run")


def _sample_arguments(p) -> None:
    p.add_argument("--model", default=None, help="the checkpoint to sample from")
    p.add_argument("--data", default=None, help="'synthetic' (training problems), a benchmark name or a file")
    p.add_argument("--k", type=int, default=None, help="samples per prompt")
    p.add_argument("--limit", type=int, default=None, help="only the first N prompts")
    p.add_argument("--max-per-prompt", type=int, default=None, help="keep at most N samples per prompt (0: all)")
    p.add_argument("--judge", default=None, help="HF model that grades rows without a rule-verifiable answer")
    _add_teacher_flags(p)
    _add_run_flags(p, "sampling run")


def _add_teacher_flags(p) -> None:
    p.add_argument("--teacher-url", default=None, help="sample from an OpenAI-compatible endpoint at this base URL "
                   "(implies engine=openai; the API key comes from $OPENAI_API_KEY or endpoint.api_key_env)")
    p.add_argument("--teacher-model", default=None, help="the model name the endpoint serves")


def _distill_arguments(p) -> None:
    p.add_argument("--teacher", default=None, help="the model that writes the traces")
    p.add_argument("--student", default=None, help="the model fine-tuned on them ('tiny-small', a folder...)")
    p.add_argument("--data", default=None, help="the teacher's prompts ('synthetic': training problems)")
    _add_teacher_flags(p)
    _add_run_flags(p, "distillation")


def _cold_start_arguments(p) -> None:
    p.add_argument("--config", default=None, help="YAML recipe")
    p.add_argument("--data", default=None, help="JSONL/JSON/Parquet with problem, reasoning, answer")
    p.add_argument("--out", default=None, help="output folder (sft.jsonl, stats.json)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. template=plain readability.language=zh")


def _base_arguments(p) -> None:
    p.add_argument("--out", required=True, help="output HF folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=None, help="pre-training steps (default: the builder's)")
    p.add_argument("--size", default="base", choices=["base", "small", "mixed", "calc", "countdown"],
                   help="base: 4 layers, hidden 128 (r1kit/assets/tiny-base); small: 3 layers, hidden 96, "
                        "the distillation student (r1kit/assets/tiny-small-base); mixed: the base body on a "
                        "corpus whose chains of thought mix in a second language, the R1 pipeline's base "
                        "(r1kit/assets/tiny-mixed-base); calc: a new base on the calculator task whose answers call "
                        "the calculator rarely under the R1-Zero template (r1kit/assets/tiny-calc-base); countdown: a new "
                        "base on Countdown in order (reach 16 with 7 3 5), rare guess-check-retry traces "
                        "under the R1-Zero template (docs/phenomena.md)")


def _grade_arguments(p) -> None:
    p.add_argument("--data", required=True, help="data file or benchmark name with id, problem, answer")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--responses", required=True, help="JSONL of {\"id\": ..., \"response\": ...}")
    p.add_argument("--out", required=True)
    p.add_argument("--overwrite", action="store_true", help="replace earlier results in --out")


def _pipeline_arguments(p) -> None:
    p.add_argument("recipe", nargs="?", default=None, help="YAML recipe, e.g. recipes/r1_tiny.yaml (defaults run without one)")
    p.add_argument("--out", default=None, help="run directory (overrides the recipe's 'out')")
    p.add_argument("--dry-run", action="store_true", help="print what would run and why, run nothing")
    p.add_argument("--from", dest="start", default=None, metavar="STAGE",
                   help="re-run STAGE and every stage that depends on it, even if complete")
    p.add_argument("--until", default=None, metavar="STAGE", help="stop after STAGE")
    p.add_argument("overrides", nargs="*", help="key=value overrides, right after RECIPE, e.g. reasoning_rl.grpo.steps=50")


def _report_arguments(p) -> None:
    p.add_argument("run_dir")


def _import_gguf_arguments(p) -> None:
    p.add_argument("gguf_file", help="the .gguf file")
    p.add_argument("--out", required=True, help="output HF folder (dense safetensors + tokenizer + generation config)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                   help="dtype of the saved weights (float32 keeps the de-quantized values exactly)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")


def _merge_lora_arguments(p) -> None:
    p.add_argument("checkpoint", help="a LoRA checkpoint folder (adapter_config.json) or a run directory")
    p.add_argument("--out", required=True, help="output HF folder")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="dtype of the saved weights")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")


def _config_arguments(p) -> None:
    p.add_argument("target", choices=sorted(n for n, c in COMMANDS.items() if c.config), help="the command")


def parser() -> argparse.ArgumentParser:
    """The argument parser, one sub-parser per row of :data:`COMMANDS`."""
    ap = argparse.ArgumentParser(prog="r1kit", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--version", action="version", version=f"r1kit {__version__}")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in COMMANDS.items():
        command.arguments(sub.add_parser(name, help=command.help))
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
    cfg = _config(args, EVAL_FLAGS)
    from r1kit.eval.evaluate import eval_problems, run_eval
    from r1kit.models import load_model, load_tokenizer, resolve_model_path
    from r1kit.models.device import resolve_device
    from r1kit.rollout.engines import EngineSetup, make_engine
    from r1kit.report.figures import duration, eval_figures
    from r1kit.runs import check_fresh_run_dir
    from r1kit.threads import apply as apply_threads

    apply_threads(cfg.threads)
    check_fresh_run_dir(cfg.out, ["results.json", "samples.jsonl"], False, args.overwrite, "evaluation",
                        resumable=False)
    problems = eval_problems(cfg)
    started = time.time()
    tokenizer = load_tokenizer(cfg.model)
    engine = make_engine(cfg.engine, EngineSetup(
        tokenizer, lambda: load_model(cfg.model, cfg.dtype, resolve_device(cfg.device)), resolve_model_path(cfg.model),
        cfg.dtype, cfg.endpoint, Path(cfg.out) / "vllm-server.log", cfg.batch_size * cfg.k))
    try:
        name = cfg.model if cfg.engine == "torch" else f"{engine.model} ({engine.url})"
        results = run_eval(engine, tokenizer, cfg, cfg.out, problems=problems, model_name=name)
    finally:
        engine.close()
    figures = ", ".join(f"{k} {v}" for k, v in eval_figures(results).items())
    print(f"Evaluated {name} on {cfg.data}: {len(problems)} problems x {cfg.k} sample{'s' if cfg.k != 1 else ''} "
          f"(T {cfg.temperature}, top-p {cfg.top_p}) in {duration(time.time() - started)}.\n  {figures}\n"
          f"  outputs: {Path(cfg.out) / 'results.json'}, {Path(cfg.out) / 'samples.jsonl'}")


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


def _config(args, flags: dict[str, str]):
    """The command's config (its class in :data:`COMMANDS`) from ``--config``, key=value overrides
    and the named flags (``flags`` maps an argparse attribute to a config field; flags left out
    change nothing); with ``--resume``, over the run's recorded config instead of the defaults
    (r1kit.config.config_to_run). Checked before the command imports torch: the config modules
    import none."""
    from r1kit.config import _set_dotted, config_to_run, given_options, merge

    cls = _load_class(COMMANDS[args.command].config)
    given = given_options(args.config, list(args.overrides))
    by_flag = {field: attr for attr, field in flags.items() if getattr(args, attr) is not None}
    from_flags: dict = {}
    for field, attr in by_flag.items():
        _set_dotted(from_flags, field, getattr(args, attr))
    given = merge(given, from_flags)
    _imply_endpoint_engine(given, by_flag)
    try:
        return config_to_run(cls, given, getattr(args, "resume", False))
    except ConfigError as exc:  # name an option given as a flag as the flag the user typed
        field = str(exc).split(":", 1)[0]
        if field in by_flag:
            raise ConfigError(f"--{by_flag[field].replace('_', '-')}:{str(exc).split(':', 1)[1]}") from None
        raise


def _imply_endpoint_engine(given: dict, by_flag: dict) -> None:
    """An endpoint given by flag (``--endpoint``, ``--teacher-url``) samples with the ``openai``
    engine unless the options name another."""
    for field in by_flag:
        if field.endswith("endpoint.url"):
            section = given
            for part in field.split(".")[:-2]:
                section = section.setdefault(part, {})
            section.setdefault("engine", "openai")


def cmd_zero(args) -> None:
    cfg = _config(args, {"out": "out"})
    from r1kit.data.jsonl import read_jsonl_log
    from r1kit.distributed import ddp
    from r1kit.grpo.trainer import GRPOTrainer
    from r1kit.report.figures import zero_ending

    summary = GRPOTrainer(cfg, resume=args.resume, overwrite=args.overwrite).train()
    if not ddp.is_main():  # under torchrun, rank 0 reports
        return
    report = None
    if not args.no_report:
        from r1kit.report import write_report
        report = str(write_report(cfg.out))
    print(zero_ending(cfg.out, read_jsonl_log(Path(cfg.out) / "eval.jsonl"), summary, report))


def cmd_sft(args) -> None:
    cfg = _config(args, {"model": "model", "data": "data", "out": "out"})
    from r1kit.report.figures import duration
    from r1kit.sft import run_sft

    s = run_sft(cfg, resume=args.resume, overwrite=args.overwrite)
    loss = f"; final loss {s['final_loss']:.4f}" if s.get("final_loss") is not None else ""
    print(f"Fine-tuned {cfg.model} on {cfg.data}: {s['steps']} steps, {s['epochs']} epochs, "
          f"{s['target_tokens']} completion tokens{loss}; {duration(s['seconds_this_session'])} this session.\n"
          f"  model: {s['final']} (an HF folder)\n  outputs: {Path(cfg.out) / 'metrics.jsonl'}, "
          f"{Path(cfg.out) / 'summary.json'}")


def cmd_sample(args) -> None:
    cfg = _config(args, {"model": "model", "data": "data", "k": "k", "limit": "limit",
                         "max_per_prompt": "max_per_prompt", "judge": "judge", "out": "out",
                         "teacher_url": "endpoint.url", "teacher_model": "endpoint.model"})
    from r1kit.sampling import run_sample

    s = run_sample(cfg, resume=args.resume, overwrite=args.overwrite)
    rejected = ", ".join(f"{reason} {n}" for reason, n in s.get("rejected", {}).items() if n)
    print(f"Sampled {s['sampled']} completions of {cfg.model} ({s.get('prompts', '?')} prompts x {cfg.k}): "
          f"kept {s['kept']}" + (f"; rejected: {rejected}" if rejected else "") + ".\n"
          f"  SFT rows: {Path(cfg.out) / 'sft.jsonl'}\n  stats: {Path(cfg.out) / 'stats.json'}")


def cmd_distill(args) -> None:
    cfg = _config(args, {"teacher": "teacher", "student": "student", "data": "data", "out": "out",
                         "teacher_url": "sample.endpoint.url", "teacher_model": "sample.endpoint.model"})
    from r1kit.distill import run_distill
    from r1kit.report.figures import duration, eval_figures

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
    cfg = _config(args, {"data": "data", "out": "out"})
    from r1kit.data.cold_start import run_cold_start
    from r1kit.runs import check_out_dir

    check_out_dir(cfg.out)
    s = run_cold_start(cfg)
    print(f"Cold-start data: kept {s['kept']} of {s['rows']} rows of {cfg.data} (rejected {s['rejected_total']}: "
          + ", ".join(f"{r} {n}" for r, n in s["rejected"].items() if n) + f").\n"
          f"  outputs: {Path(cfg.out) / 'sft.jsonl'}, {Path(cfg.out) / 'stats.json'}")


def cmd_pipeline(args) -> None:
    from r1kit.pipeline import format_plan, load_pipeline_config, make_pipeline

    cfg = load_pipeline_config(args.recipe, list(args.overrides) + ([f"out={args.out}"] if args.out else []))
    from r1kit.report.figures import duration
    from r1kit.runs import check_out_dir

    pipeline = make_pipeline(cfg)
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

    print(describe(_load_class(COMMANDS[args.target].config)))


def _load_class(spec: str):
    """``"module:Class"`` -> the class (imported only when the command runs: start-up time)."""
    module, name = spec.split(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class Command:
    """One sub-command.

    run: the function that runs it. arguments: declares its flags on its sub-parser. help: one line.
    config: ``"module:Class"`` of its typed config; such a command takes ``--config`` and
        ``key=value`` overrides, and ``r1kit config COMMAND`` lists the options.
    resumable: ``--resume`` continues an interrupted run of it.
    """

    run: Callable
    arguments: Callable
    help: str
    config: str | None = None
    resumable: bool = False


COMMANDS: dict[str, Command] = {
    "base": Command(cmd_base, _base_arguments, "build and pre-train the embedded tiny base model"),
    "eval": Command(cmd_eval, _eval_arguments, "evaluate a model with the paper's protocol (pass@1 over k, cons@k)",
                    "r1kit.eval.config:EvalCommandConfig"),
    "grade": Command(cmd_grade, _grade_arguments, "grade a JSONL of {id, response} against a data file (no model)"),
    "zero": Command(cmd_zero, _zero_arguments, "R1-Zero: GRPO with rule-based rewards straight on a base model",
                    "r1kit.grpo.config:ZeroConfig", resumable=True),
    "sft": Command(cmd_sft, _sft_arguments, "supervised fine-tuning on prompt/completion or chat rows",
                   "r1kit.sft.config:SFTConfig", resumable=True),
    "sample": Command(cmd_sample, _sample_arguments, "rejection sampling: k samples per prompt, keep the correct, "
                      "readable ones", "r1kit.sampling.config:SampleConfig", resumable=True),
    "distill": Command(cmd_distill, _distill_arguments, "teacher traces -> student SFT -> evaluation",
                       "r1kit.distill.config:DistillConfig", resumable=True),
    "cold-start": Command(cmd_cold_start, _cold_start_arguments, "format {problem, reasoning, answer} rows in the "
                          "readable cold-start layout, drop unreadable ones", "r1kit.data.cold_start:ColdStartConfig"),
    "pipeline": Command(cmd_pipeline, _pipeline_arguments, "the R1 recipe as resumable stages (cold start ... "
                        "all-scenario RL)", "r1kit.pipeline.config:PipelineConfig"),
    "report": Command(cmd_report, _report_arguments, "write RUN_DIR/report/ (PNG plots + index.html)"),
    "import-gguf": Command(cmd_import_gguf, _import_gguf_arguments, "convert a GGUF causal LM into a plain, "
                           "trainable HF folder (needs: pip install 'r1kit[gguf]')"),
    "merge-lora": Command(cmd_merge_lora, _merge_lora_arguments, "write a LoRA checkpoint's base with the adapters "
                          "merged in as a plain HF folder (needs: pip install 'r1kit[lora]')"),
    "config": Command(cmd_config, _config_arguments, "list every option of a command's config: key, default and "
                      "meaning"),
}


def _how_to_resume(command: str, run_dir: Path | None) -> str:
    if command == "pipeline":
        return "run the same r1kit pipeline command again: finished stages are skipped, this one resumes"
    if COMMANDS[command].resumable:
        if run_dir is None:
            return f"continue with the same r1kit {command} command and --resume"
        return f"continue with: r1kit {command} --out {run_dir} --resume"
    return "nothing was written"


def main(argv: list[str] | None = None) -> int:
    ap = parser()
    args, extra = ap.parse_known_args(argv)
    if extra:  # key=value overrides may follow flags
        bad = [e for e in extra if e.startswith("-") or "=" not in e or not COMMANDS[args.command].config]
        if bad:
            ap.error(f"unrecognized arguments: {' '.join(bad)}")
        args.overrides = list(args.overrides) + extra
    recipe = getattr(args, "recipe", None)
    if recipe and "=" in recipe and not Path(recipe).exists():  # `pipeline --dry-run key=value`: no recipe
        args.recipe, args.overrides = None, [recipe, *args.overrides]
    return run_guarded(args.command, lambda: COMMANDS[args.command].run(args))


def run_guarded(command: str, run) -> int:
    """Run a command and return its exit status. An expected failure (bad option or file, a write
    that failed, a missing optional package) is one line on stderr, status 2; ``--resume`` of a
    finished run says so, status 0; Ctrl-C / SIGTERM 130; anything else its traceback and a line
    saying that it is a bug to report, status 1."""
    from r1kit.data.jsonl import WriteError
    from r1kit.models import ModelError
    from r1kit.models.gguf import ModelImportError
    from r1kit.errors import EngineError, Interrupted, RunFinished

    try:
        run()
    except RunFinished as exc:
        print(f"r1kit {command}: {exc}", file=sys.stderr)
    except (ConfigError, DataError, WriteError, ModelError, ModelImportError, FileNotFoundError, NotADirectoryError,
            IsADirectoryError, PermissionError) as exc:
        print(f"r1kit {command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # an I/O failure on a named file (a read-only or full disk...)
        if not exc.filename:
            return _bug(command)
        print(f"r1kit {command}: error: {exc.filename}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        if (exc.name or "r1kit").startswith("r1kit"):
            return _bug(command)
        extra = {"peft": "lora", "ray": "ray", "gguf": "gguf"}.get(exc.name)
        how = f"pip install 'r1kit[{extra}]'" if extra else f"pip install {exc.name}"
        print(f"r1kit {command}: error: this needs the Python package {exc.name!r}, which is not installed ({how})",
              file=sys.stderr)
        return 2
    except EngineError as exc:  # a server, endpoint or rollout worker failed for good: what was written is kept
        print(f"r1kit {command}: error: {exc}; {_how_to_resume(command, None)}", file=sys.stderr)
        return 2
    except Interrupted as exc:
        print(f"r1kit {command}: interrupted: {exc}; {_how_to_resume(command, exc.run_dir)}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print(f"\nr1kit {command}: interrupted (Ctrl-C); {_how_to_resume(command, None)}", file=sys.stderr)
        return 130
    except Exception:
        return _bug(command)
    return 0


def _bug(command: str) -> int:
    """The traceback of the exception being handled, and a line saying that it is a bug to report."""
    import traceback

    traceback.print_exc()
    print(f"r1kit {command}: this is a bug in r1kit (a failure it does not expect); please report it "
          "with the traceback above and the command you ran", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
