"""The phases of one GRPO optimisation step, in the order :meth:`r1kit.grpo.trainer.GRPOTrainer.train_step`
runs them (each under the step timer, ``r1kit.perf.STEP_TIMER``):

1. :func:`layout`: the step's groups -> micro-batches of about ``micro_batch_tokens`` padded tokens,
   group-normalised advantages and the batch's normalisers (a :class:`LossBatch`);
2. :func:`frozen_logprobs`: the sampler's log-probs, pi_old (``mu > 1``, or samples of older
   weights) and pi_ref (``beta > 0``);
3. ``mu`` times: :func:`accumulate` (forward + loss + backward over every micro-batch) then
   :func:`optimiser_step` (clip, AdamW, schedule).

The math is in :mod:`r1kit.grpo.core`, the batched log-probs in :mod:`r1kit.models.logprobs`.
Under ``torchrun`` the normalisers (sequences, tokens) are summed over the ranks and the gradients
all-reduced, so the ranks' losses add up to the single-process loss of the whole batch.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from r1kit import threads
from r1kit.distributed import ddp
from r1kit.distributed.strategy import Replicated
from r1kit.grpo import core
from r1kit.models.logprobs import GroupBatch, make_group_batch, split_by_tokens
from r1kit.models.policy import adapters_off
from r1kit.models.precision import compute_context
from r1kit.perf import STEP_TIMER

if TYPE_CHECKING:  # only for annotations: the config module sits above this one
    from r1kit.grpo.config import ZeroConfig
    from r1kit.grpo.sources import Group


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


@dataclass
class MicroBatch:
    """One forward/backward's share of a step: whole groups."""

    batch: GroupBatch         # prompts [P, Wp] once per group, completions [P*G, Wc]
    rows: torch.Tensor        # [P*G] positions of its completions in the step's row order
    loss_mask: torch.Tensor   # [P*G, Wc] 1.0 on the policy's completion tokens that count in the loss
    filler: bool = False      # a lockstep pass with nothing in it (mask 0, no statistics)


@dataclass
class LossBatch:
    """A step's groups laid out for the loss (:func:`layout`), plus the frozen log-probs
    (:func:`frozen_logprobs`), one tensor per micro-batch shaped like its ``completion_ids``."""

    micro: list[MicroBatch]
    advantages: torch.Tensor                   # [N] one per completion, N = groups * G
    num_seqs: int                              # completions over all ranks
    num_tokens: torch.Tensor                   # loss tokens over all ranks (>= 1)
    temperature: float                         # the sampler's: log-probs are of softmax(logits / T)
    old_logp: list[torch.Tensor] | None = None  # pi_old; None: the current policy's (ratio 1)
    ref_logp: list[torch.Tensor] | None = None  # pi_ref; None when beta = 0
    sampler_logp: list[torch.Tensor] | None = None  # the rollout engine's (Rollout.logprobs)


@dataclass
class StepStats:
    """What the passes of a step record, averaged by :meth:`summary`."""

    loss: list[float] = field(default_factory=list)
    kl: list[float] = field(default_factory=list)
    clip_frac: list[float] = field(default_factory=list)
    entropy: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    mismatch: dict = field(default_factory=dict)  # core.mismatch_sums added up over the first pass

    def add_mismatch(self, sums: dict[str, float]) -> None:
        for key, value in sums.items():
            old = self.mismatch.get(key)
            self.mismatch[key] = value if old is None else max(old, value) if key.endswith("_max") else old + value

    def summary(self) -> dict:
        """Each figure's mean over its records (averaged over the ranks; the loss is already global),
        and the trainer/sampler mismatch over the step's loss tokens (``rollout/...``)."""
        out = {k: sum(v) / len(v) for k, v in vars(self).items() if v and isinstance(v, list)}
        if ddp.world_size() > 1:
            for key in ("kl", "clip_frac", "entropy"):
                if key in out:
                    out[key] = float(ddp.global_sum(out[key])) / ddp.world_size()
        return {**out, **self.mismatch_summary()}

    def mismatch_summary(self) -> dict:
        m = self.mismatch
        if not m:
            return {}
        sums = {k: float(ddp.global_sum(m[k])) for k in ("tokens", "diff_sum", "ratio_sum", "capped")}
        tokens = max(sums["tokens"], 1.0)
        return {"rollout/logprob_diff_mean": sums["diff_sum"] / tokens,
                "rollout/logprob_diff_max": float(ddp.global_max(m["diff_max"])),
                "rollout/is_ratio_mean": sums["ratio_sum"] / tokens,
                "rollout/is_ratio_max": float(ddp.global_max(m["ratio_max"])),
                "rollout/is_capped_frac": sums["capped"] / tokens}


def micro_batches(groups: list[Group], pad_id: int, token_budget: int, mask_truncated: bool,
                  device="cpu") -> list[MicroBatch]:
    """Split a step's groups into micro-batches of about ``token_budget`` padded tokens, built on
    the host and moved to ``device`` once."""
    g = len(groups[0].rollouts)
    lengths = [[len(r.token_ids) for r in grp.rollouts] for grp in groups]
    out = []
    for members in split_by_tokens([len(grp.prompt_ids) for grp in groups], lengths, token_budget):
        rollouts = [r for i in members for r in groups[i].rollouts]
        batch = make_group_batch([groups[i].prompt_ids for i in members], [r.token_ids for r in rollouts], g, pad_id)
        loss_mask = batch.completion_mask.float()                                     # [B, Wc]
        if rollouts[0].policy_mask is not None:  # episodes: observation tokens are not the policy's
            loss_mask *= policy_masks(rollouts, loss_mask.size(1))                    # [B, Wc]
        if mask_truncated:
            loss_mask[torch.tensor([r.truncated for r in rollouts], device="cpu")] = 0.0
        rows = torch.tensor([i * g + j for i in members for j in range(g)], device=device)  # [B]
        out.append(MicroBatch(batch.to(device), rows, loss_mask.to(device)))
    return out


def left_aligned(rows: list[list[float]], width: int) -> torch.Tensor:
    """[len(rows), width] float32 on the host: row j's values from column 0, zeros after (laid out
    like the completions of ``make_group_batch``)."""
    out = torch.zeros(len(rows), width, device="cpu")                                  # [B, width]
    for j, values in enumerate(rows):
        out[j, : len(values)] = torch.tensor(values, dtype=torch.float, device="cpu")
    return out


def policy_masks(rollouts: list, width: int) -> torch.Tensor:
    """[B, width] 1.0 on the tokens each rollout's policy sampled (``Rollout.policy_mask``), 0.0 on
    observation tokens and padding."""
    return left_aligned([r.policy_mask for r in rollouts], width)


def layout(groups: list[Group], models: Models, cfg: ZeroConfig, pad_id: int) -> LossBatch:
    """Phase 1: micro-batches, advantages and the global normalisers of a step's groups."""
    grpo = cfg.grpo
    device = next(models.policy.parameters()).device
    rewards = torch.tensor([r for grp in groups for r in grp.rewards], device=device)       # [N]
    advantages = core.group_advantages(rewards, grpo.group_size, grpo.advantage_scale)       # [N]
    micro = micro_batches(groups, pad_id, grpo.micro_batch_tokens, grpo.overlong == "mask", device)
    local_tokens = sum((m.loss_mask.sum() for m in micro), torch.zeros((), device=device))
    if models.strategy.lockstep:  # every rank runs as many passes as the busiest: empty ones (mask 0)
        most = int(ddp.global_max(len(micro)))
        micro += [MicroBatch(micro[0].batch, micro[0].rows, torch.zeros_like(micro[0].loss_mask), True)
                  for _ in range(most - len(micro))]
    return LossBatch(micro, advantages, num_seqs=int(ddp.global_sum(len(rewards)).item()),
                     num_tokens=ddp.global_sum(local_tokens).float().clamp(min=1),
                     temperature=cfg.rollout.temperature if cfg.rollout.temperature > 0 else 1.0)


def behaviour_logprobs(groups: list[Group], micro: list[MicroBatch]) -> list[torch.Tensor]:
    """Per micro-batch, the sampler's per-token log-probs (log softmax(logits / T) of the weights
    that sampled, recorded by the rollout engine), laid out like ``completion_ids`` [B, Wc]."""
    flat = [r for grp in groups for r in grp.rollouts]
    out = []
    for mb in micro:
        ids = mb.batch.completion_ids                                                      # [B, Wc]
        out.append(left_aligned([flat[row].logprobs for row in mb.rows.tolist()], ids.size(1)).to(ids.device))
    return out


def frozen_logprobs(lb: LossBatch, groups: list[Group], models: Models, cfg: ZeroConfig, step: int) -> None:
    """Phase 2: fill ``lb.old_logp`` and ``lb.ref_logp``.

    pi_old: with one pass the old policy is the current one (ratio = 1 exactly), so no extra
    forward; with mu > 1 its log-probs are computed once here; without a rollout correction,
    groups sampled by older weights (``rollout.async_steps``, Ray's ``max_weight_lag``) bring the
    sampler's own log-probs. With one (``grpo.rollout_correction``), pi_old is always the
    trainer's and the sampler's log-probs only enter the importance weights.
    """
    def run(model, context=contextlib.nullcontext) -> list[torch.Tensor]:
        with STEP_TIMER("logprobs"), torch.no_grad(), compute_context(model, cfg.dtype), context():
            return [models.strategy.logprobs(model, mb.batch, lb.temperature)[0] for mb in lb.micro]

    lb.sampler_logp = behaviour_logprobs(groups, lb.micro)
    correcting = cfg.grpo.rollout_correction != "none"
    if not correcting and any(grp.weight_version < step for grp in groups):
        lb.old_logp = lb.sampler_logp
    elif cfg.grpo.mu > 1:
        lb.old_logp = run(models.policy)
    ref = models.reference
    if ref is not None:
        lb.ref_logp = run(ref, lambda: adapters_off(ref))


def accumulate(lb: LossBatch, models: Models, cfg: ZeroConfig, stats: StepStats) -> float:
    """Phase 3a: one pass of forward/backward over the micro-batches; leaves the gradients of the
    global batch's loss in ``.grad`` (summed over the ranks) and returns that loss."""
    grpo, policy = cfg.grpo, models.policy
    models.optimizer.zero_grad(set_to_none=True)
    step_loss = 0.0
    first_pass = not stats.loss  # (of mu): where the trainer/sampler mismatch is measured
    for k, mb in enumerate(lb.micro):
        threads.tick()
        with STEP_TIMER("forward"):
            with compute_context(policy, cfg.dtype):
                logp, entropy = models.strategy.logprobs(policy, mb.batch, lb.temperature)    # [B, Wc] each
            old = lb.old_logp[k] if lb.old_logp else logp.detach()                            # [B, Wc]
            ref = lb.ref_logp[k] if lb.ref_logp else None                                     # [B, Wc] or None
            sampler = lb.sampler_logp[k] if lb.sampler_logp else None                          # [B, Wc] or None
            weights = None                                                                     # [B, Wc] or None
            if grpo.rollout_correction != "none":
                weights = core.rollout_correction_weights(old, sampler, mb.loss_mask, grpo.rollout_correction,
                                                          grpo.rollout_correction_level, grpo.rollout_correction_cap)
            loss, mb_stats = core.grpo_loss(
                logp, old, ref, lb.advantages[mb.rows], mb.loss_mask, eps_low=grpo.eps_low, eps_high=grpo.eps_high,
                beta=grpo.beta, agg=grpo.loss_agg, max_len=cfg.rollout.max_new_tokens, num_seqs=lb.num_seqs,
                num_tokens=lb.num_tokens, policy_loss=grpo.policy_loss, is_weights=weights)     # scalar
        with STEP_TIMER("backward"):
            (loss * models.strategy.backward_scale()).backward()
        step_loss += loss.item()
        if mb.filler:
            continue
        if first_pass and sampler is not None:  # the weights the step started from vs the sampler's
            stats.add_mismatch(core.mismatch_sums(logp, sampler, mb.loss_mask, grpo.rollout_correction_level,
                                                  grpo.rollout_correction_cap))
        stats.entropy.append(((entropy * mb.loss_mask).sum() / mb.loss_mask.sum().clamp(min=1)).item())
        for key in ("kl", "clip_frac"):
            if key in mb_stats:
                getattr(stats, key).append(mb_stats[key])
    models.strategy.sync_gradients(policy)
    return float(ddp.global_sum(step_loss))


def optimiser_step(models: Models, cfg: ZeroConfig) -> float:
    """Phase 3b: clip the gradient norm, step AdamW and the schedule; returns the norm before clipping."""
    with STEP_TIMER("optimiser"):
        norm = models.strategy.clip_grad_norm(models.policy, cfg.optim.max_grad_norm)
        models.optimizer.step()
        models.scheduler.step()
    return norm
