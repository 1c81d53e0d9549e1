"""The checks of scripts/gpu_check.sh (read its header first). Prints one summary table at the end.

    python scripts/gpu_check.py --device cuda            # the full check (<= 8 min on one H100/H200)
    python scripts/gpu_check.py --device cpu --reduced   # the dry run: same code, small shapes
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from r1kit.config import load_config  # noqa: E402
from r1kit.grpo.config import ZeroConfig  # noqa: E402
from r1kit.models import load_model, load_tokenizer  # noqa: E402
from r1kit.models.device import resolve_device  # noqa: E402

# dense bf16 peak FLOP/s of the GPUs the check is meant for (the MFU denominator)
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12}
# model shapes for the speed checks (random weights: no download, no registry)
SHAPES = {
    "smollm2-135m": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                         num_key_value_heads=3, vocab_size=49152, tie_word_embeddings=True),
    "qwen2.5-0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                         num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True),
}
REDUCED = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
               num_key_value_heads=2, vocab_size=2048, tie_word_embeddings=True)


def random_model(folder: Path, shape: dict) -> str:
    """A Llama-architecture model of ``shape`` with random weights and a word-level tokenizer of
    the same vocabulary ("w0" .. "wN", EOS last), saved as an HF folder."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {f"w{i}": i for i in range(shape["vocab_size"] - 2)}
    vocab.update({"<unk>": shape["vocab_size"] - 2, "<eos>": shape["vocab_size"] - 1})
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", eos_token="<eos>", pad_token="<eos>")
    cfg = LlamaConfig(**shape, max_position_embeddings=2048, bos_token_id=None,
                      eos_token_id=shape["vocab_size"] - 1, pad_token_id=shape["vocab_size"] - 1)
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(folder)
    fast.save_pretrained(folder)
    return str(folder)


def check_greedy_equals_hf(device, reduced: bool) -> dict:
    """Greedy r1kit sampling == HF ``generate`` on the tiny base (float32), token for token."""
    from r1kit.data import synthetic
    from r1kit.prompts import build_prompt
    from r1kit.rollout.engine import SamplingParams, _tokenize_prompts, sample

    model, tok = load_model("tiny", "float32", device), load_tokenizer("tiny")
    prompts = [build_prompt(p["problem"], "r1_zero", tok) for p in synthetic.test_set(8 if reduced else 32)]
    ours = sample(model, tok, prompts, SamplingParams(n=1, temperature=0.0, max_new_tokens=64))
    ids, mask = _tokenize_prompts(tok, prompts)
    with torch.no_grad():
        out = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), do_sample=False,
                             max_new_tokens=64, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    same = 0
    for r, row in zip(ours, out[:, ids.size(1):].tolist()):
        hf = row[: len(r.token_ids)]
        same += hf == r.token_ids
    return {"check": "greedy sampling == HF generate", "value": f"{same}/{len(ours)} equal",
            "ok": same == len(ours)}


def check_logprobs_match(device, reduced: bool) -> dict:
    """Log-probs recorded while sampling == the teacher-forced ones of the trainer (float32)."""
    from r1kit.models.logprobs import completion_logprobs, make_group_batch
    from r1kit.data import synthetic
    from r1kit.prompts import build_prompt
    from r1kit.rollout import SamplingParams, sample

    model, tok = load_model("tiny", "float32", device), load_tokenizer("tiny")
    prompts = [build_prompt(p["problem"], "r1_zero", tok) for p in synthetic.test_set(4 if reduced else 16)]
    g = 4
    rollouts = sample(model, tok, prompts, SamplingParams(n=g, temperature=1.0, max_new_tokens=64, seed=0))
    prompt_ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
    batch = make_group_batch(prompt_ids, [r.token_ids for r in rollouts], g, tok.pad_token_id).to(device)
    with torch.no_grad():
        forced, _ = completion_logprobs(model, batch)
    worst = 0.0
    for j, r in enumerate(rollouts):
        sampled = torch.tensor(r.logprobs, device=forced.device)
        worst = max(worst, (forced[j, : len(r.logprobs)] - sampled).abs().max().item())
    return {"check": "sampled log-probs == teacher-forced", "value": f"max |diff| {worst:.2e}", "ok": worst < 1e-3}


def check_tiny_learns(device, reduced: bool, out: Path) -> dict:
    """A short R1-Zero run of the tiny base on the device: held-out pass@1 before and after."""
    from r1kit.grpo.trainer import GRPOTrainer

    steps = 2 if reduced else 20
    cfg = load_config(ZeroConfig, ROOT / "recipes" / "zero_tiny.yaml", [
        f"device={device}", f"steps={steps}", f"eval.every={steps}", f"eval.limit={16 if reduced else 200}",
        "log_tensorboard=false", "checkpoint_every=0", f"out={out / 'tiny'}"]
        + (["grpo.prompts_per_step=2", "grpo.group_size=4", "rollout.max_new_tokens=32",
            "eval.max_new_tokens=32", "eval.k=1"] if reduced else []))
    trainer = GRPOTrainer(cfg, progress=False)
    summary = trainer.train()
    evals = [json.loads(line) for line in (out / "tiny" / "eval.jsonl").read_text().splitlines()]
    gain = evals[-1]["pass@1"] - evals[0]["pass@1"]
    return {"check": f"tiny R1-Zero, {steps} steps", "value": f"pass@1 {evals[0]['pass@1']:.3f} -> "
            f"{evals[-1]['pass@1']:.3f}", "ok": summary["steps"] == steps and (reduced or gain > 0.05)}


def grpo_steps(device, model_dir: str, lora: bool, reduced: bool, out: Path) -> dict:
    """bf16 GRPO steps of a random model: s/step, sampled tokens/s, peak memory, MFU of the train part."""
    from r1kit.grpo.trainer import GRPOTrainer

    rounds = 1 if reduced else 3
    overrides = [f"model={model_dir}", "data=synthetic", f"device={device}", "dtype=bfloat16", f"steps={rounds + 1}",
                 "eval.every=0", "checkpoint_every=0", "log_tensorboard=false", "rewards={format: 1.0}",
                 "accuracy_reward=format", f"out={out / ('lora' if lora else 'full')}", "template=plain",
                 f"grpo.prompts_per_step={2 if reduced else 16}", f"grpo.group_size={2 if reduced else 8}",
                 f"rollout.max_new_tokens={16 if reduced else 256}"] + (["lora.r=16"] if lora else [])
    trainer = GRPOTrainer(load_config(ZeroConfig, None, overrides), progress=False)
    n_params = sum(p.numel() for p in trainer.policy.parameters())
    trainer.train_step()  # warm-up
    rows = []
    for _ in range(rounds):
        batch, opt, times = trainer.train_step()
        tokens = sum(len(r.token_ids) + len(g.prompt_ids) for g in batch.train for r in g.rollouts)
        sampled = sum(len(r.token_ids) for g in batch.sampled for r in g.rollouts)
        # forward + backward: the usual 6 FLOPs per parameter per token (attention not counted; with
        # LoRA the frozen weights need no weight gradient, so that row's MFU is an overestimate)
        rows.append({"step_s": times["step_seconds"], "train_s": times["train_seconds"],
                     "tok_s": sampled / times["rollout_seconds"], "flops": 6 * n_params * tokens,
                     "peak": opt["peak_memory_mb"]})
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    peak = next((v for k, v in PEAK_BF16.items() if k in name), None)
    mfu = med["flops"] / med["train_s"] / peak if peak else None
    return {"check": f"GRPO step bf16{' + LoRA r16' if lora else ''} ({n_params / 1e6:.1f}M params)",
            "value": f"{med['step_s']:.2f} s/step, {med['tok_s']:.0f} tok/s sampled, peak {med['peak']:.0f} MiB, "
                     f"MFU(train) {'n/a' if mfu is None else f'{100 * mfu:.1f}%'}", "ok": True}


def rollout_vs_hf(device, model_dir: str, reduced: bool) -> list[dict]:
    """r1kit's rollout tokens/s against HF generate (benchmarks/rollout_vs_hf.py's functions)."""
    spec = importlib.util.spec_from_file_location("rollout_vs_hf", ROOT / "benchmarks" / "rollout_vs_hf.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    model, tok = load_model(model_dir, "bfloat16", device), load_tokenizer(model_dir)
    args = argparse.Namespace(device=str(device), max_new_tokens=16 if reduced else 256)
    prompts_all = [" ".join(f"w{(7 * i + j) % 1000}" for j in range(40)) for i in range(64)]
    rows = []
    for batch in ((16,) if reduced else (64, 256)):
        prompts = prompts_all[: batch // bench.SAMPLES_PER_PROMPT]
        for fixed in (False, True):  # with early stopping; fixed length (EOS ignored on both sides)
            bench.r1kit_tokens_per_s(model, tok, prompts, args, seed=0, fixed=fixed)  # warm-up
            ours = bench.r1kit_tokens_per_s(model, tok, prompts, args, seed=1, fixed=fixed)
            hf = bench.hf_tokens_per_s(model, tok, prompts, args, seed=1, fixed=fixed)
            mode = "fixed length" if fixed else "EOS"
            rows.append({"check": f"rollout tok/s, batch {batch}, {mode}", "value": f"r1kit {ours:.0f} | HF {hf:.0f} "
                         f"| ratio {ours / hf:.2f}", "ok": True})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--reduced", action="store_true", help="small shapes and few steps (the CPU dry run)")
    ap.add_argument("--shape", default="smollm2-135m", choices=sorted(SHAPES))
    ap.add_argument("--json", default=None, help="also write the table as JSON here")
    args = ap.parse_args()
    device = resolve_device(args.device)
    torch.manual_seed(0)
    started = time.time()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        shape = REDUCED if args.reduced else SHAPES[args.shape]
        checks = [lambda: [check_greedy_equals_hf(device, args.reduced)],
                  lambda: [check_logprobs_match(device, args.reduced)],
                  lambda: [check_tiny_learns(device, args.reduced, out)]]
        model_dir = random_model(out / "random", shape)
        checks += [lambda: [grpo_steps(device, model_dir, False, args.reduced, out)],
                   lambda: [grpo_steps(device, model_dir, True, args.reduced, out)],
                   lambda: rollout_vs_hf(device, model_dir, args.reduced)]
        for check in checks:
            t0 = time.time()
            try:
                new = check()
            except Exception as exc:  # one failed check must not hide the others
                traceback.print_exc()
                new = [{"check": getattr(check, "__name__", "check"), "value": f"error: {exc!r}"[:200], "ok": False}]
            for row in new:
                row["seconds"] = round(time.time() - t0, 1)
                print(f"[gpu_check] {row}", flush=True)
            rows += new
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"\nr1kit GPU check on {name} (torch {torch.__version__}, {'reduced' if args.reduced else args.shape}), "
          f"{time.time() - started:.0f} s")
    width = max(len(r["check"]) for r in rows)
    print(f"| {'check'.ljust(width)} | ok   | result")
    for r in rows:
        print(f"| {r['check'].ljust(width)} | {'yes ' if r['ok'] else 'NO  '} | {r['value']}")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": name, "rows": rows}, indent=1))
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
