"""The GRPO trainer: sample groups, score them with rule rewards, optimise the clipped objective.

The math lives in ``r1kit.grpo.core``; this module orchestrates: data order, rollouts, rewards,
batching, optimiser, metrics (``metrics.jsonl`` every step), periodic evaluation (``eval.jsonl``),
checkpoints and exact resumption.
"""
from __future__ import annotations

import json
import math
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from r1kit.config import ConfigError, to_dict
from r1kit.data.benchmarks import load_problems
from r1kit.data.jsonl import append_jsonl
from r1kit.eval.evaluate import EvalConfig, evaluate, has_reflection
from r1kit.grpo import core
from r1kit.grpo.checkpoint import (latest_checkpoint, load_trainer_state, rng_state, save_checkpoint,
                                   set_rng_state, truncate_jsonl_after)
from r1kit.grpo.config import ZeroConfig
from r1kit.models import load_model, load_tokenizer, resolve_model_path
from r1kit.prompts import build_prompt
from r1kit.rewards import RewardStats, get_reward, score
from r1kit.rollout import Rollout, SamplingParams, sample



@dataclass
class Group:
    """One prompt with its G scored completions."""

    example: dict
    prompt_ids: list[int]
    rollouts: list[Rollout]
    rewards: list[float]
    parts: list[dict]

    @property
    def all_equal(self) -> bool:
        return max(self.rewards) - min(self.rewards) < 1e-9


class PromptStream:
    """Deterministic prompt order: a fresh seeded shuffle each epoch; ``position`` is resumable."""

    def __init__(self, problems: list[dict], seed: int, position: int = 0):
        self.problems, self.seed, self.position = problems, seed, position
        self._epoch, self._order = -1, []

    def _order_of(self, epoch: int) -> list[int]:
        if epoch != self._epoch:
            self._epoch, self._order = epoch, list(range(len(self.problems)))
            random.Random(self.seed * 1_000_003 + epoch).shuffle(self._order)
        return self._order

    def take(self, n: int) -> list[dict]:
        out = []
        for _ in range(n):
            epoch, index = divmod(self.position, len(self.problems))
            out.append(self.problems[self._order_of(epoch)[index]])
            self.position += 1
        return out


def token_logprobs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                   with_entropy: bool = False, chunk_rows: int = 16):
    """Log-prob of each next token, [B, L-1] (and its entropy), with the log-softmax in row chunks."""
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[:, :-1]
    targets = input_ids[:, 1:]
    logps, entropies = [], []
    for lo in range(0, logits.size(0), chunk_rows):
        logp_all = logits[lo: lo + chunk_rows].float().log_softmax(-1)
        logps.append(logp_all.gather(-1, targets[lo: lo + chunk_rows, :, None]).squeeze(-1))
        if with_entropy:
            with torch.no_grad():
                entropies.append(-(logp_all.exp() * logp_all).sum(-1))
    logp = torch.cat(logps)
    return (logp, torch.cat(entropies)) if with_entropy else logp


def pack_batch(groups: list[Group], pad_id: int, mask_truncated: bool):
    """Right-padded prompt+completion rows and a mask over the completion tokens (targets)."""
    rows = [(g.prompt_ids, r) for g in groups for r in g.rollouts]
    width = max(len(p) + len(r.token_ids) for p, r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    loss_mask = torch.zeros((len(rows), width - 1))
    for i, (prompt, r) in enumerate(rows):
        seq = prompt + r.token_ids
        input_ids[i, : len(seq)] = torch.tensor(seq)
        attention[i, : len(seq)] = 1
        if not (mask_truncated and r.truncated):
            loss_mask[i, len(prompt) - 1: len(seq) - 1] = 1
    return input_ids, attention, loss_mask


class GRPOTrainer:
    """Runs an R1-Zero GRPO job described by a ``ZeroConfig``."""

    def __init__(self, cfg: ZeroConfig, resume: bool = False, progress: bool = True, overwrite: bool = False):
        self.cfg, self.progress = cfg, progress
        self.out = Path(cfg.out)
        for name in [*cfg.rewards, cfg.accuracy_reward]:
            try:
                get_reward(name)
            except ValueError as exc:
                raise ConfigError(f"rewards.{name}: {exc}") from None
        # the accuracy reward is always scored (weight 0 when it is not part of the reward)
        self.reward_weights = {cfg.accuracy_reward: 0.0, **cfg.rewards}
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        self.tokenizer = load_tokenizer(cfg.model)
        self.model_path = resolve_model_path(cfg.model)
        self.problems = self._train_problems()
        self.eval_problems = load_problems(cfg.eval.data, cfg.data_dir, cfg.eval.limit) if cfg.eval.every else []
        self.stats = RewardStats()
        self.step = 0
        start = latest_checkpoint(self.out) if resume else None
        self._check_fresh_run_dir(resume, overwrite)
        self.policy = load_model(str(start) if start else self.model_path, cfg.dtype)
        self.reference = load_model(self.model_path, cfg.dtype) if cfg.grpo.beta > 0 else None
        self.optimizer = torch.optim.AdamW(self.policy.parameters(), lr=cfg.optim.lr,
                                           weight_decay=cfg.optim.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.stream = PromptStream(self.problems, cfg.seed)
        if start:
            self._restore(start)
        elif resume:
            print(f"--resume: no checkpoint in {self.out}; starting from step 0")
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "config.json").write_text(json.dumps(to_dict(cfg), indent=2))
        self.writer = self._tensorboard()

    # ---- setup -------------------------------------------------------------------------------
    def _check_fresh_run_dir(self, resume: bool, overwrite: bool) -> None:
        """A new run never appends to, or silently replaces, an earlier run's records."""
        earlier = [p for p in ("metrics.jsonl", "eval.jsonl", "summary.json") if (self.out / p).exists()]
        earlier += [p.name for p in self.out.glob("checkpoint-*")]
        if resume or not earlier:
            return
        if not overwrite:
            raise ConfigError(f"{self.out} already holds a run ({', '.join(sorted(earlier))}); "
                              "pass --resume to continue it, --overwrite to replace it, or another --out")
        for name in earlier:
            path = self.out / name
            shutil.rmtree(path) if path.is_dir() else path.unlink()

    def _train_problems(self) -> list[dict]:
        from r1kit.data import synthetic
        if self.cfg.data == "synthetic":
            return synthetic.train_set(self.cfg.train_size, seed=synthetic.TRAIN_SEED + self.cfg.seed)
        if self.cfg.data == "synthetic_code":
            return synthetic.code_train_set(self.cfg.train_size, seed=synthetic.TRAIN_SEED + self.cfg.seed)
        return load_problems(self.cfg.data, self.cfg.data_dir)

    def _lr_factor(self, step: int) -> float:
        o = self.cfg.optim
        if step < o.warmup_steps:
            return (step + 1) / o.warmup_steps
        if o.schedule == "cosine":
            progress = (step - o.warmup_steps) / max(1, self.cfg.steps * self.cfg.grpo.mu - o.warmup_steps)
            return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        return 1.0

    def _tensorboard(self):
        if not self.cfg.log_tensorboard:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except Exception:  # tensorboard not installed: metrics.jsonl is the record
            return None
        return SummaryWriter(str(self.out / "tensorboard"))

    def _restore(self, checkpoint: Path) -> None:
        state = load_trainer_state(checkpoint)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        self.stream.position = state["data_position"]
        self.step = state["step"]
        for name in ("metrics.jsonl", "eval.jsonl"):
            truncate_jsonl_after(self.out / name, self.step)
        print(f"resumed from {checkpoint} at step {self.step}")

    def _save(self) -> Path:
        state = {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                 "rng": rng_state(), "data_position": self.stream.position, "step": self.step}
        return save_checkpoint(self.out, self.step, self.policy, self.tokenizer, state,
                               self.cfg.keep_checkpoints)

    # ---- rollouts and rewards ----------------------------------------------------------------
    def _sample_groups(self, examples: list[dict], seed: int) -> list[Group]:
        c = self.cfg
        prompts = [build_prompt(ex["problem"], c.template, self.tokenizer) for ex in examples]
        params = SamplingParams(n=c.grpo.group_size, temperature=c.rollout.temperature,
                                top_p=c.rollout.top_p, top_k=c.rollout.top_k,
                                max_new_tokens=c.rollout.max_new_tokens, seed=seed)
        rollouts = sample(self.policy, self.tokenizer, prompts, params)
        groups = []
        for i, (ex, prompt) in enumerate(zip(examples, prompts)):
            mine = rollouts[i * c.grpo.group_size: (i + 1) * c.grpo.group_size]
            scored = [score(r.text, ex, self.reward_weights, self.stats) for r in mine]
            rewards = [total for total, _ in scored]
            if c.grpo.overlong == "soft":
                lengths = torch.tensor([len(r.token_ids) for r in mine])
                penalty = core.overlong_soft_penalty(lengths, c.rollout.max_new_tokens, c.grpo.overlong_buffer)
                rewards = [r + p for r, p in zip(rewards, penalty.tolist())]
            prompt_ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
            groups.append(Group(ex, prompt_ids, mine, rewards, [parts for _, parts in scored]))
        return groups

    def _collect(self) -> tuple[list[Group], list[Group], int]:
        """Sample this step's groups; with dynamic sampling, refill past all-equal groups."""
        g = self.cfg.grpo
        base_seed = self.cfg.seed * 1_000_003 + self.step * 101
        sampled = self._sample_groups(self.stream.take(g.prompts_per_step), base_seed)
        if not g.dynamic_sampling:
            return sampled, sampled, 0
        kept = [grp for grp in sampled if not grp.all_equal]
        rounds = 0
        while len(kept) < g.prompts_per_step and rounds < g.max_refill_rounds:
            rounds += 1
            more = self._sample_groups(self.stream.take(g.prompts_per_step), base_seed + rounds)
            sampled += more
            kept += [grp for grp in more if not grp.all_equal]
        return kept[: g.prompts_per_step] or sampled[: g.prompts_per_step], sampled, rounds

    # ---- optimisation ------------------------------------------------------------------------
    def _optimise(self, groups: list[Group]) -> dict:
        c, g = self.cfg, self.cfg.grpo
        rewards = torch.tensor([r for grp in groups for r in grp.rewards])
        advantages = core.group_advantages(rewards, g.group_size, g.advantage_scale)
        pad = self.tokenizer.pad_token_id
        input_ids, attention, loss_mask = pack_batch(groups, pad, g.overlong == "mask")
        n = input_ids.size(0)
        mbs = range(0, n, g.micro_batch_size)
        totals = {"seqs": n, "tokens": loss_mask.sum().clamp(min=1)}

        def frozen_logprobs(model):
            with torch.no_grad():
                return torch.cat([token_logprobs(model, input_ids[i:i + g.micro_batch_size],
                                                 attention[i:i + g.micro_batch_size]) for i in mbs])

        # with one pass the old policy is the current one (ratio = 1 exactly): no extra forward
        old_logp = frozen_logprobs(self.policy) if g.mu > 1 else None
        ref_logp = frozen_logprobs(self.reference) if self.reference is not None else None

        self.policy.train()
        stats = {"kl": [], "clip_frac": [], "entropy": [], "grad_norm": [], "loss": []}
        for _ in range(g.mu):
            self.optimizer.zero_grad(set_to_none=True)
            step_loss = 0.0
            for i in mbs:
                sl = slice(i, i + g.micro_batch_size)
                logp, entropy = token_logprobs(self.policy, input_ids[sl], attention[sl], with_entropy=True)
                old = old_logp[sl] if old_logp is not None else logp.detach()
                ref = ref_logp[sl] if ref_logp is not None else None
                loss, mb_stats = core.grpo_loss(
                    logp, old, ref, advantages[sl], loss_mask[sl], eps_low=g.eps_low, eps_high=g.eps_high,
                    beta=g.beta, agg=g.loss_agg, max_len=c.rollout.max_new_tokens,
                    num_seqs=totals["seqs"], num_tokens=totals["tokens"])
                loss.backward()
                step_loss += loss.item()
                m = loss_mask[sl]
                stats["entropy"].append(((entropy * m).sum() / m.sum().clamp(min=1)).item())
                for key in ("kl", "clip_frac"):
                    if key in mb_stats:
                        stats[key].append(mb_stats[key])
            norm = torch.nn.utils.clip_grad_norm_(self.policy.parameters(), c.optim.max_grad_norm)
            self.optimizer.step()
            self.scheduler.step()
            stats["grad_norm"].append(norm.item())
            stats["loss"].append(step_loss)
        self.policy.eval()
        return {k: sum(v) / len(v) for k, v in stats.items() if v}

    # ---- the loop ----------------------------------------------------------------------------
    def _metrics(self, groups: list[Group], sampled: list[Group], opt: dict, times: dict, rounds: int) -> dict:
        c = self.cfg
        rollouts = [r for grp in sampled for r in grp.rollouts]
        rewards = torch.tensor([r for grp in sampled for r in grp.rewards])
        parts = [p for grp in sampled for p in grp.parts]
        lengths = torch.tensor([len(r.token_ids) for r in rollouts], dtype=torch.float)
        m = {"step": self.step, "reward/mean": rewards.mean().item(), "reward/std": rewards.std().item()}
        for name in self.reward_weights:
            m[f"reward/{name}/mean"] = sum(p[name] for p in parts) / len(parts)
        m["accuracy"] = sum(p.get(c.accuracy_reward, 0.0) for p in parts) / len(parts)
        m["format_rate"] = sum(p.get("format", 0.0) for p in parts) / len(parts) if "format" in c.rewards else None
        m["response_length/mean"] = lengths.mean().item()
        m["response_length/max"] = lengths.max().item()
        m["truncated_frac"] = sum(r.truncated for r in rollouts) / len(rollouts)
        m["reflection_rate"] = sum(has_reflection(r.text, c.reflection_phrases) for r in rollouts) / len(rollouts)
        m["groups_all_equal_frac"] = sum(grp.all_equal for grp in sampled) / len(sampled)
        m["refill_rounds"] = rounds
        m.update(opt)
        m["lr"] = self.scheduler.get_last_lr()[0]
        m["reward_failures"] = self.stats.total()
        m["tokens_per_s"] = lengths.sum().item() / max(times["rollout_seconds"], 1e-9)
        m.update(times)
        return {k: v for k, v in m.items() if v is not None}

    def _log(self, metrics: dict) -> None:
        append_jsonl(self.out / "metrics.jsonl", metrics)
        if self.writer:
            for key, value in metrics.items():
                if key != "step" and isinstance(value, (int, float)):
                    self.writer.add_scalar(key, value, metrics["step"])

    def run_eval(self) -> dict:
        e = self.cfg.eval
        cfg = EvalConfig(k=e.k, temperature=e.temperature, top_p=e.top_p, max_new_tokens=e.max_new_tokens,
                         template=self.cfg.template, seed=self.cfg.seed,
                         reflection_phrases=self.cfg.reflection_phrases)
        _, results = evaluate(self.policy, self.tokenizer, self.eval_problems, cfg, progress=False)
        row = {"step": self.step, **results}
        append_jsonl(self.out / "eval.jsonl", row)
        return row

    def train(self) -> dict:
        c = self.cfg
        last_eval = None
        if c.eval.every and self.step == 0:
            last_eval = self.run_eval()
        bar = tqdm(total=c.steps, initial=self.step, desc="GRPO", disable=not self.progress, mininterval=1)
        while self.step < c.steps:
            t0 = time.time()
            groups, sampled, rounds = self._collect()
            t1 = time.time()
            opt = self._optimise(groups)
            self.step += 1
            t2 = time.time()
            times = {"rollout_seconds": t1 - t0, "train_seconds": t2 - t1, "step_seconds": t2 - t0}
            metrics = self._metrics(groups, sampled, opt, times, rounds)
            self._log(metrics)
            bar.update(1)
            bar.set_postfix(reward=f"{metrics['reward/mean']:.2f}", acc=f"{metrics['accuracy']:.2f}",
                            len=f"{metrics['response_length/mean']:.0f}", refresh=False)
            if c.eval.every and (self.step % c.eval.every == 0 or self.step == c.steps):
                last_eval = self.run_eval()
                cons = last_eval.get(f"cons@{c.eval.k}")
                bar.write(f"step {self.step}: eval pass@1 {last_eval['pass@1']:.3f} "
                          + (f"cons@{c.eval.k} {cons:.3f} " if cons is not None else "")
                          + f"length {last_eval['mean_length']:.1f}")
            if (c.checkpoint_every and self.step % c.checkpoint_every == 0) or self.step == c.steps:
                self._save()
        bar.close()
        if self.writer:
            self.writer.close()
        summary = {"steps": self.step, "final_eval": last_eval, "reward_failures": self.stats.as_dict()}
        (self.out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
        return summary
