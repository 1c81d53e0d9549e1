"""GRPO step time, synchronous vs one-step-off-policy rollouts (``rollout.async_steps``), side by side.

Two trainers from the same recipe (default ``recipes/zero_tiny.yaml``: the default run), one with
``rollout.async_steps: 0`` and one with ``rollout.async_steps: 1`` (the torch engine sampling the
next step in a worker process while this step trains), take steps in alternation (sync, async,
sync, ...; the order swaps every round). Each step is timed from the outside, from the start of
``train_step`` to its end. An async step's sampling for the *next* step ends inside that step (its
weight push waits for it), so nothing of one trainer runs during the other's step. The first two
steps of each are warm-up (the async run's first step samples without overlap) and not counted.

The two runs sample different completions after the first step (different weights), so the
per-completion-token step times are printed too. The last line is parseable:
``ratio sync/async step-seconds: X`` (median sync step over median async step).

    python benchmarks/async_steps.py                 # the default run's recipe, 8 timed rounds
    python benchmarks/async_steps.py --rounds 4 threads=1
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
MODES = {"sync": 0, "async": 1}
WARMUP = 2


def make_trainer(args, mode: str, out: Path) -> GRPOTrainer:
    overrides = [f"rollout.async_steps={MODES[mode]}", f"out={out / mode}", "eval.every=0", "checkpoint_every=0",
                 "log_tensorboard=false", f"steps={args.rounds + WARMUP + 1}"]
    return GRPOTrainer(load_config(ZeroConfig, args.config, overrides + args.overrides), progress=False)


def timed_step(trainer: GRPOTrainer) -> dict:
    t0 = time.perf_counter()
    batch, _, times = trainer.train_step()
    step_s = time.perf_counter() - t0
    tokens = sum(len(r.token_ids) for grp in batch.sampled for r in grp.rollouts)
    return {"step_s": step_s, "rollout_s": times["rollout_seconds"], "train_s": times["train_seconds"],
            "tokens": tokens, "ms_per_tok": 1e3 * step_s / tokens}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(ROOT / "recipes" / "zero_tiny.yaml"))
    ap.add_argument("--rounds", type=int, default=8, help="timed steps per mode")
    ap.add_argument("overrides", nargs="*", help="recipe overrides for both runs, key=value")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trainers = {m: make_trainer(args, m, Path(tmp)) for m in MODES}
        print(f"torch {torch.__version__}, {os.cpu_count()} cores; recipe {args.config} {' '.join(args.overrides)}",
              flush=True)
        try:
            for _ in range(WARMUP):
                for m in MODES:
                    timed_step(trainers[m])
            rows = {m: [] for m in MODES}
            for r in range(args.rounds):
                for m in (list(MODES) if r % 2 == 0 else list(MODES)[::-1]):
                    rows[m].append(x := timed_step(trainers[m]))
                    print(f"round {r + 1} {m:5s} step {x['step_s']:6.2f} s (rollout {x['rollout_s']:5.2f}, "
                          f"train {x['train_s']:5.2f})  {x['tokens']} tokens  {x['ms_per_tok']:.2f} ms/token",
                          flush=True)
        finally:
            for t in trainers.values():
                t.source.close()
    med = {m: {k: statistics.median(x[k] for x in rows[m]) for k in rows[m][0]} for m in MODES}
    for m in MODES:
        x = med[m]
        print(f"median {m:5s} step {x['step_s']:6.2f} s  rollout {x['rollout_s']:5.2f}  train {x['train_s']:5.2f}  "
              f"{x['tokens']:.0f} tokens  {x['ms_per_tok']:.2f} ms/token")
    s, a = med["sync"], med["async"]
    print(f"ratio sync/async per token: {s['ms_per_tok'] / a['ms_per_tok']:.2f}")
    print(f"ratio sync/async step-seconds: {s['step_s'] / a['step_s']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
