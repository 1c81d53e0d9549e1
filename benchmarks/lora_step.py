"""GRPO step time and peak memory with and without LoRA (SmolLM2-135M by default), each in its own
process (so that the peak memory is the run's own), taking turns: full, LoRA, full, LoRA, ...

Each run is ``r1kit zero`` with the recipe and ``steps = --steps`` (no evaluation, no checkpoint);
the first step of every run is a warm-up and is not counted. Reported per configuration: the median
seconds per step, milliseconds per completion token (the two sample different completions), and
the peak memory the trainer logs (``peak_memory_mb``: CUDA's max allocated on a GPU, the process's
peak RSS on the CPU).

    python benchmarks/lora_step.py                                  # SmolLM2-135M, bf16, 2 rounds
    python benchmarks/lora_step.py --config recipes/zero_tiny.yaml --steps 3 --rounds 1
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"full": [], "lora": ["lora.r=16", "lora.alpha=32"]}


def run(config: str, extra: list[str], steps: int, out: Path) -> list[dict]:
    cmd = [sys.executable, "-m", "r1kit.cli", "zero", "--config", config, "--out", str(out), "--no-report",
           f"steps={steps}", "eval.every=0", "checkpoint_every=0", "log_tensorboard=false", *extra]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    grpo = json.loads((out / "config.json").read_text())["grpo"]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()][1:]
    for m in rows:  # completion tokens of the step (every group is sampled once without dynamic sampling)
        m["tokens"] = m["response_length/mean"] * grpo["prompts_per_step"] * grpo["group_size"]
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(ROOT / "recipes" / "zero_smollm2.yaml"))
    ap.add_argument("--steps", type=int, default=4, help="steps per run (the first is a warm-up)")
    ap.add_argument("--rounds", type=int, default=2, help="runs per configuration, taking turns")
    ap.add_argument("overrides", nargs="*", help="recipe overrides for both, key=value (e.g. dtype=bfloat16)")
    args = ap.parse_args()
    rows: dict[str, list[dict]] = {name: [] for name in CONFIGS}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for name, extra in CONFIGS.items():
                rows[name] += run(args.config, [*args.overrides, *extra], args.steps, Path(tmp) / f"{name}-{r}")
                print(f"round {r + 1}: {name} done", flush=True)
    summary = {}
    for name, ms in rows.items():
        tokens = [m["tokens"] for m in ms]
        summary[name] = {"s/step": statistics.median(m["step_seconds"] for m in ms),
                         "ms/token": statistics.median(1e3 * m["step_seconds"] / t for m, t in zip(ms, tokens)),
                         "train ms/token": statistics.median(1e3 * m["train_seconds"] / t for m, t in zip(ms, tokens)),
                         "peak MB": max(m.get("peak_memory_mb", float("nan")) for m in ms),
                         "steps": len(ms)}
    for name, s in summary.items():
        print(f"{name:5s} " + "  ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in s.items()))
    print(f"ratio full/lora ms-per-token: {summary['full']['ms/token'] / summary['lora']['ms/token']:.2f}")
    print(f"ratio full/lora train-ms-per-token: {summary['full']['train ms/token'] / summary['lora']['train ms/token']:.2f}")
    print(f"ratio full/lora peak-memory: {summary['full']['peak MB'] / summary['lora']['peak MB']:.2f}")


if __name__ == "__main__":
    main()
