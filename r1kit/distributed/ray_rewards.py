"""A pool of Ray reward workers: rule rewards, reward models and the code sandbox run there.

Workers score with :func:`r1kit.rewards.score_batch`, exactly as the trainer's process does: each
sample with its own reward weights (its prompt kind's), user rewards imported from
``reward_modules``, the run's ``reward_models`` registered as batched rewards, each reward call
under ``reward_timeout``. ``score_batch`` already turns a reward that raises into 0 with a counted reason. The pool
adds the failures a process cannot report itself: a worker that dies (killed, out of memory, a
reward calling ``os._exit``) or one that takes longer than ``timeout`` seconds. Either way the
samples of that batch score 0 for every reward, each counted under ``reward_worker`` with the
reason, the worker is replaced, and the step goes on: a step never waits longer than ``timeout``
for its rewards.
"""
from __future__ import annotations

import importlib
import os
import time
from dataclasses import dataclass

from r1kit.rewards import DEFAULT_TIMEOUT_S, RewardStats, score_batch
from r1kit.rewards.config import RewardModelConfig
from r1kit.rewards.reward_model import register_reward_models

WORKER_FAILURE = "reward_worker"


class RewardWorker:
    """The worker's body (a plain class; ``RayRewardPool`` wraps it with ``ray.remote``)."""

    def __init__(self, modules: list[str], reward_models: dict[str, RewardModelConfig], call_timeout: float):
        for name in modules:
            importlib.import_module(name)
        register_reward_models(reward_models)
        self.call_timeout = call_timeout

    def pid(self) -> int:
        return os.getpid()

    def score(self, texts: list[str], examples: list[dict], weights: list[dict[str, float]]):
        """``(total, parts)`` per completion, and this batch's call/failure counts."""
        stats = RewardStats()
        scored = score_batch(texts, examples, weights, stats, self.call_timeout)
        return scored, dict(stats.calls), dict(stats.failures)


@dataclass
class RewardJob:
    ref: object
    slot: int
    actor: object
    weights: list[dict[str, float]]  # one per completion: what a failed job scores 0 for


class RayRewardPool:
    """``n`` reward workers; batches go round-robin, results come back with a deadline of
    ``timeout`` seconds per batch (each reward call inside is limited to ``call_timeout``)."""

    def __init__(self, n: int, modules: list[str], timeout: float, cpus: float = 0.5,
                 reward_models: dict[str, RewardModelConfig] | None = None,
                 call_timeout: float = DEFAULT_TIMEOUT_S):
        import ray  # optional dependency (the ray extra): imported only when the pool is used

        self._ray, self.timeout = ray, timeout
        self._cls = ray.remote(num_cpus=cpus, max_restarts=0, max_task_retries=0)(RewardWorker)
        self._args = (list(modules), dict(reward_models or {}), call_timeout)
        self.workers = [self._cls.remote(*self._args) for _ in range(n)]
        self._next, self.replaced = 0, 0

    def pids(self) -> list[int]:
        return self._ray.get([w.pid.remote() for w in self.workers])

    def submit(self, texts: list[str], examples: list[dict], weights: list[dict[str, float]]) -> RewardJob:
        slot = self._next % len(self.workers)
        self._next += 1
        actor = self.workers[slot]
        return RewardJob(actor.score.remote(texts, examples, weights), slot, actor, weights)

    def _replace(self, job: RewardJob) -> None:
        if self.workers[job.slot] is job.actor:
            self._ray.kill(job.actor, no_restart=True)
            self.workers[job.slot] = self._cls.remote(*self._args)
            self.replaced += 1

    def results(self, jobs: list[RewardJob], stats: RewardStats) -> list[list]:
        """Every job's ``(total, parts)`` list; a job whose worker dies or that is not done within
        ``timeout`` seconds (counted from this call) scores 0 with a reason in ``stats``."""
        ray = self._ray
        deadline = time.time() + self.timeout
        out = []
        for job in jobs:
            ready, _ = ray.wait([job.ref], timeout=max(0.0, deadline - time.time()))
            reason = None
            if not ready:
                reason = f"timeout: not scored within distributed.reward_timeout={self.timeout:g} s"
            else:
                try:
                    scored, calls, failures = ray.get(job.ref)
                except ray.exceptions.RayActorError as exc:
                    reason = f"worker died: {type(exc).__name__}"
                except ray.exceptions.RayTaskError as exc:
                    reason = f"worker error: {str(exc).strip().splitlines()[-1][:160]}"
            if reason is None:
                stats.calls.update(calls)
                stats.failures.update(failures)
                out.append(scored)
                continue
            self._replace(job)
            stats.record_failure(WORKER_FAILURE, reason, len(job.weights))
            out.append([(0.0, {name: 0.0 for name in w}) for w in job.weights])
        return out

    def shutdown(self) -> None:
        for worker in self.workers:
            self._ray.kill(worker, no_restart=True)
        self.workers = []
