"""The GRPO trainer: sample groups, score them with rule rewards, optimise the clipped objective.

The math lives in ``r1kit.grpo.core``; this module orchestrates: data order, rollouts, rewards,
batching, optimiser, metrics (``metrics.jsonl`` every step), periodic evaluation (``eval.jsonl``),
checkpoints and exact resumption.

Scaling out (``r1kit.distributed``): with ``distributed.backend: ray`` the rollouts are sampled by
Ray actors and scored by Ray reward workers, and the weights are pushed to the actors after every
optimiser step; under ``torchrun`` each rank trains on its share of the groups with gradients
summed over the ranks. The single-process path is the same code with neither.
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
from r1kit.distributed import ddp
from r1kit.eval.evaluate import EvalConfig, evaluate, has_reflection
from r1kit.eval.probes import rollout_phenomena
from r1kit.grpo import core
from r1kit.grpo.checkpoint import (latest_checkpoint, load_trainer_state, rng_state, save_checkpoint,
                                   set_rng_state, truncate_jsonl_after)
from r1kit.grpo.config import ZeroConfig
from r1kit.grpo.logprobs import completion_logprobs, make_group_batch, split_by_tokens
from r1kit.models import load_model, load_tokenizer, resolve_model_path
from r1kit.models.precision import SamplingCopy, compute_context
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
    prompt_id: int = -1       # position in the prompt stream (unique over the run)
    weight_version: int = 0   # trainer step whose weights sampled it (0: the initial weights)
    actor: int = -1           # Ray rollout actor slot (-1: sampled in the trainer's process)

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

    def take_indexed(self, n: int) -> tuple[list[int], list[dict]]:
        """The next ``n`` prompts and their stream positions (unique ids over the run)."""
        ids = list(range(self.position, self.position + n))
        return ids, self.take(n)

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


def _import_reward_modules(names: list[str]) -> None:
    """Import the modules that register user rewards (the Ray reward workers import them too)."""
    import importlib
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError(f"distributed.reward_modules: cannot import {name!r} ({exc})") from None


def behaviour_logprobs(groups: list[Group], mbs) -> list[torch.Tensor]:
    """Per micro-batch, the sampler's per-token log-probs (log softmax(logits / T) of the weights
    that sampled, recorded by the rollout engine), laid out like ``completion_logprobs``."""
    flat = [r for grp in groups for r in grp.rollouts]
    out = []
    for batch, rows, _ in mbs:
        logp = torch.zeros(batch.completion_ids.shape)
        for j, row in enumerate(rows.tolist()):
            values = flat[row].logprobs
            logp[j, : len(values)] = torch.tensor(values)
        out.append(logp)
    return out


class GRPOTrainer:
    """Runs an R1-Zero GRPO job described by a ``ZeroConfig``."""

    def __init__(self, cfg: ZeroConfig, resume: bool = False, progress: bool = True, overwrite: bool = False):
        self.cfg, self.progress = cfg, progress
        self.out = Path(cfg.out)
        _import_reward_modules(cfg.distributed.reward_modules)
        self._register_reward_models()
        by_kind = [(f"rewards_by_kind.{kind}", name) for kind, ws in cfg.rewards_by_kind.items() for name in ws]
        for key, name in [*((f"rewards.{n}", n) for n in [*cfg.rewards, cfg.accuracy_reward]), *by_kind]:
            try:
                get_reward(name)
            except ValueError as exc:
                raise ConfigError(f"{key}: {exc}") from None
        # the accuracy reward is always scored (weight 0 when it is not part of the reward)
        self.reward_weights = {cfg.accuracy_reward: 0.0, **cfg.rewards}
        ddp.init_from_env("cpu")  # the trainer's tensors live on the CPU (no device option yet)
        self.rank, self.world = ddp.rank(), ddp.world_size()
        self.main = self.rank == 0
        self._check_distributed()
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
        if self.main:
            self._check_fresh_run_dir(resume, overwrite)
        ddp.barrier()
        # float32 master weights; dtype bfloat16 is the compute dtype (r1kit.models.precision)
        self.policy = load_model(str(start) if start else self.model_path, "float32")
        self.sampler = SamplingCopy(self.policy, cfg.dtype)
        self.reference = load_model(self.model_path, cfg.dtype) if cfg.grpo.beta > 0 else None
        self.optimizer = torch.optim.AdamW(self.policy.parameters(), lr=cfg.optim.lr,
                                           weight_decay=cfg.optim.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.stream = PromptStream(self.problems, cfg.seed)
        if start:
            self._restore(start)
        elif resume:  # nothing to resume from: start over, without the records of the lost steps
            print(f"--resume: no checkpoint in {self.out}; starting from step 0")
            if self.main:
                for name in ("metrics.jsonl", "eval.jsonl"):
                    truncate_jsonl_after(self.out / name, -1)
        if self.main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.json").write_text(json.dumps(to_dict(cfg), indent=2))
        self.writer = self._tensorboard() if self.main else None
        self._prefetched = None  # with distributed.max_weight_lag > 0: the next step's first round
        self.ray = None
        if cfg.distributed.backend == "ray" and self.main:
            from r1kit.distributed.backend import RayBackend
            self.ray = RayBackend(cfg, cfg.model)  # resolved on each node; the weights come by push
            self.ray.push_weights(self.policy, self.step)

    def _check_distributed(self) -> None:
        d, g = self.cfg.distributed, self.cfg.grpo
        for name in ("rollout_actors", "max_actor_restarts"):
            if getattr(d, name) < (1 if name == "rollout_actors" else 0):
                raise ConfigError(f"distributed.{name}: {getattr(d, name)} is out of range")
        if d.reward_workers < 0 or d.max_weight_lag < 0 or d.actor_threads < 0:
            raise ConfigError("distributed.reward_workers, max_weight_lag and actor_threads must be >= 0")
        for name in ("reward_timeout", "rollout_timeout"):
            if getattr(d, name) <= 0:
                raise ConfigError(f"distributed.{name}: {getattr(d, name)} must be > 0")
        if d.backend == "ray" and (self.cfg.rewards_by_kind or self.cfg.reward_models):
            raise ConfigError("distributed.backend: rewards_by_kind and reward_models run in the trainer's "
                              "process only; use backend none for all-scenario RL")
        if d.max_weight_lag and d.backend != "ray":
            raise ConfigError("distributed.max_weight_lag: off-policy lag needs distributed.backend=ray")
        if d.max_weight_lag and g.dynamic_sampling:
            raise ConfigError("distributed.max_weight_lag: not supported with grpo.dynamic_sampling")
        if g.prompts_per_step < self.world:
            raise ConfigError(f"grpo.prompts_per_step: {g.prompts_per_step} groups cannot be shared by "
                              f"{self.world} ranks")
        if self.world > 1 and g.dynamic_sampling and d.backend != "ray":
            raise ConfigError("grpo.dynamic_sampling: under torchrun it needs distributed.backend=ray "
                              "(rank 0 then samples for all ranks)")


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
        for name in ("metrics.jsonl", "eval.jsonl", "samples.jsonl"):
            if self.main:
                truncate_jsonl_after(self.out / name, self.step)
        print(f"resumed from {checkpoint} at step {self.step}")

    def _save(self) -> Path:
        # prompts taken for a prefetched (not yet trained) round are taken again after a resume
        ahead = len(self._prefetched.prompt_ids) if self._prefetched is not None else 0
        state = {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                 "rng": rng_state(), "data_position": self.stream.position - ahead, "step": self.step}
        return save_checkpoint(self.out, self.step, self.policy, self.tokenizer, state,
                               self.cfg.keep_checkpoints)

    # ---- rollouts and rewards ----------------------------------------------------------------
    def _params(self, seed: int) -> SamplingParams:
        r = self.cfg.rollout
        return SamplingParams(n=self.cfg.grpo.group_size, temperature=r.temperature, top_p=r.top_p,
                              top_k=r.top_k, max_new_tokens=r.max_new_tokens, seed=seed)

    def _seed(self, step: int, round_: int = 0) -> int:
        return self.cfg.seed * 1_000_003 + step * 101 + round_

    def _make_groups(self, examples, prompts, rollouts, scored, prompt_ids, versions, actors) -> list[Group]:
        """Groups from flat rollouts/scores (G per prompt, prompt by prompt), soft penalty applied."""
        c, n = self.cfg, self.cfg.grpo.group_size
        groups = []
        for i, (ex, prompt) in enumerate(zip(examples, prompts)):
            mine, mine_scored = rollouts[i * n: (i + 1) * n], scored[i * n: (i + 1) * n]
            rewards = [total for total, _ in mine_scored]
            if c.grpo.overlong == "soft":
                lengths = torch.tensor([len(r.token_ids) for r in mine])
                penalty = core.overlong_soft_penalty(lengths, c.rollout.max_new_tokens, c.grpo.overlong_buffer)
                rewards = [r + p for r, p in zip(rewards, penalty.tolist())]
            ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
            groups.append(Group(ex, ids, mine, rewards, [parts for _, parts in mine_scored],
                                prompt_ids[i], versions[i], actors[i]))
        return groups

    def _sample_groups(self, examples: list[dict], seed: int, prompt_ids: list[int] | None = None) -> list[Group]:
        """Sample and score in this process with the current weights."""
        prompts = [build_prompt(ex["problem"], self.cfg.template, self.tokenizer) for ex in examples]
        rollouts = sample(self.sampler.model, self.tokenizer, prompts, self._params(seed))
        n = self.cfg.grpo.group_size
        scored = [score(r.text, examples[i // n], self.weights_for(examples[i // n]), self.stats)
                  for i, r in enumerate(rollouts)]
        ids = prompt_ids if prompt_ids is not None else [-1] * len(examples)
        return self._make_groups(examples, prompts, rollouts, scored, ids, [self.step] * len(examples),
                                 [-1] * len(examples))

    def _submit(self, n_prompts: int, seed: int, step: int):
        """Take prompts and start sampling them: on the Ray actors (returns at once, accepting
        weights no older than ``step - max_weight_lag``) or, without Ray, a deferred local job."""
        ids, examples = self.stream.take_indexed(n_prompts)
        if self.ray is None:
            return ids, examples, seed
        prompts = [build_prompt(ex["problem"], self.cfg.template, self.tokenizer) for ex in examples]
        return self.ray.submit(ids, examples, prompts, self._params(seed),
                               step - self.cfg.distributed.max_weight_lag)

    def _finish(self, submitted) -> list[Group]:
        """Wait for a submitted round and score it (in the reward workers, with Ray)."""
        if self.ray is None:
            ids, examples, seed = submitted
            return self._sample_groups(examples, seed, ids)
        results, scored = self.ray.finish(submitted, self.reward_weights, self.stats)
        rollouts = [r for res in results for r in res.rollouts]
        versions = [res.weight_version for res in results for _ in res.task.prompts]
        actors = [res.actor for res in results for _ in res.task.prompts]
        return self._make_groups(submitted.examples, submitted.prompts, rollouts, scored, submitted.prompt_ids,
                                 versions, actors)

    def _collect_all(self) -> tuple[list[Group], list[Group], int]:
        """This step's groups (the whole batch); with dynamic sampling, refill past all-equal groups."""
        g = self.cfg.grpo
        first, self._prefetched = self._prefetched, None
        sampled = self._finish(first or self._submit(g.prompts_per_step, self._seed(self.step), self.step))
        if not g.dynamic_sampling:
            return sampled, sampled, 0
        kept = [grp for grp in sampled if not grp.all_equal]
        rounds = 0
        while len(kept) < g.prompts_per_step and rounds < g.max_refill_rounds:
            rounds += 1
            more = self._finish(self._submit(g.prompts_per_step, self._seed(self.step, rounds), self.step))
            sampled += more
            kept += [grp for grp in more if not grp.all_equal]
        return kept[: g.prompts_per_step] or sampled[: g.prompts_per_step], sampled, rounds

    def _collect(self) -> tuple[list[Group], list[Group], int]:
        """(this rank's groups to train on, every group sampled this step, refill rounds).

        Under torchrun with Ray, rank 0 drives the actors and broadcasts the batch; without Ray,
        every rank takes the same global prompts and samples its own share (its own seed).
        """
        if self.world == 1:
            return self._collect_all()
        if self.cfg.distributed.backend == "ray":
            kept, sampled, rounds = ddp.broadcast_object(self._collect_all() if self.main else None)
            return ddp.shard(kept), sampled, rounds
        ids, examples = self.stream.take_indexed(self.cfg.grpo.prompts_per_step)
        seed = self._seed(self.step) + 7919 * self.rank
        mine = self._sample_groups(ddp.shard(examples), seed, ddp.shard(ids))
        return mine, [grp for part in ddp.gather_objects(mine) for grp in part], 0

    def _prefetch(self) -> None:
        """With an off-policy lag, start sampling the next step's prompts before this step trains."""
        if self.ray is not None and self.cfg.distributed.max_weight_lag > 0 and self.step + 1 < self.cfg.steps:
            self._prefetched = self._submit(self.cfg.grpo.prompts_per_step, self._seed(self.step + 1), self.step + 1)

    # ---- optimisation ------------------------------------------------------------------------
    def _prepare(self, groups: list[Group]) -> dict:
        """Micro-batches, advantages, global normalisers and frozen log-probs of a step's groups.

        ``num_seqs``/``num_tokens`` are summed over the torchrun ranks (``ddp.global_sum``), so the
        ranks' losses add up to the single-process loss of the whole batch.
        """
        c, g = self.cfg, self.cfg.grpo
        rewards = torch.tensor([r for grp in groups for r in grp.rewards])
        advantages = core.group_advantages(rewards, g.group_size, g.advantage_scale)
        mbs = list(micro_batches(groups, self.tokenizer.pad_token_id, g.micro_batch_tokens, g.overlong == "mask"))
        local_tokens = sum((m.sum() for _, _, m in mbs), torch.tensor(0.0))
        totals = {"seqs": int(ddp.global_sum(len(rewards)).item()),
                  "tokens": ddp.global_sum(local_tokens).float().clamp(min=1)}
        temperature = c.rollout.temperature if c.rollout.temperature > 0 else 1.0

        def frozen_logprobs(model):
            with torch.no_grad(), compute_context(model, c.dtype):
                return [completion_logprobs(model, batch, temperature)[0] for batch, _, _ in mbs]

        lagged = any(grp.weight_version < self.step for grp in groups)
        if lagged:  # off-policy: pi_old is the policy that sampled, whose log-probs came with the samples
            old_logp = behaviour_logprobs(groups, mbs)
        else:  # with one pass the old policy is the current one (ratio = 1 exactly): no extra forward
            old_logp = frozen_logprobs(self.policy) if g.mu > 1 else None
        ref_logp = frozen_logprobs(self.reference) if self.reference is not None else None
        return {"mbs": mbs, "advantages": advantages, "totals": totals, "temperature": temperature,
                "old_logp": old_logp, "ref_logp": ref_logp}

    def _accumulate(self, prep: dict, stats: dict) -> float:
        """One pass of forward/backward over the micro-batches; leaves the gradients of the global
        batch's loss in ``.grad`` (summed over the ranks) and returns that loss."""
        c, g = self.cfg, self.cfg.grpo
        old_logp, ref_logp, totals = prep["old_logp"], prep["ref_logp"], prep["totals"]
        self.optimizer.zero_grad(set_to_none=True)
        step_loss = 0.0
        for k, (batch, rows, loss_mask) in enumerate(prep["mbs"]):
            with compute_context(self.policy, c.dtype):
                logp, entropy = completion_logprobs(self.policy, batch, prep["temperature"])
            loss, mb_stats = core.grpo_loss(
                logp, old_logp[k] if old_logp else logp.detach(), ref_logp[k] if ref_logp else None,
                prep["advantages"][rows], loss_mask, eps_low=g.eps_low, eps_high=g.eps_high, beta=g.beta,
                agg=g.loss_agg, max_len=c.rollout.max_new_tokens, num_seqs=totals["seqs"],
                num_tokens=totals["tokens"])
            loss.backward()
            step_loss += loss.item()
            stats["entropy"].append(((entropy * loss_mask).sum() / loss_mask.sum().clamp(min=1)).item())
            for key in ("kl", "clip_frac"):
                if key in mb_stats:
                    stats[key].append(mb_stats[key])
        ddp.all_reduce_gradients(self.policy.parameters())
        return float(ddp.global_sum(step_loss))

    def _optimise(self, groups: list[Group]) -> dict:
        prep = self._prepare(groups)
        self.policy.train()
        stats = {"kl": [], "clip_frac": [], "entropy": [], "grad_norm": [], "loss": []}
        for _ in range(self.cfg.grpo.mu):
            stats["loss"].append(self._accumulate(prep, stats))
            norm = torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.cfg.optim.max_grad_norm)
            self.optimizer.step()
            self.scheduler.step()
            stats["grad_norm"].append(norm.item())
        self.policy.eval()
        self.sampler.refresh()
        out = {k: sum(v) / len(v) for k, v in stats.items() if v}
        if self.world > 1:  # per-rank averages -> the mean over the ranks (the loss is already global)
            for key in ("kl", "clip_frac", "entropy"):
                if key in out:
                    out[key] = float(ddp.global_sum(out[key])) / self.world
        return out

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
        m.update(rollout_phenomena(sampled, c.accuracy_reward, c.reflection_phrases))
        m["groups_all_equal_frac"] = sum(grp.all_equal for grp in sampled) / len(sampled)
        m["refill_rounds"] = rounds
        versions = [grp.weight_version for grp in sampled]
        m["weight_version/min"], m["weight_version/max"] = min(versions), max(versions)
        m["weight_lag/max"] = self.step - 1 - min(versions)  # 0: every sample from this step's weights
        if self.ray is not None:
            m.update(self.ray.counters())
        m.update(opt)
        m["lr"] = self.scheduler.get_last_lr()[0]
        m["reward_failures"] = self.stats.total()
        m["tokens_per_s"] = lengths.sum().item() / max(times["rollout_seconds"], 1e-9)
        m.update(times)
        return {k: v for k, v in m.items() if v is not None}

    def _log_samples(self, kept: list[Group], sampled: list[Group]) -> None:
        """``samples.jsonl``: one row per sample, with its prompt id, index and weight version."""
        kept_ids = {id(grp) for grp in kept}
        rows = [{"step": self.step, "prompt_id": grp.prompt_id, "sample_index": j,
                 "weight_version": grp.weight_version, "actor": grp.actor, "reward": grp.rewards[j],
                 "trained": id(grp) in kept_ids, "length": len(r.token_ids)}
                for grp in sampled for j, r in enumerate(grp.rollouts)]
        path = self.out / "samples.jsonl"
        with path.open("a", encoding="utf-8") as f:
            f.writelines(json.dumps(row) + "\n" for row in rows)

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
        _, results = evaluate(self.sampler.model, self.tokenizer, self.eval_problems, cfg, progress=False)
        row = {"step": self.step, **results}
        append_jsonl(self.out / "eval.jsonl", row)
        return row

    def train(self) -> dict:
        try:
            return self._train()
        finally:
            if self.ray is not None:
                self.ray.close()
                self.ray = None

    def _after_step(self, groups, sampled, opt, times, rounds, bar) -> None:
        """Rank 0's bookkeeping of a finished step: metrics, sample log, progress bar."""
        metrics = self._metrics(groups, sampled, opt, times, rounds)
        self._log(metrics)
        if self.ray is not None and self.cfg.distributed.sample_log:
            self._log_samples(groups if self.world == 1 else sampled, sampled)
        bar.update(1)
        bar.set_postfix(reward=f"{metrics['reward/mean']:.2f}", acc=f"{metrics.get('accuracy', float('nan')):.2f}",
                        len=f"{metrics['response_length/mean']:.0f}", refresh=False)

    def _train(self) -> dict:
        c = self.cfg
        last_eval = None
        if c.eval.every and self.step == 0 and self.main:
            last_eval = self.run_eval()
        bar = tqdm(total=c.steps, initial=self.step, desc="GRPO", disable=not (self.progress and self.main),
                   mininterval=1)
        while self.step < c.steps:
            t0 = time.time()
            groups, sampled, rounds = self._collect()
            self._prefetch()
            t1 = time.time()
            opt = self._optimise(groups)
            self.step += 1
            if self.ray is not None:
                self.ray.push_weights(self.policy, self.step)
            t2 = time.time()
            times = {"rollout_seconds": t1 - t0, "train_seconds": t2 - t1, "step_seconds": t2 - t0}
            if not self.main:
                continue
            self._after_step(groups, sampled, opt, times, rounds, bar)
            if c.eval.every and (self.step % c.eval.every == 0 or self.step == c.steps):
                last_eval = self.run_eval()
                cons = last_eval.get(f"cons@{c.eval.k}")
                bar.write(f"step {self.step}: eval pass@1 {last_eval['pass@1']:.3f} "
                          + (f"cons@{c.eval.k} {cons:.3f} " if cons is not None else "")
                          + f"length {last_eval['mean_length']:.1f}")
            if (c.checkpoint_every and self.step % c.checkpoint_every == 0) or self.step == c.steps:
                self._save()
        bar.close()
        ddp.barrier()
        if self.writer:
            self.writer.close()
        summary = {"steps": self.step, "final_eval": last_eval, "reward_failures": self.stats.as_dict()}
        if self.main:
            (self.out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
        return summary
