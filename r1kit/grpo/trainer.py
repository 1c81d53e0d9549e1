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
from r1kit.grpo.logprobs import completion_logprobs, make_group_batch, split_by_tokens
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


def micro_batches(groups: list[Group], pad_id: int, token_budget: int, mask_truncated: bool):
    """Split a step's groups into ``GroupBatch`` micro-batches of about ``token_budget`` padded
    tokens; yields (batch, row indices into the step's G-row order, loss mask)."""
    g = len(groups[0].rollouts)
    lengths = [[len(r.token_ids) for r in grp.rollouts] for grp in groups]
    for members in split_by_tokens([len(grp.prompt_ids) for grp in groups], lengths, token_budget):
        rollouts = [r for i in members for r in groups[i].rollouts]
        batch = make_group_batch([groups[i].prompt_ids for i in members], [r.token_ids for r in rollouts], g, pad_id)
        loss_mask = batch.completion_mask.float()
        if mask_truncated:
            loss_mask[torch.tensor([r.truncated for r in rollouts])] = 0.0
        rows = torch.tensor([i * g + j for i in members for j in range(g)])
        yield batch, rows, loss_mask


class GRPOTrainer:
    """Runs an R1-Zero GRPO job described by a ``ZeroConfig``."""

    def __init__(self, cfg: ZeroConfig, resume: bool = False, progress: bool = True, overwrite: bool = False):
        self.cfg, self.progress = cfg, progress
        self.out = Path(cfg.out)
        self._register_reward_models()
        by_kind = [(f"rewards_by_kind.{kind}", name) for kind, ws in cfg.rewards_by_kind.items() for name in ws]
        for key, name in [*((f"rewards.{n}", n) for n in [*cfg.rewards, cfg.accuracy_reward]), *by_kind]:
            try:
                get_reward(name)
            except ValueError as exc:
                raise ConfigError(f"{key}: {exc}") from None
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
        elif resume:  # nothing to resume from: start over, without the records of the lost steps
            print(f"--resume: no checkpoint in {self.out}; starting from step 0")
            for name in ("metrics.jsonl", "eval.jsonl"):
                truncate_jsonl_after(self.out / name, -1)
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "config.json").write_text(json.dumps(to_dict(cfg), indent=2))
        self.writer = self._tensorboard()

    # ---- setup -------------------------------------------------------------------------------
    def _register_reward_models(self) -> None:
        from r1kit.rewards.reward_model import register_reward_models

        for name, rm in self.cfg.reward_models.items():
            if not rm.path:
                raise ConfigError(f"reward_models.{name}.path: no reward model path given")
            if not Path(rm.path).expanduser().exists() and rm.path.startswith((".", "/", "~")):
                raise ConfigError(f"reward_models.{name}.path: {rm.path} not found")
        try:
            register_reward_models(self.cfg.reward_models)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    def weights_for(self, example: dict) -> dict[str, float]:
        """The reward weights of ``example``: its kind's in ``rewards_by_kind``, else ``rewards``."""
        return self.cfg.rewards_by_kind.get(example.get("kind"), self.reward_weights)

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
            scored = [score(r.text, ex, self.weights_for(ex), self.stats) for r in mine]
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
        mbs = list(micro_batches(groups, self.tokenizer.pad_token_id, g.micro_batch_tokens, g.overlong == "mask"))
        totals = {"seqs": len(rewards), "tokens": sum(m.sum() for _, _, m in mbs).clamp(min=1)}
        temperature = c.rollout.temperature if c.rollout.temperature > 0 else 1.0

        def frozen_logprobs(model):
            with torch.no_grad():
                return [completion_logprobs(model, batch, temperature)[0] for batch, _, _ in mbs]

        # with one pass the old policy is the current one (ratio = 1 exactly): no extra forward
        old_logp = frozen_logprobs(self.policy) if g.mu > 1 else None
        ref_logp = frozen_logprobs(self.reference) if self.reference is not None else None

        self.policy.train()
        stats = {"kl": [], "clip_frac": [], "entropy": [], "grad_norm": [], "loss": []}
        for _ in range(g.mu):
            self.optimizer.zero_grad(set_to_none=True)
            step_loss = 0.0
            for k, (batch, rows, loss_mask) in enumerate(mbs):
                logp, entropy = completion_logprobs(self.policy, batch, temperature)
                loss, mb_stats = core.grpo_loss(
                    logp, old_logp[k] if old_logp else logp.detach(), ref_logp[k] if ref_logp else None,
                    advantages[rows], loss_mask, eps_low=g.eps_low, eps_high=g.eps_high, beta=g.beta,
                    agg=g.loss_agg, max_len=c.rollout.max_new_tokens, num_seqs=totals["seqs"],
                    num_tokens=totals["tokens"])
                loss.backward()
                step_loss += loss.item()
                stats["entropy"].append(((entropy * loss_mask).sum() / loss_mask.sum().clamp(min=1)).item())
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
        names = dict.fromkeys([*self.reward_weights, *(n for ws in c.rewards_by_kind.values() for n in ws)])
        for name in names:  # each reward's mean over the completions it scored
            scored = [p[name] for p in parts if name in p]
            m[f"reward/{name}/mean"] = sum(scored) / len(scored) if scored else None
        graded = [p[c.accuracy_reward] for p in parts if c.accuracy_reward in p]
        m["accuracy"] = sum(graded) / len(graded) if graded else None
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
            bar.set_postfix(reward=f"{metrics['reward/mean']:.2f}", acc=f"{metrics.get('accuracy', float('nan')):.2f}",
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
