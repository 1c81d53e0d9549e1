"""Seconds per GRPO step: TRL's GRPOTrainer vs r1kit's trainer, side by side in one process.

Both train the same embedded tiny model on the same synthetic prompts (R1-Zero template) with the
same G, completions per step, max completion length, beta, mu, learning rate, temperature, loss
(sequence-mean of token-means) and rewards (r1kit's accuracy_math + 0.5 * format). Every round runs
each configuration once (``--steps`` steps; the first is a warm-up, not counted), in an order
rotated from round to round:

    trl          TRL 1.16's defaults: bf16 autocast (``bf16`` unset becomes True) and gradient
                 checkpointing (``gradient_checkpointing`` defaults to True); generation with
                 transformers ``generate``
    trl-fp32     TRL in true fp32: ``bf16=False``, ``gradient_checkpointing=False``
    trl-cb       trl-fp32 with transformers' continuous-batching generation
                 (``use_transformers_continuous_batching=True``); reported as skipped, with the
                 error, where it does not run
    r1kit        r1kit in fp32 (``dtype: float32``, the default)
    r1kit-bf16   r1kit with bf16 compute (``dtype: bfloat16``: bf16 sampling copy, autocast training)
    r1kit-async  r1kit fp32 with one-step-off-policy rollouts (``rollout.async_steps: 1``: the next
                 step sampled in a worker process while this one trains; its last step, which
                 has nothing to overlap, is not counted either)

The ratio lines compare like with like: TRL's defaults against r1kit-bf16 (both bf16 autocast)
and trl-fp32 against r1kit (both fp32); the last one, trl-fp32 against r1kit-async, is the same
fp32 comparison with r1kit sampling one step ahead (off-policy by one step: not the same algorithm
as TRL's on-policy default).

    pip install trl==1.16.0
    python benchmarks/grpo_vs_trl.py            # G=8, 32 completions/step, 128 new tokens
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from r1kit.data import synthetic
from r1kit.models import load_model, load_tokenizer
from r1kit.prompts import build_prompt
from r1kit.rewards import RewardStats, score

REWARD_WEIGHTS = {"accuracy_math": 1.0, "format": 0.5}


TRL_CONFIGS = {
    "trl": {},
    "trl-fp32": {"bf16": False, "gradient_checkpointing": False},
    "trl-cb": {"bf16": False, "gradient_checkpointing": False, "use_transformers_continuous_batching": True},
}
R1KIT_CONFIGS = {"r1kit": ("float32", []), "r1kit-bf16": ("bfloat16", []),
                 "r1kit-async": ("float32", ["rollout.async_steps=1"])}


def trl_steps(args, problems: list[dict], seed: int, extra: dict) -> list[float]:
    """Per-step wall seconds of one TRL GRPOTrainer run with ``extra`` GRPOConfig options."""
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
            output_dir=out, use_cpu=args.device == "cpu", report_to=[], save_strategy="no", logging_strategy="no",
            per_device_train_batch_size=args.completions, num_generations=args.group_size,
            gradient_accumulation_steps=1, max_completion_length=args.max_new_tokens,
            temperature=1.0, top_p=1.0, top_k=0, beta=args.beta, num_iterations=args.mu,
            learning_rate=args.lr, lr_scheduler_type="constant", warmup_steps=0, loss_type="grpo",
            scale_rewards="group", max_steps=args.steps, seed=seed, disable_tqdm=True,
            dataloader_num_workers=0, **extra)
        trainer = GRPOTrainer(model=load_model("tiny"), reward_funcs=[r1kit_reward], args=config,
                              train_dataset=Dataset.from_list(rows), processing_class=tok,
                              callbacks=[timer])
        trainer.train()
    return timer.times


def r1kit_steps(args, seed: int, dtype: str, extra: list[str]) -> list[float]:
    """Per-step wall seconds of one r1kit GRPOTrainer run."""
    from r1kit.config import load_config
    from r1kit.data.jsonl import read_jsonl
    from r1kit.grpo.config import ZeroConfig
    from r1kit.grpo.trainer import GRPOTrainer

    with tempfile.TemporaryDirectory() as out:
        cfg = load_config(ZeroConfig, Path(__file__).resolve().parents[1] / "recipes" / "zero_tiny.yaml", [
            f"out={out}", f"steps={args.steps}", f"seed={seed}", "eval.every=0", "checkpoint_every=0",
            "log_tensorboard=false", f"train_size={args.train_size}", f"dtype={dtype}",
            f"grpo.group_size={args.group_size}", f"grpo.prompts_per_step={args.completions // args.group_size}",
            f"grpo.beta={args.beta}", f"grpo.mu={args.mu}",
            f"optim.lr={args.lr}", "optim.warmup_steps=0", f"rollout.max_new_tokens={args.max_new_tokens}",
            f"device={args.device}", *extra])
        GRPOTrainer(cfg, progress=False).train()
        steps = [row["step_seconds"] for row in read_jsonl(f"{out}/metrics.jsonl")]
        return steps[:-1] if extra else steps


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where both trainers run")
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
    runs = {**{name: (lambda seed, extra=extra: trl_steps(args, problems, seed, extra)) for name, extra in TRL_CONFIGS.items()},
            **{name: (lambda seed, spec=spec: r1kit_steps(args, seed, *spec)) for name, spec in R1KIT_CONFIGS.items()}}
    times, skipped = {name: [] for name in runs}, {}
    for r in range(args.rounds):
        names = [n for n in runs if n not in skipped]
        for name in names[r % len(names):] + names[: r % len(names)]:
            try:
                t = runs[name](r)[1:]
            except Exception as exc:  # a configuration TRL cannot run here (say, on this device)
                skipped[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                print(f"round {r}: {name} skipped ({skipped[name]})", flush=True)
                continue
            times[name] += t
            print(f"round {r}: {name:10s} {statistics.median(t):.3f} s/step", flush=True)
    med = {name: statistics.median(t) for name, t in times.items() if t}
    for name, t in times.items():
        if t:
            print(f"{name:10s} s/step: median {med[name]:.3f} (min {min(t):.3f}, max {max(t):.3f}, {len(t)} steps)")
        else:
            print(f"{name:10s} skipped: {skipped.get(name)}")
    if "trl-cb" in med:
        print(f"ratio trl-cb/r1kit seconds-per-step: {med['trl-cb'] / med['r1kit']:.2f}")
    print(f"ratio trl/r1kit-fp32 seconds-per-step: {med['trl'] / med['r1kit']:.2f}")
    print(f"ratio trl/r1kit seconds-per-step: {med['trl'] / med['r1kit-bf16']:.2f}")
    print(f"ratio trl-fp32/r1kit seconds-per-step: {med['trl-fp32'] / med['r1kit']:.2f}")
    print(f"ratio trl-fp32/r1kit-async seconds-per-step: {med['trl-fp32'] / med['r1kit-async']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
