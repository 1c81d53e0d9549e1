"""Sampling throughput: r1kit's rollout engine vs Hugging Face ``generate``, side by side.

Same model, prompts (R1-Zero template, B/8 prompts x 8 samples, as in GRPO), temperature 1.0,
max new tokens. Two modes:

    eos      completions end at EOS on both sides; tokens counted up to and including EOS. r1kit
             drops finished rows, HF decodes every row until the longest ends.
    fixed    EOS ignored on both sides (r1kit ``ignore_eos``, HF ``eos_token_id=None``): every row
             decodes exactly max_new_tokens, the same work on both sides: the engines themselves.

Each batch size is warmed up (one untimed call per side and mode) before its rounds; rounds
alternate which side runs first. Medians over rounds of the per-round ratios.

    python benchmarks/rollout_vs_hf.py                      # the embedded tiny model, batch 32/64/128
    python benchmarks/rollout_vs_hf.py --model PATH --dtype bfloat16 --device cuda
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from r1kit.data import synthetic
from r1kit.models import load_model, load_tokenizer
from r1kit.models.device import resolve_device
from r1kit.prompts import build_prompt
from r1kit.rollout.engine import SamplingParams, _tokenize_prompts, sample
from r1kit.threads import apply as apply_threads

SAMPLES_PER_PROMPT = 8


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def r1kit_tokens_per_s(model, tok, prompts, args, seed: int, fixed: bool) -> float:
    _sync(args.device)
    t0 = time.perf_counter()
    rollouts = sample(model, tok, prompts, SamplingParams(n=SAMPLES_PER_PROMPT, temperature=1.0, ignore_eos=fixed,
                                                          max_new_tokens=args.max_new_tokens, seed=seed))
    _sync(args.device)
    return sum(len(r.token_ids) for r in rollouts) / (time.perf_counter() - t0)


@torch.no_grad()
def hf_tokens_per_s(model, tok, prompts, args, seed: int, fixed: bool) -> float:
    input_ids, mask = _tokenize_prompts(tok, prompts)
    torch.manual_seed(seed)
    _sync(args.device)
    t0 = time.perf_counter()
    out = model.generate(input_ids=input_ids.to(args.device), attention_mask=mask.to(args.device),
                         do_sample=True, temperature=1.0, top_p=1.0, top_k=0,
                         max_new_tokens=args.max_new_tokens, num_return_sequences=SAMPLES_PER_PROMPT,
                         pad_token_id=tok.eos_token_id, eos_token_id=None if fixed else tok.eos_token_id)
    _sync(args.device)
    seconds = time.perf_counter() - t0
    generated = out[:, input_ids.size(1):]
    if fixed:
        return generated.numel() / seconds
    is_eos = generated == tok.eos_token_id
    lengths = torch.where(is_eos.any(1), is_eos.int().argmax(1) + 1, generated.size(1))
    return lengths.sum().item() / seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--device", default="cpu", help="auto | cpu | cuda | cuda:N")
    ap.add_argument("--batches", default="32,64,128", help="sequences per call (B/8 prompts x 8)")
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--modes", default="eos,fixed", help="eos (stop at EOS), fixed (EOS ignored), or both")
    ap.add_argument("--headline-batch", type=int, default=64, help="the batch of the last line's ratio")
    args = ap.parse_args()
    apply_threads(0)  # r1kit's thread policy, as its commands run (the governor adapts to the load)

    args.device = str(resolve_device(args.device))
    model = load_model(args.model, args.dtype, device=args.device).eval()
    tok = load_tokenizer(args.model)
    problems = synthetic.test_set(1000)
    print(f"model {args.model} ({model.num_parameters() / 1e6:.1f}M params, {args.dtype}, {args.device}), "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, max_new_tokens {args.max_new_tokens}")
    sides = {"r1kit": r1kit_tokens_per_s, "hf": hf_tokens_per_s}
    headline = {}
    for mode in args.modes.split(","):
        fixed = mode == "fixed"
        for batch in map(int, args.batches.split(",")):
            def prompts_of(r: int) -> list[str]:
                chunk = problems[r * batch // SAMPLES_PER_PROMPT: (r + 1) * batch // SAMPLES_PER_PROMPT]
                return [build_prompt(p["problem"], "r1_zero", tok) for p in chunk]

            for side in sides.values():  # warm-up at this batch size
                side(model, tok, prompts_of(args.rounds), args, 0, fixed)
            rates = {name: [] for name in sides}
            for r in range(args.rounds):
                order = list(sides) if r % 2 == 0 else list(sides)[::-1]
                for name in order:
                    rates[name].append(sides[name](model, tok, prompts_of(r), args, r, fixed))
            ours, hf = rates["r1kit"], rates["hf"]
            ratio = statistics.median(o / h for o, h in zip(ours, hf))
            if batch == args.headline_batch or mode not in headline:
                headline[mode] = ratio
            print(f"{mode:5s} batch {batch:4d}: r1kit {statistics.median(ours):8.0f} tok/s (min {min(ours):.0f}, "
                  f"max {max(ours):.0f}) | hf {statistics.median(hf):8.0f} tok/s (min {min(hf):.0f}, max {max(hf):.0f})"
                  f" | ratio median {ratio:.2f}", flush=True)
    if "eos" in headline:
        print(f"ratio r1kit/hf tokens-per-second: {headline['eos']:.2f}")
    if "fixed" in headline:
        print(f"ratio r1kit/hf tokens-per-second fixed-length: {headline['fixed']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
