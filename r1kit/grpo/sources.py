"""Rollout sources: where a GRPO step's scored groups come from.

A source turns the next prompts of the run's :class:`PromptStream` into :class:`Group` s (G sampled
completions of one prompt, scored by the rewards) and hands the trainer a :class:`StepBatch`. The
trainer never asks which source it has:

* :class:`LocalSource` samples with the rollout engine of this process (under ``torchrun`` each
  rank samples its share of the step's prompts with its own seed) and scores here; with
  ``rollout.async_steps: 1`` it samples the next step's prompts while this step trains;
* :class:`RaySource` sends the prompts to Ray rollout actors and the samples to Ray reward workers
  (``r1kit.distributed``), scored with the same weights; under ``torchrun`` rank 0 drives them and
  broadcasts the batch.

Both apply DAPO's dynamic sampling the same way (:func:`fill_batch`).
"""
from __future__ import annotations

import random
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from r1kit.config import ConfigError
from r1kit.distributed import ddp
from r1kit.distributed.cluster import connect, private_cluster_cpus, shutdown, wait_started
from r1kit.distributed.ray_rewards import RayRewardPool
from r1kit.distributed.ray_rollout import Pending, RayRollout, make_tasks
from r1kit.environments import make_environment, prompt_for
from r1kit.grpo import core
from r1kit.grpo.config import ZeroConfig
from r1kit.models import resolve_model_path
from r1kit.perf import STEP_TIMER
from r1kit.rewards import RewardStats, score_batch
from r1kit.rollout import Rollout, SamplingParams
from r1kit.rollout.engines import EngineSetup, RolloutEngine, make_engine
from r1kit.rollout.process import ProcessEngine
from r1kit.threads import cpu_budget


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


@dataclass
class StepBatch:
    """A step's groups: ``train`` (this rank's share to optimise on), ``sampled`` (every group
    sampled this step, on every rank) and the dynamic-sampling ``refill_rounds`` it took."""

    train: list[Group]
    sampled: list[Group]
    refill_rounds: int = 0


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


class RampStream(PromptStream):
    """Rising difficulty: each problem carries an integer ``level``; at stream position ``p`` of the
    run's ``total`` prompts the next one is drawn from the levels around ``x = (L - 1) * p / total``
    (``L`` distinct levels, lowest first): the level below ``x`` with chance ``1 - frac(x)``, the one
    above with ``frac(x)``, then uniformly within it. Two levels: the harder one's share rises
    linearly from 0 at the first step to 1 at the last. Each draw is seeded by ``(seed, p)``, so the
    order is deterministic and resumable from ``position`` alone.

    Example: ``curriculum: ramp`` with ``data: countdown`` (level = how many numbers, 3 or 4).
    """

    def __init__(self, problems: list[dict], seed: int, total: int, position: int = 0):
        super().__init__(problems, seed, position)
        bad = next((i for i, row in enumerate(problems) if not isinstance(row.get("level"), int)), None)
        if bad is not None:
            raise ConfigError(f"curriculum: ramp needs an integer level in every problem; problem {bad + 1} "
                              f"({problems[bad].get('id', '?')}) has level={problems[bad].get('level')!r}")
        self.total = max(1, total)
        levels = sorted({row["level"] for row in problems})
        self.pools = [[row for row in problems if row["level"] == level] for level in levels]

    def take(self, n: int) -> list[dict]:
        out = []
        for _ in range(n):
            rng = random.Random(self.seed * 1_000_003 + self.position)
            x = (len(self.pools) - 1) * min(1.0, self.position / self.total)
            low = int(x)
            level = low + (low + 1 < len(self.pools) and rng.random() < x - low)
            out.append(rng.choice(self.pools[level]))
            self.position += 1
        return out


def prompt_stream(cfg: ZeroConfig, problems: list[dict]) -> PromptStream:
    """The run's prompt order (``curriculum``): seeded shuffles, or a :class:`RampStream`."""
    if cfg.curriculum == "ramp":
        return RampStream(problems, cfg.seed, cfg.steps * cfg.grpo.prompts_per_step)
    return PromptStream(problems, cfg.seed)


class Scoring:
    """The run's rewards: weights per prompt kind, the soft overlong penalty, grouping."""

    def __init__(self, cfg: ZeroConfig, tokenizer, stats: RewardStats):
        self.cfg, self.tokenizer, self.stats = cfg, tokenizer, stats
        # the accuracy reward is always scored (weight 0 when it is not part of the reward)
        self.default_weights = {cfg.accuracy_reward: 0.0, **cfg.rewards}

    def weights_for(self, example: dict) -> dict[str, float]:
        """The reward weights of ``example``: its kind's in ``rewards_by_kind``, else ``rewards``."""
        return self.cfg.rewards_by_kind.get(example.get("kind"), self.default_weights)

    def items(self, texts: list[str], examples: list[dict]) -> tuple[list[str], list[dict], list[dict]]:
        """What :func:`r1kit.rewards.score_batch` takes for ``texts`` (G per example, prompt by prompt):
        the completions, each one's example and each one's reward weights."""
        group_size = self.cfg.grpo.group_size
        rows = [examples[i // group_size] for i in range(len(texts))]
        return texts, rows, [self.weights_for(ex) for ex in rows]

    def score(self, rollouts: list[Rollout], examples: list[dict]) -> list[tuple[float, dict]]:
        """Score G rollouts per example (prompt by prompt) in this process."""
        return score_batch(*self.items([r.text for r in rollouts], examples), self.stats, self.cfg.reward_timeout)

    def groups(self, examples, prompts, rollouts, scored, prompt_ids, versions, actors) -> list[Group]:
        """Groups from flat rollouts/scores (G per prompt, prompt by prompt), soft penalty applied."""
        cfg, group_size = self.cfg, self.cfg.grpo.group_size
        out = []
        for i, (ex, prompt) in enumerate(zip(examples, prompts)):
            rows = slice(i * group_size, (i + 1) * group_size)  # this prompt's G completions
            mine, mine_scored = rollouts[rows], scored[rows]
            rewards = [total for total, _ in mine_scored]
            if cfg.grpo.overlong == "soft":
                lengths = torch.tensor([len(r.token_ids) for r in mine])
                penalty = core.overlong_soft_penalty(lengths, cfg.rollout.max_new_tokens, cfg.grpo.overlong_buffer)
                rewards = [r + p for r, p in zip(rewards, penalty.tolist())]
            ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
            out.append(Group(ex, ids, mine, rewards, [parts for _, parts in mine_scored],
                             prompt_ids[i], versions[i], actors[i]))
        return out


def sampling_params(cfg: ZeroConfig, seed: int) -> SamplingParams:
    rollout = cfg.rollout
    return SamplingParams(n=cfg.grpo.group_size, temperature=rollout.temperature, top_p=rollout.top_p,
                          top_k=rollout.top_k, max_new_tokens=rollout.max_new_tokens, seed=seed)


def step_seed(cfg: ZeroConfig, step: int, round_: int = 0) -> int:
    """The sampling seed of a step's ``round_``-th sampling round."""
    return cfg.seed * 1_000_003 + step * 101 + round_


def fill_batch(sample_round: Callable[[int], list[Group]], prompts_per_step: int, dynamic: bool,
               max_rounds: int) -> StepBatch:
    """A step's batch from sampling rounds (``sample_round(round_index)``). With DAPO's dynamic
    sampling, groups whose rewards are all equal are dropped and more rounds refill the batch
    (at most ``max_rounds``); if none is left the first groups are kept, so a step always trains."""
    sampled = sample_round(0)
    if not dynamic:
        return StepBatch(sampled, sampled, 0)
    kept = [grp for grp in sampled if not grp.all_equal]
    rounds = 0
    while len(kept) < prompts_per_step and rounds < max_rounds:
        rounds += 1
        more = sample_round(rounds)
        sampled += more
        kept += [grp for grp in more if not grp.all_equal]
    return StepBatch(kept[:prompts_per_step] or sampled[:prompts_per_step], sampled, rounds)


class RolloutSource:
    """The interface of a rollout source (see the module docstring)."""

    sample_log = False  # write samples.jsonl (one row per sample, with its weight version)

    def collect(self, step: int) -> StepBatch:
        """Sample and score the groups of ``step`` (0-based: sampled by the weights of ``step`` updates)."""
        raise NotImplementedError

    def push_weights(self, policy: torch.nn.Module, version: int) -> None:
        """Make the weights after ``version`` optimiser steps the ones that sample from now on."""

    def prompts_ahead(self) -> int:
        """Prompts taken from the stream for a later step (not to be counted as consumed in a checkpoint)."""
        return 0

    def state(self) -> dict:
        """What a checkpoint keeps of the source (samples taken ahead), for :meth:`load_state`."""
        return {}

    def load_state(self, state: dict) -> None:
        """Resume from :meth:`state` (after the stream's position is restored)."""

    def counters(self) -> dict:
        """Backend counters logged with every step's metrics."""
        return {}

    def close(self) -> None:
        """Release workers and processes."""


def local_engine(cfg: ZeroConfig, tokenizer, sampler) -> RolloutEngine:
    """The run's ``rollout.engine``. With ``rollout.async_steps`` the torch engine runs in a worker
    process (r1kit.rollout.process) so that sampling and training do not share the GIL; it runs
    ``threads`` torch threads (auto: half the CPUs). A server engine is used as it is (its
    ``generate`` waits on the network, without the GIL)."""
    if cfg.rollout.async_steps and cfg.rollout.engine == "torch":
        threads = cfg.threads if cfg.threads > 0 else max(1, cpu_budget() // 2)
        return ProcessEngine(sampler.model, tokenizer, threads=threads, timeout=cfg.rollout.async_timeout)
    return make_engine(cfg.rollout.engine, EngineSetup(
        tokenizer, lambda: sampler.model, resolve_model_path(cfg.model), cfg.dtype, cfg.rollout.endpoint,
        Path(cfg.out) / "vllm-server.log", trains=True))


@dataclass
class Ahead:
    """A sampling round submitted before its step: its prompts, the weight version that samples
    it and the engine's pending ``generate``."""

    step: int
    prompt_ids: list[int]
    examples: list[dict]
    prompts: list[str]
    version: int
    rollouts: Future


class LocalSource(RolloutSource):
    """Samples with the run's rollout engine (``rollout.engine``: ``torch`` over ``sampler.model``,
    the policy's sampling copy that the trainer refreshes in place after every optimiser step, or a
    vLLM server that gets that copy's weights) and scores in this process.

    With ``rollout.async_steps: 1`` (one process, no dynamic sampling): right after handing out a
    step's batch, the next step's prompts go to the engine's ``generate`` on a one-thread executor,
    so they are sampled (by the weights this step started from) while this step trains;
    :meth:`push_weights` waits for that round before the engine takes the new weights. Only the
    engine interface is used, so any engine whose ``generate`` releases the GIL (the torch engine's
    worker process, a server's HTTP call) overlaps with training."""

    def __init__(self, cfg: ZeroConfig, tokenizer, stream: PromptStream, scoring: Scoring, sampler):
        self.cfg, self.tokenizer, self.stream, self.scoring = cfg, tokenizer, stream, scoring
        if cfg.rollout.engine != "torch" and ddp.world_size() > 1:
            raise ConfigError(f"rollout.engine: {cfg.rollout.engine} runs in a single process, not under torchrun")
        self.engine = local_engine(cfg, tokenizer, sampler)
        self.environment = make_environment(cfg.environment, cfg.tools)  # None: single-turn
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="r1kit-rollout") if cfg.rollout.async_steps else None
        self._ahead: Ahead | None = None

    def _prompts(self, examples: list[dict]) -> list[str]:
        return [prompt_for(self.environment, ex, self.cfg.template, self.tokenizer) for ex in examples]

    def _generate(self, prompts: list[str], examples: list[dict], seed: int):
        """The engine's rollouts of ``prompts`` (episodes with the run's environment, if any)."""
        return self.engine.generate(prompts, sampling_params(self.cfg, seed), environment=self.environment,
                                    examples=examples if self.environment else None)

    def _groups(self, prompt_ids, examples, prompts, rollouts, version: int) -> list[Group]:
        with STEP_TIMER("rewards"):
            scores = self.scoring.score(rollouts, examples)
        return self.scoring.groups(examples, prompts, rollouts, scores, prompt_ids,
                                   [version] * len(examples), [-1] * len(examples))

    def sample_groups(self, prompt_ids: list[int], examples: list[dict], seed: int, step: int) -> list[Group]:
        prompts = self._prompts(examples)
        with STEP_TIMER("sampling"):
            rollouts = self._generate(prompts, examples, seed)
        return self._groups(prompt_ids, examples, prompts, rollouts, step)

    def push_weights(self, policy: torch.nn.Module, version: int) -> None:
        if self._ahead is not None:  # the round in flight finishes on the weights it started with
            self._ahead.rollouts.result()
        self.engine.update_weights(policy, version)

    def close(self) -> None:
        self.engine.close()  # (a round still in flight then fails, and is dropped)
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)

    def _round(self, step: int, round_: int) -> list[Group]:
        ids, examples = self.stream.take_indexed(self.cfg.grpo.prompts_per_step)
        return self.sample_groups(ids, examples, step_seed(self.cfg, step, round_), step)

    def collect(self, step: int) -> StepBatch:
        grpo = self.cfg.grpo
        if self._executor is not None:
            return self._collect_ahead(step)
        if ddp.world_size() == 1:
            return fill_batch(lambda r: self._round(step, r), grpo.prompts_per_step, grpo.dynamic_sampling,
                              grpo.max_refill_rounds)
        # torchrun: every rank takes the same global prompts and samples its own share, own seed
        ids, examples = self.stream.take_indexed(grpo.prompts_per_step)
        seed = step_seed(self.cfg, step) + 7919 * ddp.rank()
        mine = self.sample_groups(ddp.shard(ids), ddp.shard(examples), seed, step)
        return StepBatch(mine, [grp for part in ddp.gather_objects(mine) for grp in part], 0)

    # ---- async_steps: 1 ----------------------------------------------------------------------
    def _submit(self, step: int) -> Ahead:
        """Take ``step``'s prompts and start sampling them with the engine's current weights."""
        ids, examples = self.stream.take_indexed(self.cfg.grpo.prompts_per_step)
        prompts = self._prompts(examples)
        return Ahead(step, ids, examples, prompts, self.engine.version,
                     self._executor.submit(self._generate, prompts, examples, step_seed(self.cfg, step)))

    def _collect_ahead(self, step: int) -> StepBatch:
        """This step's round (sampled ahead, or now for the first step), scored here; then the next
        step's round goes to the engine before this step trains."""
        ahead, self._ahead = self._ahead, None
        if ahead is None:
            ahead = self._submit(step)
        with STEP_TIMER("sampling"):  # (the part of the round that training did not hide)
            rollouts = ahead.rollouts.result()
        groups = self._groups(ahead.prompt_ids, ahead.examples, ahead.prompts, rollouts, ahead.version)
        if step + 1 < self.cfg.steps:
            self._ahead = self._submit(step + 1)
        return StepBatch(groups, groups, 0)

    def prompts_ahead(self) -> int:
        return len(self._ahead.prompt_ids) if self._ahead is not None else 0

    def state(self) -> dict:
        """The round sampled ahead (finished: the trainer saves after :meth:`push_weights`), so that
        a resumed run trains on the very samples the uninterrupted run would have."""
        a = self._ahead
        if a is None or not a.rollouts.done():
            return {}
        return {"ahead": {"step": a.step, "prompt_ids": a.prompt_ids, "version": a.version,
                          "rollouts": a.rollouts.result()}}

    def load_state(self, state: dict) -> None:
        saved = state.get("ahead")
        if not saved or self._executor is None:
            return
        ids, examples = self.stream.take_indexed(len(saved["prompt_ids"]))
        if ids != saved["prompt_ids"]:  # the stream's position and the saved round disagree: sample again
            self.stream.position -= len(ids)
            return
        done: Future = Future()
        done.set_result(saved["rollouts"])
        self._ahead = Ahead(saved["step"], ids, examples, self._prompts(examples), saved["version"], done)


@dataclass
class RaySubmission:
    """One sampling round in flight: its prompts and the actors' pending calls."""

    prompt_ids: list[int]
    examples: list[dict]
    prompts: list[str]
    pending: Pending


class RaySource(RolloutSource):
    """Ray rollout actors sample (``r1kit.distributed.ray_rollout``) and Ray reward workers score
    (``r1kit.distributed.ray_rewards``, with the same per-kind weights and reward models as
    :class:`Scoring`); rank 0 drives them and, under ``torchrun``, broadcasts the batch. With
    ``distributed.max_weight_lag`` the next step's prompts go to the actors before this step trains.
    A task's samples go to a reward worker as soon as its actor returns them, so scoring overlaps
    the sampling still running on the other actors."""

    REWARD_WORKER_CPUS = 0.5  # Ray CPUs reserved per reward worker (the sandbox's programs run on top)

    def __init__(self, cfg: ZeroConfig, tokenizer, stream: PromptStream, scoring: Scoring, sampler):
        self.cfg, self.tokenizer, self.stream, self.scoring = cfg, tokenizer, stream, scoring
        self.environment = make_environment(cfg.environment, cfg.tools)  # for the prompts; the actors run their own
        self.sample_log = cfg.distributed.sample_log
        self.rollout = self.rewards = None
        self._started, self._prefetched = False, None
        if ddp.is_main():
            self._start_workers()

    def _start_workers(self) -> None:
        """Start (or join) the cluster and the actors; the model is resolved on each node and the
        weights come by push."""
        cfg, distributed = self.cfg, self.cfg.distributed
        needed = distributed.rollout_actors * distributed.actor_cpus + distributed.reward_workers * self.REWARD_WORKER_CPUS
        self._started = connect(distributed.address, private_cluster_cpus(distributed.num_cpus, distributed.address, needed))
        self.rollout = RayRollout(cfg.model, cfg.dtype, distributed.rollout_actors, distributed.actor_cpus, distributed.actor_threads,
                                  distributed.actor_device, distributed.max_actor_restarts, distributed.rollout_timeout,
                                  cfg.environment, tuple(cfg.environment_modules), cfg.tools)
        if distributed.reward_workers:
            self.rewards = RayRewardPool(distributed.reward_workers, cfg.reward_modules, distributed.reward_timeout,
                                         self.REWARD_WORKER_CPUS, cfg.reward_models, cfg.reward_timeout)
        wait_started(self.rollout.actors + (self.rewards.workers if self.rewards else []), needed)

    def _submit(self, step: int, round_: int) -> RaySubmission:
        """Send ``step``'s ``round_``-th prompts to the actors (sampled by weights no older than
        ``step - max_weight_lag``)."""
        ids, examples = self.stream.take_indexed(self.cfg.grpo.prompts_per_step)
        prompts = [prompt_for(self.environment, ex, self.cfg.template, self.tokenizer) for ex in examples]
        params = sampling_params(self.cfg, step_seed(self.cfg, step, round_))
        tasks = make_tasks(ids, prompts, len(self.rollout.actors), params.seed,
                           step - self.cfg.distributed.max_weight_lag, examples if self.environment else None)
        return RaySubmission(ids, examples, prompts, self.rollout.submit(tasks, params))

    def _finish(self, sub: RaySubmission) -> list[Group]:
        """Wait for a round's samples and their scores; its groups in prompt order."""
        example_of = dict(zip(sub.prompt_ids, sub.examples))

        def items(res) -> tuple[list[str], list[dict], list[dict]]:
            texts = [r.text for r in res.rollouts]
            examples = [example_of[res.task.prompt_ids[r.prompt_index]] for r in res.rollouts]
            return texts, examples, [self.scoring.weights_for(ex) for ex in examples]

        if self.rewards is None:
            results = self.rollout.collect(sub.pending)
            texts, examples, weights = (sum(part, []) for part in zip(*map(items, results)))
            scored = score_batch(texts, examples, weights, self.scoring.stats, self.cfg.reward_timeout)
        else:
            jobs = {}
            results = self.rollout.collect(sub.pending, on_result=lambda res: jobs.__setitem__(
                res.task.task_id, self.rewards.submit(*items(res))))
            parts = self.rewards.results([jobs[res.task.task_id] for res in results], self.scoring.stats)
            scored = [s for part in parts for s in part]
        rollouts = [r for res in results for r in res.rollouts]
        versions = [res.weight_version for res in results for _ in res.task.prompts]
        actors = [res.actor for res in results for _ in res.task.prompts]
        return self.scoring.groups(sub.examples, sub.prompts, rollouts, scored, sub.prompt_ids, versions, actors)

    def _collect_here(self, step: int) -> StepBatch:
        grpo = self.cfg.grpo
        first, self._prefetched = self._prefetched, None

        def sample_round(r: int) -> list[Group]:
            return self._finish(first if (r == 0 and first is not None) else self._submit(step, r))

        batch = fill_batch(sample_round, grpo.prompts_per_step, grpo.dynamic_sampling, grpo.max_refill_rounds)
        if self.cfg.distributed.max_weight_lag > 0 and step + 1 < self.cfg.steps:
            self._prefetched = self._submit(step + 1, 0)
        return batch

    def collect(self, step: int) -> StepBatch:
        with STEP_TIMER("sampling"):  # the actors sample and the reward workers score meanwhile
            if ddp.world_size() == 1:
                return self._collect_here(step)
            batch = ddp.broadcast_object(self._collect_here(step) if ddp.is_main() else None)
        return StepBatch(ddp.shard(batch.train), batch.sampled, batch.refill_rounds)

    def push_weights(self, policy, version: int) -> None:
        if self.rollout is not None:
            self.rollout.push_weights(policy, version)

    def prompts_ahead(self) -> int:
        return len(self._prefetched.prompt_ids) if self._prefetched is not None else 0

    def counters(self) -> dict:
        if self.rollout is None:
            return {}
        out = {"rollout/actor_restarts": self.rollout.restarts, "rollout/requeued_tasks": self.rollout.requeued}
        if self.rewards is not None:
            out["reward/workers_replaced"] = self.rewards.replaced
        return out

    def close(self) -> None:
        if self.rollout is not None:
            self.rollout.shutdown()
            if self.rewards is not None:
                self.rewards.shutdown()
            shutdown(self._started)
            self.rollout = self.rewards = None


SOURCES: dict[str, type[RolloutSource]] = {"none": LocalSource, "ray": RaySource}
