"""Seconds per GRPO step: TRL's GRPOTrainer vs r1kit's trainer, side by side in one process.

Both train the same embedded tiny model on the same synthetic prompts (R1-Zero template) with the
same G, completions per step, max completion length, beta, mu, learning rate, temperature, loss
(sequence-mean of token-means) and rewards (r1kit's accuracy_math + 0.5 * format). Runs alternate
TRL, r1kit, TRL, r1kit, ... for ``--rounds`` rounds of ``--steps`` steps each; the first step of
every run is a warm-up and is not counted.

    pip install -e .[bench]
    python benchmarks/grpo_vs_trl.py            # G=8, 32 completions/step, 128 new tokens
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

import torch

from r1kit.data import synthetic
from r1kit.models import load_model, load_tokenizer
from r1kit.prompts import build_prompt
from r1kit.rewards import RewardStats, score

REWARD_WEIGHTS = {"accuracy_math": 1.0, "format": 0.5}


def trl_steps(args, problems: list[dict], seed: int) -> list[float]:
    """Per-step wall seconds of one TRL GRPOTrainer run."""
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    tok = load_tokenizer("tiny")
    rows = [{"prompt": build_prompt(p["problem"], "r1_zero", tok), "answer": p["answer"]} for p in problems]
    stats = RewardStats()

    def r1kit_reward(prompts, completions, answer, **_):
        return [score(c, {"answer": a}, REWARD_WEIGHTS, stats)[0] for c, a in zip(completions, answer)]

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.times, self._t0 = [], 0.0

        def on_step_begin(self, *a, **k):
            self._t0 = time.perf_counter()

        def on_step_end(self, *a, **k):
            self.times.append(time.perf_counter() - self._t0)

    timer = StepTimer()
    with tempfile.TemporaryDirectory() as out:
        config = GRPOConfig(
            output_dir=out, use_cpu=True, report_to=[], save_strategy="no", logging_strategy="no",
            per_device_train_batch_size=args.completions, num_generations=args.group_size,
            gradient_accumulation_steps=1, max_completion_length=args.max_new_tokens,
            temperature=1.0, top_p=1.0, top_k=0, beta=args.beta, num_iterations=args.mu,
            learning_rate=args.lr, lr_scheduler_type="constant", warmup_steps=0, loss_type="grpo",
            scale_rewards="group", max_steps=args.steps, seed=seed, disable_tqdm=True,
            dataloader_num_workers=0)
        trainer = GRPOTrainer(model=load_model("tiny"), reward_funcs=[r1kit_reward], args=config,
                              train_dataset=Dataset.from_list(rows), processing_class=tok,
                              callbacks=[timer])
        trainer.train()
    return timer.times


def r1kit_steps(args, seed: int) -> list[float]:
    """Per-step wall seconds of one r1kit GRPOTrainer run."""
    from r1kit.config import load_config
    from r1kit.data.jsonl import read_jsonl
    from r1kit.grpo.config import ZeroConfig
    from r1kit.grpo.trainer import GRPOTrainer

    with tempfile.TemporaryDirectory() as out:
        cfg = load_config(ZeroConfig, None, [
            f"out={out}", f"steps={args.steps}", f"seed={seed}", "eval.every=0", "checkpoint_every=0",
            "log_tensorboard=false", f"train_size={args.train_size}",
            f"grpo.group_size={args.group_size}", f"grpo.prompts_per_step={args.completions // args.group_size}",
            f"grpo.beta={args.beta}", f"grpo.mu={args.mu}",
            f"optim.lr={args.lr}", "optim.warmup_steps=0", f"rollout.max_new_tokens={args.max_new_tokens}"])
        GRPOTrainer(cfg, progress=False).train()
        return [row["step_seconds"] for row in read_jsonl(f"{out}/metrics.jsonl")]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=6, help="steps per run (the first is not counted)")
    ap.add_argument("--group-size", type=int, default=8)
    ap.add_argument("--completions", type=int, default=32, help="completions per step")
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--beta", type=float, default=0.0)
    ap.add_argument("--mu", type=int, default=1)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--train-size", type=int, default=2000)
    args = ap.parse_args()

    problems = synthetic.train_set(args.train_size, seed=synthetic.TRAIN_SEED)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; G={args.group_size}, "
          f"{args.completions} completions/step, {args.max_new_tokens} new tokens, beta={args.beta}, mu={args.mu}")
    trl_times, ours_times = [], []
    for r in range(args.rounds):
        t = trl_steps(args, problems, seed=r)[1:]
        o = r1kit_steps(args, seed=r)[1:]
        trl_times += t
        ours_times += o
        print(f"round {r}: trl {statistics.median(t):.3f} s/step, r1kit {statistics.median(o):.3f} s/step",
              flush=True)
    trl_med, ours_med = statistics.median(trl_times), statistics.median(ours_times)
    print(f"trl   s/step: median {trl_med:.3f} (min {min(trl_times):.3f}, max {max(trl_times):.3f})")
    print(f"r1kit s/step: median {ours_med:.3f} (min {min(ours_times):.3f}, max {max(ours_times):.3f})")
    print(f"ratio trl/r1kit seconds-per-step: {trl_med / ours_med:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
