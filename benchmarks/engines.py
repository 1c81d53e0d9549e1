"""Sampling throughput of the rollout engines side by side: r1kit's torch engine vs a vLLM server.

Both sample the same prompts (R1-Zero template, 8 prompts x 8 samples, as a GRPO step) at
temperature 1.0 through the engine interface (``engine.generate``), so the vLLM side includes its
HTTP round trips, as it does in training. Two modes:

    eos      completions end at EOS; tokens counted up to and including EOS.
    fixed    EOS ignored on both sides: every row decodes exactly max_new_tokens.

One core each: the torch engine runs with 1 thread, the vLLM server is bound to one core
(``VLLM_CPU_OMP_THREADS_BIND``, default core 0). Each mode is warmed up once per side; rounds
alternate which side runs first; the figure is the median over rounds of the per-round ratio. The
last line is parseable: ``ratio vllm/torch tokens-per-second: X`` (the tiny model, eos mode).

    python benchmarks/engines.py --vllm-python /path/to/vllm-venv/bin/python
    python benchmarks/engines.py --vllm-python ... --model smollm2-135m --dtype bfloat16
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from r1kit.data import synthetic
from r1kit.models import load_model, load_tokenizer, resolve_model_path
from r1kit.prompts import build_prompt
from r1kit.rollout import SamplingParams
from r1kit.rollout.config import EndpointConfig
from r1kit.rollout.engines import EngineSetup, make_engine

SAMPLES_PER_PROMPT, PROMPTS = 8, 8


def tokens_per_s(engine, prompts, max_new_tokens: int, seed: int, fixed: bool) -> float:
    params = SamplingParams(n=SAMPLES_PER_PROMPT, temperature=1.0, max_new_tokens=max_new_tokens, seed=seed,
                            ignore_eos=fixed)
    t0 = time.perf_counter()
    rollouts = engine.generate(prompts, params)
    return sum(len(r.token_ids) for r in rollouts) / (time.perf_counter() - t0)


def compare(model_name: str, dtype: str, args) -> dict[str, float]:
    torch.set_num_threads(1)
    tok = load_tokenizer(model_name)
    model = load_model(model_name, dtype)
    prompts = [build_prompt(p["problem"], "r1_zero", tok) for p in synthetic.test_set(PROMPTS)]
    endpoint = EndpointConfig(python=args.vllm_python, server_args=["--enforce-eager"])
    log = Path(tempfile.mkdtemp(prefix="r1kit-bench-")) / "vllm-server.log"
    engines = {"torch": make_engine("torch", EngineSetup(tok, lambda: model)),
               "vllm": make_engine("vllm", EngineSetup(tok, None, resolve_model_path(model_name), dtype, endpoint, log))}
    out = {}
    try:
        for mode in ("eos", "fixed"):
            fixed = mode == "fixed"
            for engine in engines.values():  # warm-up
                tokens_per_s(engine, prompts, args.max_new_tokens, 0, fixed)
            rates: dict[str, list[float]] = {"torch": [], "vllm": []}
            for r in range(args.rounds):
                for name in (("torch", "vllm") if r % 2 == 0 else ("vllm", "torch")):
                    rates[name].append(tokens_per_s(engines[name], prompts, args.max_new_tokens, r + 1, fixed))
            ratio = statistics.median(v / t for v, t in zip(rates["vllm"], rates["torch"]))
            print(f"{model_name} {dtype} {mode}: torch {statistics.median(rates['torch']):.0f} tok/s, "
                  f"vllm {statistics.median(rates['vllm']):.0f} tok/s, vllm/torch {ratio:.2f} "
                  f"({args.rounds} rounds)", flush=True)
            out[mode] = ratio
    finally:
        engines["vllm"].close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vllm-python", required=True, help="the interpreter of an environment with vLLM")
    ap.add_argument("--model", default="tiny", help="also measure this model (e.g. smollm2-135m)")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "0")
    tiny = compare("tiny", "float32", args)
    if args.model != "tiny":
        compare(args.model, args.dtype, args)
    print(f"ratio vllm/torch tokens-per-second: {tiny['eos']:.2f}")


if __name__ == "__main__":
    main()
