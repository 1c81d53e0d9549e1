"""GRPO step time in float32 vs bfloat16 (on the CPU by default), side by side in one process.

Two trainers from the same recipe (default ``recipes/zero_smollm2.yaml``, SmolLM2-135M), one per
dtype, take steps in turn (fp32, bf16, fp32, ...); each step is timed as rollout (sampling the
step's groups) + train (the policy-gradient update). The two runs sample different completions
(different lengths), so the comparison is per completion token: milliseconds per token of the
step, of the rollout and of the training update, and their ratios fp32 / bf16 (raw step-time
ratios are printed too, labelled as such). The first step of each dtype is a warm-up and is not
counted.

    python benchmarks/dtype_step.py                       # SmolLM2-135M, 4 timed rounds
    python benchmarks/dtype_step.py --model tiny --config recipes/zero_tiny.yaml --rounds 8
    python benchmarks/dtype_step.py --device cuda         # on a GPU (peak memory printed too)
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from r1kit.config import load_config
from r1kit.grpo.config import ZeroConfig
from r1kit.grpo.trainer import GRPOTrainer

ROOT = Path(__file__).resolve().parents[1]
DTYPES = ("float32", "bfloat16")


def make_trainer(args, dtype: str, out: Path) -> GRPOTrainer:
    overrides = [f"dtype={dtype}", f"out={out / dtype}", "eval.every=0", "checkpoint_every=0",
                 "log_tensorboard=false", f"steps={args.rounds + 1}", f"device={args.device}"]
    if args.model:
        overrides.append(f"model={args.model}")
    return GRPOTrainer(load_config(ZeroConfig, args.config, overrides + args.overrides), progress=False)


def timed_step(trainer: GRPOTrainer) -> dict:
    t0 = time.perf_counter()
    batch, opt, times = trainer.train_step()  # ends on host reads of the loss: the device is done
    t2 = time.perf_counter()
    tokens = sum(len(r.token_ids) for grp in batch.sampled for r in grp.rollouts)
    rollout_s, train_s = times["rollout_seconds"], times["train_seconds"]
    return {"step_s": t2 - t0, "rollout_s": rollout_s, "train_s": train_s, "tok_per_s": tokens / rollout_s,
            "tokens": tokens, "step_ms_per_tok": 1e3 * (t2 - t0) / tokens,
            "rollout_ms_per_tok": 1e3 * rollout_s / tokens, "train_ms_per_tok": 1e3 * train_s / tokens,
            "peak_mb": opt["peak_memory_mb"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(ROOT / "recipes" / "zero_smollm2.yaml"))
    ap.add_argument("--model", default=None, help="override the recipe's model")
    ap.add_argument("--rounds", type=int, default=4, help="timed steps per dtype")
    ap.add_argument("--device", default="cpu", help="auto | cpu | cuda | cuda:N")
    ap.add_argument("overrides", nargs="*", help="recipe overrides, key=value")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trainers = {d: make_trainer(args, d, Path(tmp)) for d in DTYPES}
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores; "
              f"recipe {args.config}", flush=True)
        for d in DTYPES:
            timed_step(trainers[d])  # warm-up
        rows = {d: [] for d in DTYPES}
        for r in range(args.rounds):
            for d in DTYPES:
                rows[d].append(timed_step(trainers[d]))
                x = rows[d][-1]
                print(f"round {r + 1} {d:9s} step {x['step_s']:6.2f} s  (rollout {x['rollout_s']:6.2f}, "
                      f"train {x['train_s']:6.2f})  {x['tokens']} tokens  sampling {x['tok_per_s']:6.0f} tok/s  "
                      f"{x['step_ms_per_tok']:.2f} ms/token  peak {x['peak_mb']:.0f} MiB", flush=True)
    med = {d: {k: statistics.median(x[k] for x in rows[d]) for k in rows[d][0]} for d in DTYPES}
    for d in DTYPES:
        m = med[d]
        print(f"median {d:9s} step {m['step_s']:6.2f} s  rollout {m['rollout_s']:6.2f}  train {m['train_s']:6.2f}  "
              f"{m['tokens']:.0f} tokens  sampling {m['tok_per_s']:6.0f} tok/s  per token: step "
              f"{m['step_ms_per_tok']:.2f} ms, rollout {m['rollout_ms_per_tok']:.2f} ms, train {m['train_ms_per_tok']:.2f} ms")
    f, b = med["float32"], med["bfloat16"]
    print(f"ratio fp32/bf16 raw step time (different token counts): {f['step_s'] / b['step_s']:.2f}")
    print(f"ratio fp32/bf16 per token: step {f['step_ms_per_tok'] / b['step_ms_per_tok']:.2f}, "
          f"rollout {f['rollout_ms_per_tok'] / b['rollout_ms_per_tok']:.2f}, train {f['train_ms_per_tok'] / b['train_ms_per_tok']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
