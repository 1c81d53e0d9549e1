"""What a GRPO step logs: one ``metrics.jsonl`` row from the step's groups and optimiser figures,
and (with the Ray backend) one ``samples.jsonl`` row per sample."""
from __future__ import annotations

from pathlib import Path

import torch

from r1kit.data.jsonl import append_jsonl
from r1kit.eval.probes import has_reflection, rollout_phenomena, tool_probes
from r1kit.grpo.config import ZeroConfig


def step_metrics(cfg: ZeroConfig, step: int, batch, opt: dict, times: dict, reward_names: list[str], counters: dict,
                 lr: float, reward_failures: int) -> dict:
    """Rewards, accuracy, lengths, truncation, reflection and weight versions of every group
    sampled at ``step`` (``batch.sampled``), the rollout source's ``counters``, the optimiser's
    figures and the timings."""
    sampled = batch.sampled
    rollouts = [r for grp in sampled for r in grp.rollouts]
    rewards = torch.tensor([r for grp in sampled for r in grp.rewards])
    parts = [p for grp in sampled for p in grp.parts]
    lengths = torch.tensor([r.policy_tokens for r in rollouts], dtype=torch.float)  # observation tokens left out
    m = {"step": step, "reward/mean": rewards.mean().item(), "reward/std": rewards.std().item()}
    for name in reward_names:  # each reward's mean over the completions it scored
        scored = [p[name] for p in parts if name in p]
        m[f"reward/{name}/mean"] = sum(scored) / len(scored) if scored else None
    graded = [p[cfg.accuracy_reward] for p in parts if cfg.accuracy_reward in p]
    m["accuracy"] = sum(graded) / len(graded) if graded else None
    m["format_rate"] = sum(p.get("format", 0.0) for p in parts) / len(parts) if "format" in cfg.rewards else None
    m["response_length/mean"] = lengths.mean().item()
    m["response_length/max"] = lengths.max().item()
    m["truncated_frac"] = sum(r.truncated for r in rollouts) / len(rollouts)
    m["reflection_rate"] = sum(has_reflection(r.text, cfg.reflection_phrases) for r in rollouts) / len(rollouts)
    m.update(rollout_phenomena(sampled, cfg.accuracy_reward, cfg.reflection_phrases))
    if rollouts[0].policy_mask is not None:  # multi-turn episodes
        m.update(tool_probes([r.tool_calls for r in rollouts], [r.tool_errors for r in rollouts],
                             [r.turns for r in rollouts], [p.get(cfg.accuracy_reward, 0.0) >= 1.0 for p in parts]))
    m["groups_all_equal_frac"] = sum(grp.all_equal for grp in sampled) / len(sampled)
    m["refill_rounds"] = batch.refill_rounds
    versions = [grp.weight_version for grp in sampled]
    m["weight_version/min"], m["weight_version/max"] = min(versions), max(versions)
    m["weight_lag/max"] = step - 1 - min(versions)  # 0: every sample from this step's weights
    m.update(counters)
    m.update(opt)
    m["lr"] = lr
    m["reward_failures"] = reward_failures
    decoded = sum(len(r.token_ids) for r in rollouts)  # every token through the model, observations too
    m["tokens_per_s"] = decoded / max(times["rollout_seconds"], 1e-9)
    m.update(times)
    return {k: v for k, v in m.items() if v is not None}


def log_samples(path: Path, step: int, batch, trained: list) -> None:
    """Append one row per sample: its prompt id, index, weight version, actor, reward and whether
    it is in ``trained``."""
    kept_ids = {id(grp) for grp in trained}
    rows = [{"step": step, "prompt_id": grp.prompt_id, "sample_index": j,
             "weight_version": grp.weight_version, "actor": grp.actor, "reward": grp.rewards[j],
             "trained": id(grp) in kept_ids, "length": len(r.token_ids)}
            for grp in batch.sampled for j, r in enumerate(grp.rollouts)]
    append_jsonl(path, *rows)
