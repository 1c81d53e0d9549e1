"""Drawing the next token: inverse-CDF sampling on the most likely tokens, exact log-probs.

``torch.multinomial`` over a 50k-150k vocabulary draws one exponential per vocabulary entry and
row (tens of ms per step on a CPU). Here each row gets one uniform ``u`` and the token is found by
inverse CDF: the first token, in a fixed order, whose cumulative probability exceeds ``u`` (times
the kept mass). Any fixed order gives the same distribution, so the draw is distributed as
``multinomial(softmax(filtered z))``. With top-p/top-k the order is the ``candidates`` most likely
tokens (descending; rows whose nucleus is wider are sorted in full); without, it is the
vocabulary's own order, searched block by block (no sort at all).

Log-probs are those of the unfiltered policy: ``z[chosen] - logsumexp(z)`` with ``z = logits / T``
(top-p/top-k only restrict what is drawn).
"""
from __future__ import annotations

import torch

CANDIDATES = 512


def filter_logits(logits: torch.Tensor, top_p: float, top_k: int) -> torch.Tensor:
    """Mask (to -inf) the logits outside the top-k and outside the smallest nucleus of mass top_p."""
    if top_k and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        logits = logits.masked_fill(~nucleus(logits, top_p), float("-inf"))
    return logits


def nucleus(logits: torch.Tensor, top_p: float, candidates: int = CANDIDATES) -> torch.Tensor:
    """Boolean mask of the smallest set of top tokens whose probability reaches ``top_p``.

    A token is dropped when the mass of the tokens ranked before it already reaches top_p (the top
    token always stays). The nucleus is first looked for among the ``candidates`` most likely
    tokens; only rows whose nucleus is larger are sorted in full. The result is the same either way.
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


def _search(cdf: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Index of the first entry of every row's non-decreasing ``cdf`` that exceeds ``target``."""
    return torch.searchsorted(cdf, target[:, None], right=True).squeeze(-1).clamp_(max=cdf.size(-1) - 1)


def _draw_filtered(z, lse, u, top_p: float, top_k: int, candidates: int) -> torch.Tensor:
    """Inverse CDF over the kept prefix of the sorted candidates (top-k, then top-p renormalised
    within the top-k, as ``filter_logits``); rows whose nucleus is wider are redone on a full sort."""
    vocab = z.size(-1)
    k = min(top_k, vocab) if top_k else min(candidates, vocab)
    top, order = torch.topk(z, k, dim=-1)
    p = (top - lse[:, None]).double().exp()
    cdf = p.cumsum(-1)
    if top_k:  # top-p applies to the top-k distribution renormalised
        total = cdf[:, -1:]
        p, cdf = p / total, cdf / total
    kept = (cdf - p) < top_p if top_p < 1.0 else torch.ones_like(p, dtype=torch.bool)
    weights_cdf = (p * kept).cumsum(-1)
    chosen = order.gather(-1, _search(weights_cdf, u * weights_cdf[:, -1])[:, None]).squeeze(-1)
    if not top_k and k < vocab:
        wider = cdf[:, -1] < top_p  # the nucleus does not fit in the candidates
        if wider.any():
            rows = wider.nonzero().squeeze(-1)
            chosen[rows] = _draw_filtered(z[rows], lse[rows], u[rows], top_p, 0, vocab)
    return chosen


def _draw_full(z, lse, u, block: int = 256) -> torch.Tensor:
    """Inverse CDF over the whole vocabulary in index order, in two levels: the block of ``block``
    tokens by a float64 CDF of the blocks' masses, then the token within that block (one pass over
    the vocabulary in float32, no sort)."""
    rows, vocab = z.shape
    p = (z - lse[:, None]).exp_()
    if vocab % block:
        p = torch.nn.functional.pad(p, (0, block - vocab % block))
    blocks = p.view(rows, -1, block)
    mass = blocks.sum(-1).double()
    cdf = mass.cumsum(-1)
    target = u * cdf[:, -1]
    which = _search(cdf, target)
    inside = blocks[torch.arange(rows, device=z.device), which].double().cumsum(-1)
    # the target's place within its block, on the block's own (float64) cumulative sum
    offset = (target - (cdf.gather(-1, which[:, None]) - mass.gather(-1, which[:, None])).squeeze(-1))
    offset = offset / mass.gather(-1, which[:, None]).squeeze(-1) * inside[:, -1]
    return which * block + _search(inside, offset)


def draw(logits: torch.Tensor, u: torch.Tensor, temperature: float, top_p: float = 1.0, top_k: int = 0,
         candidates: int = CANDIDATES) -> tuple[torch.Tensor, torch.Tensor]:
    """The next token of every row and its log-prob under ``softmax(logits / temperature)``.

    ``u`` [B] holds one uniform in [0, 1) per row (float64); temperature 0 is greedy (log-probs
    then at temperature 1). Distributed as ``multinomial(softmax(filter_logits(logits / T)))``.
    """
    z = logits if temperature <= 0 else logits / temperature
    lse = z.logsumexp(-1)
    if temperature <= 0:
        chosen = z.argmax(-1)
    elif top_p < 1.0 or top_k:
        chosen = _draw_filtered(z, lse, u, top_p, top_k, candidates)
    else:
        chosen = _draw_full(z, lse, u)
    return chosen, z.gather(-1, chosen[:, None]).squeeze(-1) - lse
