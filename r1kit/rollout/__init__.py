"""Rollout: batched sampling from a Hugging Face causal LM with the log-probs of what was sampled.

One interface, ``sample``, serves the trainer, ``eval`` and (later) rejection sampling. Each
prompt is prefilled once and its KV cache repeated for its ``n`` samples; finished sequences are
dropped from the batch so that the decode loop only pays for live rows.

Log-probs are those of the policy the trainer optimises: ``log softmax(logits / temperature)``
over the full vocabulary (top-p/top-k only restrict what is drawn, as in TRL and veRL).
"""
from __future__ import annotations

import inspect
from functools import lru_cache
from dataclasses import dataclass, field

import torch


@dataclass
class SamplingParams:
    """Decoding options.

    n: samples per prompt. temperature: 0 means greedy. top_p/top_k: nucleus / top-k filtering
    (1.0 / 0 disable them). max_new_tokens: hard cap on completion length. stop: strings that end a
    completion (kept in the text, like ``</answer>``). seed: seeds the sampling generator.
    """

    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 128
    stop: list[str] = field(default_factory=list)
    seed: int | None = None


@dataclass
class Rollout:
    """One completion: its prompt index, token ids, per-token log-probs, text and finish reason."""

    prompt_index: int
    token_ids: list[int]
    logprobs: list[float]
    text: str
    finish_reason: str  # "eos", "stop" or "length"

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"


def filter_logits(logits: torch.Tensor, top_p: float, top_k: int) -> torch.Tensor:
    """Mask (to -inf) the logits outside the top-k and outside the smallest nucleus of mass top_p."""
    if top_k and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        probs = sorted_logits.softmax(-1)
        # drop a token when the mass before it already reaches top_p (the top token always stays)
        drop_sorted = probs.cumsum(-1) - probs >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def _tokenize_prompts(tokenizer, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    width = max(map(len, ids))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    input_ids = torch.full((len(ids), width), pad, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for row, seq in enumerate(ids):  # left padding: every prompt ends at the same column
        input_ids[row, width - len(seq):] = torch.tensor(seq, dtype=torch.long)
        mask[row, width - len(seq):] = 1
    return input_ids, mask


def _stop_hit(tokenizer, token_ids: list[int], stop: list[str]) -> bool:
    if not stop:
        return False
    tail = tokenizer.decode(token_ids[-8:])
    return any(s in tail for s in stop)


@lru_cache(maxsize=None)
def _cache_kwarg(model_class: type) -> str:
    """transformers >= 5.24 names the KV-cache argument ``cache``, older versions ``past_key_values``."""
    return "cache" if "cache" in inspect.signature(model_class.forward).parameters else "past_key_values"


def _forward(model, cache=None, **inputs):
    """One forward with a KV cache; returns the last position's logits and the updated cache."""
    kwargs = {_cache_kwarg(type(model)): cache} if cache is not None else {}
    out = model(**inputs, use_cache=True, **kwargs)
    new_cache = getattr(out, "cache", None)
    return out.logits[:, -1].float(), new_cache if new_cache is not None else out.past_key_values


@torch.no_grad()
def sample(model, tokenizer, prompts: list[str], params: SamplingParams) -> list[Rollout]:
    """Sample ``params.n`` completions for every prompt; returns them grouped prompt by prompt."""
    device = next(model.parameters()).device
    generator = torch.Generator(device=device)
    generator.manual_seed(params.seed if params.seed is not None else torch.seed() % 2**63)
    input_ids, mask = _tokenize_prompts(tokenizer, prompts)
    input_ids, mask = input_ids.to(device), mask.to(device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    logits, cache = _forward(model, input_ids=input_ids, attention_mask=mask, position_ids=positions)
    n = params.n
    cache.batch_repeat_interleave(n)
    logits = logits.repeat_interleave(n, dim=0)
    mask = mask.repeat_interleave(n, dim=0)
    next_pos = positions[:, -1].repeat_interleave(n) + 1

    total = len(prompts) * n
    live = torch.arange(total, device=device)  # which original rows the batch rows are
    tokens: list[list[int]] = [[] for _ in range(total)]
    logps: list[list[float]] = [[] for _ in range(total)]
    finish = ["length"] * total
    eos = tokenizer.eos_token_id
    for step in range(params.max_new_tokens):
        if params.temperature > 0:
            scaled = logits / params.temperature
            logprobs_all = scaled.log_softmax(-1)
            probs = filter_logits(scaled, params.top_p, params.top_k).softmax(-1)
            chosen = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
        else:
            logprobs_all = logits.log_softmax(-1)
            chosen = logits.argmax(-1)
        chosen_logp = logprobs_all.gather(-1, chosen[:, None]).squeeze(-1)
        keep = []
        for row, (orig, tok, lp) in enumerate(zip(live.tolist(), chosen.tolist(), chosen_logp.tolist())):
            tokens[orig].append(tok)
            logps[orig].append(lp)
            if tok == eos:
                finish[orig] = "eos"
            elif _stop_hit(tokenizer, tokens[orig], params.stop):
                finish[orig] = "stop"
            else:
                keep.append(row)
        if not keep or step == params.max_new_tokens - 1:
            break
        if len(keep) < len(live):
            index = torch.tensor(keep, device=device)
            cache.batch_select_indices(index)
            live, chosen, mask, next_pos = live[index], chosen[index], mask[index], next_pos[index]
        mask = torch.cat([mask, mask.new_ones(len(live), 1)], dim=1)
        logits, cache = _forward(model, cache, input_ids=chosen[:, None], attention_mask=mask,
                                 position_ids=next_pos[:, None])
        next_pos = next_pos + 1

    rollouts = []
    for i in range(total):
        ids = tokens[i]
        text_ids = ids[:-1] if finish[i] == "eos" else ids
        rollouts.append(Rollout(i // n, ids, logps[i], tokenizer.decode(text_ids), finish[i]))
    return rollouts
