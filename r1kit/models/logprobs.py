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

from r1kit.models import forward_kwargs

# logits kept alive at once in the chunked LM head: ``CHUNK_ELEMENTS / vocab`` tokens per chunk.
# Not smaller: every chunk's backward adds a full [V, H] product into the weight's gradient.
CHUNK_ELEMENTS = 1 << 24


class _ScaledWeight:
    """``weight / T`` in the matmul dtype, cast once per optimiser step, not once per chunk or call.

    One entry per weight (the policy's and the reference model's), reused while the weight is
    unchanged: same storage, same version counter and the same values at 64 spread-out positions
    (optimisers that update in place without bumping the version counter, as fused AdamW does,
    still change those values).
    """

    def __init__(self, entries: int = 4):
        self.entries, self.cache = entries, {}

    @staticmethod
    def _probe(weight):
        flat = weight.detach().reshape(-1)
        return flat[:: max(1, flat.numel() // 64)].clone()

    def __call__(self, weight: torch.Tensor, dtype: torch.dtype, temperature: float) -> torch.Tensor:
        key = (weight.data_ptr(), dtype, temperature)
        hit = self.cache.get(key)
        if hit is None or hit[0] != weight._version or not torch.equal(self._probe(weight), hit[1]):
            w = weight.detach()
            if temperature != 1.0:
                w = w / temperature
            if len(self.cache) >= self.entries:
                self.cache.pop(next(iter(self.cache)))
            # no copy when it is already weight.detach() in dtype
            hit = self.cache[key] = (weight._version, self._probe(weight), w.to(dtype))
        return hit[2]

    def clear(self) -> None:
        self.cache.clear()


_scaled_weight = _ScaledWeight()


class LinearLogProbs(torch.autograd.Function):
    """``log softmax(h W^T / T)[target]`` and the entropy of that softmax, chunk by chunk.

    Forward keeps only the log-sum-exp of every row. Backward recomputes each chunk's logits z and
    uses d log p_y / d z = onehot(y) - softmax(z) (divided by T), so no [N, V] tensor is stored.
    The entropy ``lse - sum p z`` is returned without gradient. 1/T is folded into the (cached)
    cast weight; every chunk reuses one logits buffer and works in place in it.
    """

    @staticmethod
    def forward(ctx, hidden, weight, targets, temperature: float, chunk: int):
        dtype = torch.promote_types(hidden.dtype, torch.float32)  # bf16 in, fp32 math
        mm_dtype = _matmul_dtype(hidden, dtype)
        w = _scaled_weight(weight, mm_dtype, temperature)
        n = hidden.size(0)
        logp, lse, entropy = (hidden.new_empty(n, dtype=dtype) for _ in range(3))
        z_buf, low_buf = _buffers(min(chunk, n), w.size(0), dtype, mm_dtype, hidden.device)
        p_buf = torch.empty_like(z_buf)
        for lo in range(0, n, chunk):
            hi = min(lo + chunk, n)
            z = _logits(hidden[lo:hi], w, z_buf, low_buf)
            top = z.amax(-1, keepdim=True)
            p = torch.sub(z, top, out=p_buf[: hi - lo]).exp_()
            total = p.sum(-1, keepdim=True)
            z_lse = (top + total.log()).squeeze(-1)
            p.div_(total)
            logp[lo:hi] = z.gather(-1, targets[lo:hi, None]).squeeze(-1) - z_lse
            entropy[lo:hi] = z_lse - torch.linalg.vecdot(p, z)
            lse[lo:hi] = z_lse
        ctx.save_for_backward(hidden, weight, targets, lse)
        ctx.temperature, ctx.chunk, ctx.mm_dtype = temperature, chunk, mm_dtype
        ctx.mark_non_differentiable(entropy)
        return logp, entropy

    @staticmethod
    def backward(ctx, grad_logp, _grad_entropy):
        hidden, weight, targets, lse = ctx.saved_tensors
        mm, t, n = ctx.mm_dtype, ctx.temperature, hidden.size(0)
        w = _scaled_weight(weight, mm, t)
        grad_hidden = torch.empty(hidden.shape, dtype=lse.dtype, device=hidden.device)
        grad_weight = torch.empty(weight.shape, dtype=lse.dtype, device=weight.device)
        z_buf, low_buf = _buffers(min(ctx.chunk, n), w.size(0), lse.dtype, mm, hidden.device)
        part = None if low_buf is None else torch.empty(weight.shape, dtype=mm, device=weight.device)
        for lo in range(0, n, ctx.chunk):
            hi = min(lo + ctx.chunk, n)
            h = hidden[lo:hi].to(mm)
            g = grad_logp[lo:hi, None]
            # dz = (onehot(y) - softmax(z)) * g; the 1/T of d z / d(hW^T) is in w (and in h_t below)
            dz = _logits(h, w, z_buf, low_buf).sub_(lse[lo:hi, None]).exp_().mul_(-g)
            dz.scatter_add_(-1, targets[lo:hi, None], g)
            if part is not None:
                dz = low_buf[: hi - lo].copy_(dz)
            grad_hidden[lo:hi] = dz @ w
            h_t = h / t if t != 1.0 else h
            if lo == 0:
                torch.mm(dz.T, h_t, out=grad_weight if part is None else part)
                if part is not None:
                    grad_weight.copy_(part)
            elif part is None:
                grad_weight.addmm_(dz.T, h_t)
            else:
                grad_weight.add_(torch.mm(dz.T, h_t, out=part))
        return grad_hidden.to(hidden.dtype), grad_weight.to(weight.dtype), None, None, None


def _buffers(rows: int, vocab: int, dtype, mm_dtype, device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The chunk's logits buffer (math dtype) and, for mixed precision, one in the matmul dtype
    (reused by every chunk)."""
    z = torch.empty(rows, vocab, dtype=dtype, device=device)
    return z, (torch.empty(rows, vocab, dtype=mm_dtype, device=device) if mm_dtype != dtype else None)


def _logits(h: torch.Tensor, w: torch.Tensor, z_buf: torch.Tensor, low_buf: torch.Tensor | None) -> torch.Tensor:
    """``h @ w^T`` written into the reused buffers, returned in the math dtype."""
    rows = h.size(0)
    if low_buf is None:
        return torch.mm(h.to(w.dtype), w.T, out=z_buf[:rows])
    return z_buf[:rows].copy_(torch.mm(h.to(w.dtype), w.T, out=low_buf[:rows]))


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
