"""GRPO's math as small pure functions (no model, no I/O), each citing its formula.

Notation (DeepSeekMath, Shao et al. 2024): a group of G outputs o_1..o_G per question with rewards r_i;
per-token ratio rho_{i,t} = pi_theta(o_{i,t}|q,o_{i,<t}) / pi_old(o_{i,t}|q,o_{i,<t}).
Variants are picked by name from the registries at the bottom, never by if-chains in the loop.
"""
from __future__ import annotations

import math

import torch


def _std_scale(grouped: torch.Tensor, centred: torch.Tensor, eps: float) -> torch.Tensor:
    denom = grouped.std(dim=1, unbiased=False, keepdim=True) + eps
    return torch.where(denom > 0, centred / denom.clamp(min=1e-12), torch.zeros_like(centred))


ADVANTAGE_SCALES = {
    "std": _std_scale,                                # GRPO
    "none": lambda grouped, centred, eps: centred,    # Dr. GRPO
}


def group_advantages(rewards: torch.Tensor, group_size: int, scale: str = "std",
                     eps: float = 1e-4) -> torch.Tensor:
    """Group-relative advantages, one per output.

    ``scale="std"`` (GRPO):  A_i = (r_i - mean(r_1..r_G)) / (std(r_1..r_G) + eps)
    ``scale="none"`` (Dr. GRPO): A_i = r_i - mean(r_1..r_G)

    ``rewards`` is flat, ordered group by group. A group whose rewards are all equal gets zeros
    (no NaN). The std is the population std (divide by G), as in the paper's formula.
    """
    if rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    if scale not in ADVANTAGE_SCALES:
        raise ValueError(f"unknown advantage scale {scale!r}; choose one of {list(ADVANTAGE_SCALES)}")
    grouped = rewards.float().view(-1, group_size)
    centred = grouped - grouped.mean(dim=1, keepdim=True)
    return ADVANTAGE_SCALES[scale](grouped, centred, eps).reshape(-1)


def clipped_surrogate(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor,
                      eps_low: float = 0.2, eps_high: float = 0.2) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token PPO/GRPO clipped objective, returned as a loss (to minimise).

        L_t = -min(rho_t * A, clip(rho_t, 1 - eps_low, 1 + eps_high) * A),  rho_t = exp(logp - old_logp)

    ``logp``/``old_logp`` are [B, T]; ``advantages`` is [B] (one per output, broadcast over tokens).
    ``eps_high > eps_low`` is DAPO's clip-higher. Also returns a [B, T] bool mask of the tokens
    where the clipped branch was taken (the clip fraction's numerator).
    """
    adv = advantages[:, None]
    ratio = torch.exp(logp - old_logp)
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1 - eps_low, 1 + eps_high) * adv
    return -torch.minimum(unclipped, clipped), clipped < unclipped


def sequence_clipped_surrogate(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor,
                               mask: torch.Tensor, eps_low: float = 3e-4,
                               eps_high: float = 4e-4) -> tuple[torch.Tensor, torch.Tensor]:
    """GSPO (Zheng et al. 2025): the clipped objective on one length-normalised ratio per sequence.

        s_i = exp((1/|o_i|) sum_t (logp_{i,t} - old_logp_{i,t}))      (the geometric mean of rho_{i,t})
        L_i = -min(s_i * A_i, clip(s_i, 1 - eps_low, 1 + eps_high) * A_i)

    Every token of output i carries L_i, so the ``seq-mean-token-mean`` aggregation gives GSPO's
    (1/G) sum_i L_i. ``mask`` [B, T] marks the tokens of |o_i| (an all-masked row gets s_i = 1).
    The returned [B, T] clip mask is True on every token of a clipped sequence. GSPO's clip range is
    about a thousand times narrower than GRPO's (3e-4 / 4e-4 in the paper), because s_i averages
    the per-token log-ratios.
    """
    maskf = mask.to(logp.dtype)
    mean_log_ratio = ((logp - old_logp) * maskf).sum(-1) / maskf.sum(-1).clamp(min=1)
    ratio = torch.exp(mean_log_ratio)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1 - eps_low, 1 + eps_high) * advantages
    per_seq = -torch.minimum(unclipped, clipped)
    shape = logp.shape
    return per_seq[:, None].expand(shape), (clipped < unclipped)[:, None].expand(shape)


POLICY_LOSSES = {
    "grpo": lambda logp, old_logp, adv, mask, lo, hi: clipped_surrogate(logp, old_logp, adv, lo, hi),
    "gspo": sequence_clipped_surrogate,
}


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token unbiased KL estimator (Schulman's k3), as in GRPO:

        D_KL = pi_ref/pi_theta - log(pi_ref/pi_theta) - 1 = exp(d) - d - 1,  d = ref_logp - logp

    Zero where the policies agree, and >= 0 everywhere (exp(d) >= 1 + d).
    """
    d = ref_logp - logp
    return torch.exp(d) - d - 1


def agg_seq_mean_token_mean(loss, mask, max_len, num_seqs, num_tokens):
    """GRPO: (1/G) sum_i (1/|o_i|) sum_t L_{i,t}: average each output's tokens, then the outputs."""
    per_seq = (loss * mask).sum(-1) / mask.sum(-1).clamp(min=1)
    return per_seq.sum() / num_seqs


def agg_token_mean(loss, mask, max_len, num_seqs, num_tokens):
    """DAPO: sum_{i,t} L_{i,t} / sum_i |o_i|: every token of the batch weighs the same."""
    return (loss * mask).sum() / num_tokens


def agg_seq_mean_token_sum_norm(loss, mask, max_len, num_seqs, num_tokens):
    """Dr. GRPO: sum_{i,t} L_{i,t} / (G * max_len): a constant normaliser, no length bias."""
    return (loss * mask).sum() / (num_seqs * max_len)


LOSS_AGGREGATIONS = {
    "seq-mean-token-mean": agg_seq_mean_token_mean,
    "token-mean": agg_token_mean,
    "seq-mean-token-sum-norm": agg_seq_mean_token_sum_norm,
}


def aggregate(loss: torch.Tensor, mask: torch.Tensor, mode: str, max_len: int,
              num_seqs: int | None = None, num_tokens: float | torch.Tensor | None = None) -> torch.Tensor:
    """Reduce a [B, T] per-token loss with the named aggregation (see ``LOSS_AGGREGATIONS``).

    ``num_seqs``/``num_tokens`` default to this tensor's; a micro-batch passes the whole batch's
    counts so that the micro-batch losses add up to the full-batch loss.
    """
    if mode not in LOSS_AGGREGATIONS:
        raise ValueError(f"unknown loss aggregation {mode!r}; choose one of {list(LOSS_AGGREGATIONS)}")
    mask = mask.to(loss.dtype)
    num_seqs = loss.size(0) if num_seqs is None else num_seqs
    num_tokens = mask.sum().clamp(min=1) if num_tokens is None else num_tokens
    return LOSS_AGGREGATIONS[mode](loss, mask, max_len, num_seqs, num_tokens)


def grpo_loss(logp, old_logp, ref_logp, advantages, mask, *, eps_low=0.2, eps_high=0.2, beta=0.0,
              agg="seq-mean-token-mean", max_len=None, num_seqs=None, num_tokens=None, policy_loss="grpo",
              is_weights=None):
    """The full GRPO objective as a loss: aggregate(clipped surrogate + beta * k3 KL).

    ``policy_loss`` names the surrogate in ``POLICY_LOSSES``: ``grpo`` (per-token ratios) or
    ``gspo`` (one ratio per sequence). ``ref_logp`` may be None when ``beta == 0`` (no reference
    model). Returns the scalar loss and detached statistics (``kl``, ``clip_frac``) averaged over
    this tensor's masked tokens. ``is_weights`` [B, T] (a rollout correction,
    :func:`rollout_correction_weights`) multiplies the policy-gradient term per token, not the KL:
    L_{i,t} = w_{i,t} * L^clip_{i,t} + beta * KL_{i,t}.
    """
    if policy_loss not in POLICY_LOSSES:
        raise ValueError(f"unknown policy loss {policy_loss!r}; choose one of {list(POLICY_LOSSES)}")
    per_token, clipped = POLICY_LOSSES[policy_loss](logp, old_logp, advantages, mask, eps_low, eps_high)
    if is_weights is not None:
        per_token = per_token * is_weights
    stats = {}
    maskf = mask.to(per_token.dtype)
    n_tok = maskf.sum().clamp(min=1)
    if beta > 0:
        kl = k3_kl(logp, ref_logp)
        per_token = per_token + beta * kl
        stats["kl"] = ((kl.detach() * maskf).sum() / n_tok).item()
    stats["clip_frac"] = ((clipped.to(maskf.dtype) * maskf).sum() / n_tok).item()
    loss = aggregate(per_token, mask, agg, max_len or mask.size(1), num_seqs, num_tokens)
    return loss, stats


def _sequence_log_ratio(log_ratio: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """sum_t mask_{i,t} * log_ratio_{i,t} per sequence, broadcast back over its tokens [B, T]."""
    return (log_ratio * mask.to(log_ratio.dtype)).sum(-1, keepdim=True).expand_as(log_ratio)


def truncated_is_weights(log_ratio: torch.Tensor, mask: torch.Tensor, level: str, cap: float) -> torch.Tensor:
    """Truncated importance sampling (TIS; Yao et al. 2025, verl's ``rollout_is``): the weight that
    corrects for sampling with pi_sampler instead of pi_old.

        token:    w_{i,t} = min(exp(log pi_old(o_{i,t}) - log pi_sampler(o_{i,t})), C)
        sequence: w_i     = min(exp(sum_t mask_{i,t} (log pi_old - log pi_sampler)), C)  (every token of i)

    ``log_ratio`` = log pi_old - log pi_sampler [B, T]; returns [B, T] weights (no gradient: the
    caller passes detached log-probs).
    """
    lr = _sequence_log_ratio(log_ratio, mask) if level == "sequence" else log_ratio
    return torch.exp(lr).clamp(max=cap)


def masked_is_weights(log_ratio: torch.Tensor, mask: torch.Tensor, level: str, cap: float) -> torch.Tensor:
    """Masked importance sampling (MIS, verl's ``mask`` mode): keep a token (or a whole sequence) at
    weight 1 where its ratio is at most the cap, drop it (weight 0) where it is above.

        token:    w_{i,t} = 1 if exp(log pi_old - log pi_sampler) <= C else 0
        sequence: w_i     = 1 if exp(sum_t mask_{i,t} (log pi_old - log pi_sampler)) <= C else 0
    """
    lr = _sequence_log_ratio(log_ratio, mask) if level == "sequence" else log_ratio
    return (lr <= math.log(cap)).to(log_ratio.dtype)


ROLLOUT_CORRECTIONS = {"tis": truncated_is_weights, "mis": masked_is_weights}


def rollout_correction_weights(old_logp: torch.Tensor, sampler_logp: torch.Tensor, mask: torch.Tensor,
                               mode: str, level: str, cap: float) -> torch.Tensor:
    """The [B, T] weights that multiply each token's policy-gradient loss to correct the mismatch
    between the weights that sampled (``sampler_logp``, recorded by the rollout engine) and the
    trainer's pi_old (``old_logp``): ``mode`` is ``tis`` or ``mis`` (see ``ROLLOUT_CORRECTIONS``),
    ``level`` ``token`` or ``sequence``, ``cap`` C."""
    if mode not in ROLLOUT_CORRECTIONS:
        raise ValueError(f"unknown rollout correction {mode!r}; choose one of {list(ROLLOUT_CORRECTIONS)}")
    if level not in ("token", "sequence"):
        raise ValueError(f"unknown rollout correction level {level!r}; choose token or sequence")
    return ROLLOUT_CORRECTIONS[mode]((old_logp - sampler_logp).detach(), mask, level, cap)


def mismatch_sums(trainer_logp: torch.Tensor, sampler_logp: torch.Tensor, mask: torch.Tensor,
                  level: str, cap: float) -> dict[str, float]:
    """Sums and maxima over the masked tokens that give the trainer/sampler mismatch figures:

        d_{i,t} = |log pi_trainer(o_{i,t}) - log pi_sampler(o_{i,t})|
        r_{i,t} = exp(log pi_trainer - log pi_sampler)        (token level)
        r_i     = exp(sum_t mask_{i,t} (log pi_trainer - log pi_sampler))  (sequence level, on each token)

    Returns ``tokens`` (sum of the mask), ``diff_sum``/``diff_max`` of d, ``ratio_sum``/``ratio_max``
    of r and ``capped`` (tokens whose r is above ``cap``). A mean is a sum over ``tokens``.
    """
    maskb = mask > 0
    log_ratio = (trainer_logp - sampler_logp).detach()
    lr = _sequence_log_ratio(log_ratio, mask) if level == "sequence" else log_ratio
    if not maskb.any():
        return {"tokens": 0.0, "diff_sum": 0.0, "diff_max": 0.0, "ratio_sum": 0.0, "ratio_max": 0.0, "capped": 0.0}
    diff, ratio = log_ratio.abs()[maskb], torch.exp(lr)[maskb]
    return {"tokens": float(maskb.sum()), "diff_sum": diff.sum().item(), "diff_max": diff.max().item(),
            "ratio_sum": ratio.sum().item(), "ratio_max": ratio.max().item(),
            "capped": float((lr[maskb] > math.log(cap)).sum())}


def overlong_soft_penalty(lengths: torch.Tensor, max_len: int, buffer: int) -> torch.Tensor:
    """DAPO's soft overlong punishment: 0 up to max_len - buffer, then a linear ramp to -1 at max_len.

        R_len(L) = 0 if L <= max_len - buffer;  (max_len - buffer - L) / buffer if L <= max_len;  -1 beyond
    """
    over = (lengths.float() - (max_len - buffer)).clamp(min=0) / max(buffer, 1)
    return -over.clamp(max=1.0)
