"""What the GRPO trainer drives when ``distributed.backend: ray``: rollout actors + reward workers.

The trainer keeps the algorithm (grouping, advantages, loss, optimiser); this class only moves
prompts, weights, samples and scores between processes.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

from r1kit.config import ConfigError

from r1kit.distributed.cluster import connect, require_ray, shutdown
from r1kit.distributed.ray_rewards import RayRewardPool
from r1kit.distributed.ray_rollout import Pending, RayRollout, TaskResult, make_tasks
from r1kit.rewards import RewardStats, score
from r1kit.rollout import SamplingParams

REWARD_WORKER_CPUS = 0.5  # Ray CPUs reserved per reward worker (the sandbox's programs run on top)


@dataclass
class RaySubmission:
    """One sampling round in flight: its prompts and the actors' pending calls."""

    prompt_ids: list[int]
    examples: list[dict]
    prompts: list[str]
    pending: Pending


class RayBackend:
    """Starts (or joins) the cluster, holds the actors, pushes weights, samples and scores."""

    def __init__(self, cfg, model: str):
        d = cfg.distributed
        require_ray()
        self.cfg = d
        needed = d.rollout_actors * d.actor_cpus + d.reward_workers * REWARD_WORKER_CPUS
        # Ray's CPUs are scheduling slots: a private cluster offers at least what the actors reserve
        num_cpus = d.num_cpus if d.num_cpus is not None or d.address else max(os.cpu_count() or 1, math.ceil(needed))
        self.started = connect(d.address, num_cpus)
        self.rollout = RayRollout(model, cfg.dtype, d.rollout_actors, d.actor_cpus, d.actor_threads,
                                  d.actor_device, d.max_actor_restarts, d.rollout_timeout)
        self.rewards = (RayRewardPool(d.reward_workers, cfg.reward_modules, d.reward_timeout, REWARD_WORKER_CPUS)
                        if d.reward_workers else None)
        self._wait_started(needed)

    def _wait_started(self, needed: float, timeout: float = 600) -> None:
        """Every actor and worker answers, or a ConfigError saying what the cluster lacks."""
        ray = require_ray()
        handles = self.rollout.actors + (self.rewards.workers if self.rewards else [])
        ready, _ = ray.wait([h.pid.remote() for h in handles], num_returns=len(handles), timeout=timeout)
        if len(ready) < len(handles):
            raise ConfigError(f"distributed: only {len(ready)} of {len(handles)} Ray actors started within "
                              f"{timeout:g} s; they reserve {needed:g} CPUs (rollout_actors x actor_cpus + "
                              f"{REWARD_WORKER_CPUS} per reward worker), the cluster has "
                              f"{ray.cluster_resources().get('CPU', 0):g}")

    def push_weights(self, model, version: int) -> None:
        self.rollout.push_weights(model, version)

    def submit(self, prompt_ids: list[int], examples: list[dict], prompts: list[str], params: SamplingParams,
               min_version: int) -> RaySubmission:
        tasks = make_tasks(prompt_ids, prompts, len(self.rollout.actors), params.seed or 0, min_version)
        return RaySubmission(prompt_ids, examples, prompts, self.rollout.submit(tasks, params))

    def finish(self, sub: RaySubmission, weights: dict[str, float],
               stats: RewardStats) -> tuple[list[TaskResult], list[tuple[float, dict]]]:
        """Wait for a round's samples and their scores (every rollout's, in prompt order).

        A task's samples go to a reward worker as soon as its actor returns them, so scoring
        overlaps the sampling still running on the other actors.
        """
        example_of = dict(zip(sub.prompt_ids, sub.examples))

        def items(res: TaskResult) -> list[tuple[str, dict]]:
            return [(r.text, example_of[res.task.prompt_ids[r.prompt_index]]) for r in res.rollouts]

        if self.rewards is None:
            results = self.rollout.collect(sub.pending)
            return results, [score(text, ex, weights, stats) for res in results for text, ex in items(res)]
        jobs = {}
        results = self.rollout.collect(sub.pending, on_result=lambda res: jobs.__setitem__(
            res.task.task_id, self.rewards.submit(items(res), weights)))
        scored = self.rewards.results([jobs[res.task.task_id] for res in results], weights, stats)
        return results, [s for part in scored for s in part]

    def counters(self) -> dict:
        out = {"rollout/actor_restarts": self.rollout.restarts, "rollout/requeued_tasks": self.rollout.requeued}
        if self.rewards is not None:
            out["reward/workers_replaced"] = self.rewards.replaced
        return out

    def close(self) -> None:
        self.rollout.shutdown()
        if self.rewards is not None:
            self.rewards.shutdown()
        shutdown(self.started)
