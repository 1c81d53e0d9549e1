"""Rollout: batched sampling from a Hugging Face causal LM with the log-probs of what was sampled.

One interface, ``sample``, serves the trainer, ``eval``, rejection sampling and distillation.
Each prompt is prefilled once (logits of its last position only) and its KV cache repeated for its
``n`` samples; the cache is allocated once and written in place (``rollout.cache``); finished
sequences are dropped from the batch so that the decode loop pays for live rows only; per-step
bookkeeping is tensor work, with Python touching only the rows that end.

Log-probs are those of the policy the trainer optimises: ``log softmax(logits / temperature)``
over the full vocabulary (top-p/top-k only restrict what is drawn, as in TRL and veRL).
"""
from __future__ import annotations

import inspect
from functools import lru_cache
from dataclasses import dataclass, field

import torch

from r1kit.rollout.cache import preallocated_cache, supports_preallocated_cache


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
        logits = logits.masked_fill(~nucleus(logits, top_p), float("-inf"))
    return logits


def nucleus(logits: torch.Tensor, top_p: float, candidates: int = 512) -> torch.Tensor:
    """Boolean mask of the smallest set of top tokens whose probability reaches ``top_p``.

    A token is dropped when the mass of the tokens ranked before it already reaches top_p (the top
    token always stays). Sorting a 50k-150k vocabulary for every row at every step is the slow
    part, so the nucleus is first looked for among the ``candidates`` most likely tokens; only rows
    whose nucleus is larger are sorted in full. The result is the same either way.
    """
    k = min(candidates, logits.size(-1))
    top, order = torch.topk(logits, k, dim=-1)  # descending
    probs = (top - logits.logsumexp(-1, keepdim=True)).exp()
    before = probs.cumsum(-1) - probs
    keep = torch.zeros(logits.shape, dtype=torch.bool, device=logits.device)
    keep.scatter_(-1, order, before < top_p)
    wider = (before[:, -1] + probs[:, -1]) < top_p  # the nucleus does not fit in the candidates
    if k < logits.size(-1) and wider.any():
        rows = wider.nonzero().squeeze(-1)
        full, full_order = torch.sort(logits[rows], descending=True, dim=-1)
        p_full = full.softmax(-1)
        keep[rows] = torch.zeros_like(full, dtype=torch.bool).scatter(-1, full_order, p_full.cumsum(-1) - p_full < top_p)
    return keep


def _tokenize_prompts(tokenizer, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    width = max(map(len, ids))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    input_ids = torch.full((len(ids), width), pad, dtype=torch.long, device="cpu")  # moved to the model's
    mask = torch.zeros((len(ids), width), dtype=torch.long, device="cpu")                 # device by ``sample``
    for row, seq in enumerate(ids):  # left padding: every prompt ends at the same column
        input_ids[row, width - len(seq):] = torch.tensor(seq, dtype=torch.long, device="cpu")
        mask[row, width - len(seq):] = 1
    return input_ids, mask


@lru_cache(maxsize=None)
def forward_kwargs(model_class: type) -> tuple[str, bool]:
    """The KV-cache argument's name (``cache`` from transformers 5.24, ``past_key_values`` before)
    and whether the model takes ``logits_to_keep``."""
    params = inspect.signature(model_class.forward).parameters
    return ("cache" if "cache" in params else "past_key_values"), "logits_to_keep" in params


def _forward(model, cache, **inputs):
    """One forward with a KV cache; returns the last position's logits (fp32) and the cache."""
    cache_arg, keeps = forward_kwargs(type(model))
    extra = {"logits_to_keep": 1} if keeps else {}
    out = model(**inputs, use_cache=True, **{cache_arg: cache}, **extra)
    new_cache = getattr(out, "cache", None)
    return out.logits[:, -1].float(), new_cache if new_cache is not None else out.past_key_values


@lru_cache(maxsize=16)
def _stop_triggers(tokenizer, stop: tuple[str, ...], vocab_size: int) -> torch.Tensor:
    """Token ids after which a stop string may have completed: their text holds a stop string's last
    character (or a partial multi-byte character, or whitespace when a stop string ends in it)."""
    lasts = {s[-1] for s in stop}
    spacey = any(c.isspace() for c in lasts)
    n = min(vocab_size, len(tokenizer))
    texts = tokenizer.batch_decode([[i] for i in range(n)])
    trigger = torch.zeros(vocab_size, dtype=torch.bool, device="cpu")  # cached on the host
    for i, text in enumerate(texts):
        trigger[i] = ("\ufffd" in text or any(c in text for c in lasts)
                      or (spacey and (not text or any(c.isspace() for c in text))))
    return trigger


class _StopMatcher:
    """Finds stop strings without decoding every row every step: only rows that sample a trigger
    token (``_stop_triggers``) have the tail of their completion decoded."""

    def __init__(self, tokenizer, stop: list[str], vocab_size: int, device):
        self.tokenizer, self.stop = tokenizer, stop
        self.tail = max((len(s.encode()) for s in stop), default=0) + 1  # every token is >= 1 byte
        self.trigger = (_stop_triggers(tokenizer, tuple(stop), vocab_size).to(device) if stop
                        else torch.zeros(vocab_size, dtype=torch.bool, device=device))

    def hits(self, token_ids: list[int]) -> bool:
        text = self.tokenizer.decode(token_ids[-self.tail:])
        return any(s in text for s in self.stop)


def _draw(logits: torch.Tensor, params: SamplingParams, generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The next token of every row and its log-prob under softmax(logits / temperature)."""
    if params.temperature <= 0:
        chosen = logits.argmax(-1)
        logprobs_all = logits.log_softmax(-1)
    else:
        logprobs_all = (logits / params.temperature).log_softmax(-1)
        if params.top_p < 1.0 or params.top_k:
            probs = filter_logits(logprobs_all, params.top_p, params.top_k).softmax(-1)
        else:
            probs = logprobs_all.exp()
        chosen = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
    return chosen, logprobs_all.gather(-1, chosen[:, None]).squeeze(-1)


@torch.no_grad()
def sample(model, tokenizer, prompts: list[str], params: SamplingParams,
           compact_fraction: float = 0.125) -> list[Rollout]:
    """Sample ``params.n`` completions for every prompt; returns them grouped prompt by prompt.

    Finished rows stay in the batch (their outputs ignored) until they are at least
    ``compact_fraction`` of it; then the batch and its cache are compacted to the live rows.
    """
    device = next(model.parameters()).device
    generator = torch.Generator(device=device)
    generator.manual_seed(params.seed if params.seed is not None else torch.seed() % 2**63)
    input_ids, prompt_mask = _tokenize_prompts(tokenizer, prompts)
    input_ids, prompt_mask = input_ids.to(device), prompt_mask.to(device)
    n, width, max_new = params.n, input_ids.size(1), params.max_new_tokens
    total = len(prompts) * n

    positions = (prompt_mask.cumsum(-1) - 1).clamp(min=0)
    cache = preallocated_cache(model, width + max_new) if supports_preallocated_cache(model) else None
    logits, cache = _forward(model, cache, input_ids=input_ids, attention_mask=prompt_mask, position_ids=positions)
    cache.batch_repeat_interleave(n)
    logits = logits.repeat_interleave(n, dim=0)
    # one attention mask for the whole generation: the prompt's, then ones; each step passes a view
    mask = torch.ones(total, width + max_new, dtype=torch.long, device=device)
    mask[:, :width] = prompt_mask.repeat_interleave(n, dim=0)
    next_pos = positions[:, -1].repeat_interleave(n) + 1

    tokens = torch.zeros(total, max_new, dtype=torch.long, device=device)
    logps = torch.zeros(total, max_new, device=device)
    lengths = torch.full((total,), max_new, dtype=torch.long, device="cpu")  # host bookkeeping
    finish = ["length"] * total
    stops = _StopMatcher(tokenizer, params.stop, logits.size(-1), device)
    rows = torch.arange(total, device=device)  # the original row of every batch row
    alive = torch.ones(total, dtype=torch.bool, device=device)  # batch rows still generating
    for step in range(max_new):
        chosen, chosen_logp = _draw(logits, params, generator)
        tokens[rows, step] = torch.where(alive, chosen, tokens[rows, step])
        logps[rows, step] = torch.where(alive, chosen_logp, logps[rows, step])
        ended = alive & ((chosen == tokenizer.eos_token_id) | stops.trigger[chosen])
        for b in ended.nonzero().flatten().tolist():
            orig = int(rows[b])
            if chosen[b] == tokenizer.eos_token_id:
                finish[orig] = "eos"
            elif stops.hits(tokens[orig, : step + 1].tolist()):
                finish[orig] = "stop"
            else:
                continue
            lengths[orig] = step + 1
            alive[b] = False
        live_count = int(alive.sum())
        if live_count == 0 or step == max_new - 1:
            break
        if len(rows) - live_count >= compact_fraction * len(rows):
            keep = alive.nonzero().flatten()
            cache.batch_select_indices(keep)
            rows, chosen, mask, next_pos = rows[keep], chosen[keep], mask[keep], next_pos[keep]
            alive = alive[keep]
        logits, cache = _forward(model, cache, input_ids=chosen[:, None],
                                 attention_mask=mask[:, : width + step + 1], position_ids=next_pos[:, None])
        next_pos = next_pos + 1

    rollouts = []
    for i, (ids, lps) in enumerate(zip(tokens.tolist(), logps.tolist())):
        ids, lps = ids[: lengths[i]], lps[: lengths[i]]
        text_ids = ids[:-1] if finish[i] == "eos" else ids
        rollouts.append(Rollout(i // n, ids, lps, tokenizer.decode(text_ids), finish[i]))
    return rollouts
