"""Sampling throughput: r1kit's rollout engine vs Hugging Face ``generate``, side by side.

Same model, prompts (R1-Zero template, B/8 prompts x 8 samples, as in GRPO), temperature 1.0,
max new tokens; tokens counted up to and including EOS for both. Rounds alternate r1kit, HF,
r1kit, HF, ...; medians over rounds.

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
from r1kit.rollout import SamplingParams, _tokenize_prompts, sample

SAMPLES_PER_PROMPT = 8


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def r1kit_tokens_per_s(model, tok, prompts, args, seed: int) -> float:
    _sync(args.device)
    t0 = time.perf_counter()
    rollouts = sample(model, tok, prompts, SamplingParams(n=SAMPLES_PER_PROMPT, temperature=1.0,
                                                          max_new_tokens=args.max_new_tokens, seed=seed))
    _sync(args.device)
    return sum(len(r.token_ids) for r in rollouts) / (time.perf_counter() - t0)


@torch.no_grad()
def hf_tokens_per_s(model, tok, prompts, args, seed: int) -> float:
    input_ids, mask = _tokenize_prompts(tok, prompts)
    torch.manual_seed(seed)
    _sync(args.device)
    t0 = time.perf_counter()
    out = model.generate(input_ids=input_ids.to(args.device), attention_mask=mask.to(args.device),
                         do_sample=True, temperature=1.0, top_p=1.0, top_k=0,
                         max_new_tokens=args.max_new_tokens, num_return_sequences=SAMPLES_PER_PROMPT,
                         pad_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id)
    _sync(args.device)
    seconds = time.perf_counter() - t0
    generated = out[:, input_ids.size(1):]
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
    ap.add_argument("--headline-batch", type=int, default=64, help="the batch of the last line's ratio")
    args = ap.parse_args()

    args.device = str(resolve_device(args.device))
    model = load_model(args.model, args.dtype, device=args.device).eval()
    tok = load_tokenizer(args.model)
    problems = synthetic.test_set(1000)
    print(f"model {args.model} ({model.num_parameters() / 1e6:.1f}M params, {args.dtype}, {args.device}), "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, max_new_tokens {args.max_new_tokens}")
    warmup = [build_prompt(problems[0]["problem"], "r1_zero", tok)]
    r1kit_tokens_per_s(model, tok, warmup, args, seed=0)
    hf_tokens_per_s(model, tok, warmup, args, seed=0)
    ratios = {}
    for batch in map(int, args.batches.split(",")):
        ours, hf = [], []
        for r in range(args.rounds):
            chunk = problems[r * batch // SAMPLES_PER_PROMPT: (r + 1) * batch // SAMPLES_PER_PROMPT]
            prompts = [build_prompt(p["problem"], "r1_zero", tok) for p in chunk]
            ours.append(r1kit_tokens_per_s(model, tok, prompts, args, seed=r))
            hf.append(hf_tokens_per_s(model, tok, prompts, args, seed=r))
        ratios[batch] = statistics.median(o / h for o, h in zip(ours, hf))
        print(f"batch {batch:4d}: r1kit {statistics.median(ours):8.0f} tok/s (min {min(ours):.0f}, max {max(ours):.0f})"
              f" | hf {statistics.median(hf):8.0f} tok/s (min {min(hf):.0f}, max {max(hf):.0f})"
              f" | ratio median {ratios[batch]:.2f}", flush=True)
    headline = ratios.get(args.headline_batch, next(iter(ratios.values())))
    print(f"ratio r1kit/hf tokens-per-second: {headline:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
