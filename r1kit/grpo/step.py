"""One GRPO optimisation step: groups -> micro-batches -> log-probs -> clipped loss -> optimiser.

``optimise`` is the whole step; the math it applies is in :mod:`r1kit.grpo.core`, the batched
log-probs in :mod:`r1kit.models.logprobs`. Under ``torchrun`` the normalisers (sequences, tokens)
are summed over the ranks and the gradients all-reduced, so the ranks' losses add up to the
single-process loss of the whole batch.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch

from r1kit import threads
from r1kit.distributed import ddp
from r1kit.distributed.strategy import Replicated
from r1kit.grpo import core
from r1kit.models.logprobs import make_group_batch, split_by_tokens
from r1kit.models.policy import adapters_off
from r1kit.models.precision import compute_context
from r1kit.perf import STEP_TIMER


@dataclass
class Models:
    """What a step updates: the float32 ``policy`` (with its optimiser and schedule) and the
    frozen ``reference`` (None when beta is 0; with LoRA the policy itself, run with its adapters
    off), laid out over the ranks by ``strategy`` (r1kit.distributed.strategy)."""

    policy: torch.nn.Module
    reference: torch.nn.Module | None
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    strategy: Replicated = field(default_factory=Replicated)


def micro_batches(groups, pad_id: int, token_budget: int, mask_truncated: bool, device="cpu"):
    """Split a step's groups into ``GroupBatch`` micro-batches of about ``token_budget`` padded
    tokens, built on the host and moved to ``device`` once; yields (batch, row indices into the
    step's G-row order, loss mask)."""
    g = len(groups[0].rollouts)
    lengths = [[len(r.token_ids) for r in grp.rollouts] for grp in groups]
    for members in split_by_tokens([len(grp.prompt_ids) for grp in groups], lengths, token_budget):
        rollouts = [r for i in members for r in groups[i].rollouts]
        batch = make_group_batch([groups[i].prompt_ids for i in members], [r.token_ids for r in rollouts], g, pad_id)
        loss_mask = batch.completion_mask.float()
        if mask_truncated:
            loss_mask[torch.tensor([r.truncated for r in rollouts], device="cpu")] = 0.0
        rows = torch.tensor([i * g + j for i in members for j in range(g)], device=device)
        yield batch.to(device), rows, loss_mask.to(device)


def behaviour_logprobs(groups, mbs) -> list[torch.Tensor]:
    """Per micro-batch, the sampler's per-token log-probs (log softmax(logits / T) of the weights
    that sampled, recorded by the rollout engine), laid out like ``completion_logprobs``."""
    flat = [r for grp in groups for r in grp.rollouts]
    out = []
    for batch, rows, _ in mbs:
        logp = torch.zeros(batch.completion_ids.shape, device="cpu")
        for j, row in enumerate(rows.tolist()):
            values = flat[row].logprobs
            logp[j, : len(values)] = torch.tensor(values, device="cpu")
        out.append(logp.to(batch.completion_ids.device))
    return out


def prepare(groups, models: Models, cfg, step: int, pad_id: int) -> dict:
    """Micro-batches, advantages, global normalisers and frozen log-probs of a step's groups.

    pi_old: with one pass the old policy is the current one (ratio = 1 exactly), so no extra
    forward; with mu > 1 its log-probs are computed once here; groups sampled by older weights
    (Ray's ``max_weight_lag``) bring the sampler's own log-probs.
    """
    g = cfg.grpo
    device = next(models.policy.parameters()).device
    rewards = torch.tensor([r for grp in groups for r in grp.rewards], device=device)
    advantages = core.group_advantages(rewards, g.group_size, g.advantage_scale)
    mbs = list(micro_batches(groups, pad_id, g.micro_batch_tokens, g.overlong == "mask", device))
    local_tokens = sum((m.sum() for _, _, m in mbs), torch.zeros((), device=device))
    n_real = len(mbs)
    if models.strategy.lockstep:  # every rank runs as many passes as the busiest: empty ones (mask 0)
        most = int(ddp.global_max(len(mbs)))
        mbs += [(mbs[0][0], mbs[0][1], torch.zeros_like(mbs[0][2]))] * (most - len(mbs))
    totals = {"seqs": int(ddp.global_sum(len(rewards)).item()),
              "tokens": ddp.global_sum(local_tokens).float().clamp(min=1)}
    temperature = cfg.rollout.temperature if cfg.rollout.temperature > 0 else 1.0

    def frozen_logprobs(model, context=contextlib.nullcontext):
        with STEP_TIMER("logprobs"), torch.no_grad(), compute_context(model, cfg.dtype), context():
            return [models.strategy.logprobs(model, batch, temperature)[0] for batch, _, _ in mbs]

    if any(grp.weight_version < step for grp in groups):
        old_logp = behaviour_logprobs(groups, mbs)
    else:
        old_logp = frozen_logprobs(models.policy) if g.mu > 1 else None
    ref = models.reference
    ref_logp = frozen_logprobs(ref, lambda: adapters_off(ref)) if ref is not None else None
    return {"mbs": mbs, "n_real": n_real, "advantages": advantages, "totals": totals,
            "temperature": temperature, "old_logp": old_logp, "ref_logp": ref_logp}


def accumulate(prep: dict, models: Models, cfg, stats: dict) -> float:
    """One pass of forward/backward over the micro-batches; leaves the gradients of the global
    batch's loss in ``.grad`` (summed over the ranks) and returns that loss."""
    g, policy = cfg.grpo, models.policy
    old_logp, ref_logp, totals = prep["old_logp"], prep["ref_logp"], prep["totals"]
    models.optimizer.zero_grad(set_to_none=True)
    step_loss = 0.0
    for k, (batch, rows, loss_mask) in enumerate(prep["mbs"]):
        threads.tick()
        with STEP_TIMER("forward"):
            with compute_context(policy, cfg.dtype):
                logp, entropy = models.strategy.logprobs(policy, batch, prep["temperature"])
            loss, mb_stats = core.grpo_loss(
                logp, old_logp[k] if old_logp else logp.detach(), ref_logp[k] if ref_logp else None,
                prep["advantages"][rows], loss_mask, eps_low=g.eps_low, eps_high=g.eps_high, beta=g.beta,
                agg=g.loss_agg, max_len=cfg.rollout.max_new_tokens, num_seqs=totals["seqs"],
                num_tokens=totals["tokens"], policy_loss=g.policy_loss)
        with STEP_TIMER("backward"):
            (loss * models.strategy.backward_scale()).backward()
        step_loss += loss.item()
        if k >= prep["n_real"]:  # a lockstep filler: no statistics
            continue
        stats["entropy"].append(((entropy * loss_mask).sum() / loss_mask.sum().clamp(min=1)).item())
        for key in ("kl", "clip_frac"):
            if key in mb_stats:
                stats[key].append(mb_stats[key])
    models.strategy.sync_gradients(policy)
    return float(ddp.global_sum(step_loss))


def optimise(groups, models: Models, cfg, step: int, pad_id: int) -> dict:
    """``mu`` optimiser steps on a batch of groups; returns the step's mean loss, KL, clip
    fraction, entropy and gradient norm (averaged over the ranks)."""
    threads.reset()
    prep = prepare(groups, models, cfg, step, pad_id)
    models.policy.train()
    stats = {"kl": [], "clip_frac": [], "entropy": [], "grad_norm": [], "loss": []}
    for _ in range(cfg.grpo.mu):
        stats["loss"].append(accumulate(prep, models, cfg, stats))
        with STEP_TIMER("optimiser"):
            norm = models.strategy.clip_grad_norm(models.policy, cfg.optim.max_grad_norm)
            models.optimizer.step()
            models.scheduler.step()
        stats["grad_norm"].append(norm)
    models.policy.eval()
    out = {k: sum(v) / len(v) for k, v in stats.items() if v}
    if ddp.world_size() > 1:  # per-rank averages -> the mean over the ranks (the loss is already global)
        for key in ("kl", "clip_frac", "entropy"):
            if key in out:
                out[key] = float(ddp.global_sum(out[key])) / ddp.world_size()
    return out
