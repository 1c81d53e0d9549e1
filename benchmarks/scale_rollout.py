"""Rollout throughput with 1 and 2 Ray rollout actors on this machine (a private local Ray cluster).

Both actor sets live side by side in one cluster and the rounds alternate between them, so that
load from other processes hits both alike; each round samples the same batch (P prompts x G
samples, split into one task per actor) with the same weights. Prints tokens/s per round, the
medians, their ratio (2 actors / 1 actor) and the machine's core count.

    pip install -e ".[ray]"
    python benchmarks/scale_rollout.py [--rounds 5] [--threads 1] [--prompts 16] [--group 8]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import ray
import torch

from r1kit.data import synthetic
from r1kit.distributed.ray_rollout import RayRollout, make_tasks
from r1kit.models import load_model, load_tokenizer, resolve_model_path
from r1kit.prompts import build_prompt
from r1kit.rollout import SamplingParams


def tokens_per_s(rollout: RayRollout, prompts: list[str], params: SamplingParams, seed: int) -> float:
    tasks = make_tasks(list(range(len(prompts))), prompts, len(rollout.actors), seed, 0)
    t0 = time.perf_counter()
    results = rollout.collect(rollout.submit(tasks, params))
    seconds = time.perf_counter() - t0
    return sum(len(r.token_ids) for res in results for r in res.rollouts) / seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="the actors' device (cuda: one GPU each)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per actor")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--group", type=int, default=8, help="samples per prompt")
    ap.add_argument("--max-new-tokens", type=int, default=128)
    args = ap.parse_args()

    path = resolve_model_path(args.model)
    tok, model = load_tokenizer(path), load_model(path)
    prompts = [build_prompt(ex["problem"], "r1_zero", tok) for ex in synthetic.train_set(args.prompts, seed=11)]
    params = SamplingParams(n=args.group, temperature=1.0, max_new_tokens=args.max_new_tokens)
    here = os.environ.get("PYTHONPATH")
    ray.init(address="local", num_cpus=3, include_dashboard=False, _node_ip_address="127.0.0.1",
             runtime_env={"env_vars": {"PYTHONPATH": here}} if here else {}, log_to_driver=False)
    sets = {n: RayRollout(path, "float32", n, actor_cpus=1, threads=args.threads, device=args.device) for n in (1, 2)}
    for rollout in sets.values():
        rollout.push_weights(model, 0)
        tokens_per_s(rollout, prompts[:2], params, seed=0)  # warm-up: actors started, weights loaded
    rates: dict[int, list[float]] = {1: [], 2: []}
    for r in range(args.rounds):
        for n in ((1, 2) if r % 2 == 0 else (2, 1)):
            rates[n].append(tokens_per_s(sets[n], prompts, params, seed=1000 + r))
        print(f"round {r}: 1 actor {rates[1][-1]:,.0f} tok/s   2 actors {rates[2][-1]:,.0f} tok/s", flush=True)
    med = {n: statistics.median(v) for n, v in rates.items()}
    print(f"cores (os.cpu_count): {os.cpu_count()}   torch threads per actor: {args.threads}   "
          f"batch: {args.prompts} prompts x {args.group}, <= {args.max_new_tokens} new tokens, torch {torch.__version__}")
    print(f"median: 1 actor {med[1]:,.0f} tok/s, 2 actors {med[2]:,.0f} tok/s")
    print(f"ratio 2 actors / 1 actor: {med[2] / med[1]:.2f}")
    ray.shutdown()


if __name__ == "__main__":
    main()
