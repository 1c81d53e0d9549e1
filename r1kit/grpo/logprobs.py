"""Log-probs of sampled completions under a policy, computed the cheap way.

Three savings over a plain ``log_softmax(model(prompt + completion).logits)``, none of which
changes the result beyond float rounding (tests compare values and gradients with the plain way):

1. **Shared prompts.** A group's G completions share one prompt: the prompt is run once, its KV
   cache repeated G times (differentiably), and only the completions are run on top of it.
2. **Little padding.** Completions are right-padded only to the longest in their micro-batch, and
   micro-batches are filled by a token budget after sorting groups by length.
3. **Chunked vocabulary.** The LM head and log-softmax run on the completion tokens only, in
   chunks, inside one autograd function that recomputes each chunk's logits in backward: peak
   memory is ``chunk x vocab`` instead of ``batch x length x vocab``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from r1kit.rollout import forward_kwargs

# logits kept alive at once in the chunked LM head: ``CHUNK_ELEMENTS / vocab`` tokens per chunk
CHUNK_ELEMENTS = 1 << 24


class LinearLogProbs(torch.autograd.Function):
    """``log softmax(h W^T / T)[target]`` and the entropy of that softmax, chunk by chunk.

    Forward keeps only the log-sum-exp of every row. Backward recomputes each chunk's logits z and
    uses d log p_y / d z = onehot(y) - softmax(z) (divided by T), so no [N, V] tensor is stored.
    The entropy ``lse - sum p z`` is returned without gradient.
    """

    @staticmethod
    def forward(ctx, hidden, weight, targets, temperature: float, chunk: int):
        dtype = torch.promote_types(hidden.dtype, torch.float32)  # bf16 in, fp32 math
        mm_dtype = _matmul_dtype(hidden, dtype)
        w = weight.to(mm_dtype)
        n = hidden.size(0)
        logp, lse, entropy = (hidden.new_empty(n, dtype=dtype) for _ in range(3))
        for lo in range(0, n, chunk):
            z = (hidden[lo: lo + chunk].to(mm_dtype) @ w.T).to(dtype) / temperature
            z_lse = z.logsumexp(-1)
            logp[lo: lo + chunk] = z.gather(-1, targets[lo: lo + chunk, None]).squeeze(-1) - z_lse
            entropy[lo: lo + chunk] = z_lse - ((z - z_lse[:, None]).exp() * z).sum(-1)
            lse[lo: lo + chunk] = z_lse
        ctx.save_for_backward(hidden, weight, targets, lse)
        ctx.temperature, ctx.chunk, ctx.mm_dtype = temperature, chunk, mm_dtype
        ctx.mark_non_differentiable(entropy)
        return logp, entropy

    @staticmethod
    def backward(ctx, grad_logp, _grad_entropy):
        hidden, weight, targets, lse = ctx.saved_tensors
        mm = ctx.mm_dtype
        w = weight.to(mm)
        grad_hidden = torch.empty(hidden.shape, dtype=lse.dtype, device=hidden.device)
        grad_weight = torch.zeros(weight.shape, dtype=lse.dtype, device=weight.device)
        for lo in range(0, hidden.size(0), ctx.chunk):
            h = hidden[lo: lo + ctx.chunk].to(mm)
            z = (h @ w.T).to(lse.dtype) / ctx.temperature
            g = grad_logp[lo: lo + ctx.chunk, None]
            dz = -(z - lse[lo: lo + ctx.chunk, None]).exp() * g
            dz.scatter_add_(-1, targets[lo: lo + ctx.chunk, None], g)
            dz = (dz / ctx.temperature).to(mm)
            grad_hidden[lo: lo + ctx.chunk] = dz @ w
            grad_weight += dz.T @ h
        return grad_hidden.to(hidden.dtype), grad_weight.to(weight.dtype), None, None, None


def _matmul_dtype(hidden: torch.Tensor, math_dtype: torch.dtype) -> torch.dtype:
    """The dtype of the LM-head products: autocast's when the forward runs under it (mixed precision,
    r1kit.models.precision), else the float32 math dtype. Backward reuses it, autocast or not."""
    device_type = hidden.device.type
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return math_dtype


def linear_logprobs(hidden, weight, targets, temperature: float = 1.0, chunk: int | None = None):
    """Log-prob of ``targets`` [N] and entropy under ``softmax(hidden [N, H] @ weight [V, H]^T / T)``."""
    chunk = chunk or max(16, CHUNK_ELEMENTS // weight.size(0))
    return LinearLogProbs.apply(hidden, weight, targets, float(temperature), chunk)


@dataclass
class GroupBatch:
    """Prompts (left-padded, one row per group) and their completions (right-padded, G rows each)."""

    prompt_ids: torch.Tensor       # [P, Wp]
    prompt_mask: torch.Tensor      # [P, Wp]
    completion_ids: torch.Tensor   # [P * G, Wc]
    completion_mask: torch.Tensor  # [P * G, Wc], 1 on real tokens
    group_size: int

    @property
    def padded_tokens(self) -> int:
        return self.prompt_ids.numel() + self.completion_ids.numel()

    def to(self, device) -> "GroupBatch":
        return GroupBatch(self.prompt_ids.to(device), self.prompt_mask.to(device), self.completion_ids.to(device),
                          self.completion_mask.to(device), self.group_size)


def make_group_batch(prompts: list[list[int]], completions: list[list[int]], group_size: int,
                     pad_id: int) -> GroupBatch:
    """Build a ``GroupBatch``; ``completions`` holds ``group_size`` rows per prompt, in order."""
    wp, wc = max(map(len, prompts)), max(1, max(map(len, completions)))
    cpu = torch.device("cpu")  # built on the host, moved to the model's device with ``GroupBatch.to``
    prompt_ids = torch.full((len(prompts), wp), pad_id, dtype=torch.long, device=cpu)
    prompt_mask = torch.zeros((len(prompts), wp), dtype=torch.long, device=cpu)
    for i, p in enumerate(prompts):
        prompt_ids[i, wp - len(p):] = torch.tensor(p, dtype=torch.long, device=cpu)
        prompt_mask[i, wp - len(p):] = 1
    completion_ids = torch.full((len(completions), wc), pad_id, dtype=torch.long, device=cpu)
    completion_mask = torch.zeros((len(completions), wc), dtype=torch.long, device=cpu)
    for i, c in enumerate(completions):
        completion_ids[i, : len(c)] = torch.tensor(c, dtype=torch.long, device=cpu)
        completion_mask[i, : len(c)] = 1
    return GroupBatch(prompt_ids, prompt_mask, completion_ids, completion_mask, group_size)


def split_by_tokens(prompt_lengths: list[int], completion_lengths: list[list[int]], token_budget: int,
                    call_overhead: int = 256) -> list[list[int]]:
    """Micro-batches of group indices that minimise padded tokens + ``call_overhead`` per forward.

    Groups are sorted by their longest completion, so a micro-batch is a contiguous run of that
    order; a dynamic programme picks the cut points. Every micro-batch holds at most
    ``token_budget`` padded tokens (a single group over the budget gets one of its own).
    """
    order = sorted(range(len(prompt_lengths)), key=lambda i: max(completion_lengths[i], default=0))
    n = len(order)
    best, cut = [0.0] + [float("inf")] * n, [0] * (n + 1)
    for end in range(1, n + 1):
        wp = rows = 0
        wc = max(max(completion_lengths[order[end - 1]], default=1), 1)  # the longest of the run
        for start in range(end - 1, -1, -1):
            wp = max(wp, prompt_lengths[order[start]])
            rows += len(completion_lengths[order[start]])
            cost = (end - start) * wp + rows * wc
            if cost > token_budget and end - start > 1:
                break
            if best[start] + cost + call_overhead < best[end]:
                best[end], cut[end] = best[start] + cost + call_overhead, start
    batches, end = [], n
    while end > 0:
        batches.append(order[cut[end]: end])
        end = cut[end]
    return batches[::-1]


def _check_head(model):
    head = model.get_output_embeddings()
    cfg = model.config.get_text_config(decoder=True)
    if not isinstance(head, torch.nn.Linear) or head.bias is not None:
        raise ValueError(f"{type(model).__name__}: the chunked log-prob path needs a bias-free Linear LM head")
    for attr in ("final_logit_softcapping", "logit_scale"):
        if getattr(cfg, attr, None) not in (None, 1.0):
            raise ValueError(f"{type(model).__name__}: logits post-processing ({attr}) is not supported")
    return head


def completion_logprobs(model, batch: GroupBatch, temperature: float = 1.0):
    """Per-token log-probs and entropies of the completions, [P*G, Wc] each (0 on padding)."""
    head, decoder = _check_head(model), model.get_decoder()
    cache_arg, _ = forward_kwargs(type(decoder))
    g = batch.group_size
    positions = (batch.prompt_mask.cumsum(-1) - 1).clamp(min=0)
    out = decoder(input_ids=batch.prompt_ids, attention_mask=batch.prompt_mask, position_ids=positions,
                  use_cache=True)
    cache = getattr(out, "cache", None) or out.past_key_values
    cache.batch_repeat_interleave(g)
    width = batch.completion_ids.size(1)
    start = positions[:, -1:].repeat_interleave(g, 0) + 1
    out_c = decoder(input_ids=batch.completion_ids,
                    attention_mask=torch.cat([batch.prompt_mask.repeat_interleave(g, 0), batch.completion_mask], 1),
                    position_ids=start + torch.arange(width, device=start.device), use_cache=True, **{cache_arg: cache})
    # the hidden state that predicts completion token t: the prompt's last for t = 0, else token t-1's
    hidden = torch.cat([out.last_hidden_state[:, -1:].repeat_interleave(g, 0),
                        out_c.last_hidden_state[:, :-1]], 1)
    real = batch.completion_mask.bool()
    logp_real, entropy_real = linear_logprobs(hidden[real], head.weight, batch.completion_ids[real], temperature)
    logp = torch.zeros(real.shape, dtype=logp_real.dtype, device=logp_real.device)
    logp = logp.masked_scatter(real, logp_real)
    entropy = torch.zeros_like(logp, requires_grad=False).masked_scatter(real, entropy_real)
    return logp, entropy
