"""A pool of Ray reward workers: rule rewards (and the code sandbox they start) run there.

``r1kit.rewards.score`` already turns a reward that raises into 0 with a counted reason. The pool
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

from r1kit.rewards import RewardStats, score

WORKER_FAILURE = "reward_worker"


class RewardWorker:
    """The worker's body (a plain class; ``RayRewardPool`` wraps it with ``ray.remote``)."""

    def __init__(self, modules: list[str]):
        for name in modules:
            importlib.import_module(name)

    def pid(self) -> int:
        return os.getpid()

    def score(self, items: list[tuple[str, dict]], weights: dict[str, float]):
        """``(total, parts)`` per (completion, example), and this batch's call/failure counts."""
        stats = RewardStats()
        scored = [score(text, example, weights, stats) for text, example in items]
        return scored, dict(stats.calls), dict(stats.failures)


@dataclass
class RewardJob:
    ref: object
    slot: int
    actor: object
    size: int


class RayRewardPool:
    """``n`` reward workers; batches go round-robin, results come back with a deadline."""

    def __init__(self, n: int, modules: list[str], timeout: float, cpus: float = 0.5):
        import ray

        self._ray, self.timeout = ray, timeout
        self._cls = ray.remote(num_cpus=cpus, max_restarts=0, max_task_retries=0)(RewardWorker)
        self._modules = list(modules)
        self.workers = [self._cls.remote(self._modules) for _ in range(n)]
        self._next, self.replaced = 0, 0

    def pids(self) -> list[int]:
        return self._ray.get([w.pid.remote() for w in self.workers])

    def submit(self, items: list[tuple[str, dict]], weights: dict[str, float]) -> RewardJob:
        slot = self._next % len(self.workers)
        self._next += 1
        actor = self.workers[slot]
        return RewardJob(actor.score.remote(items, weights), slot, actor, len(items))

    def _replace(self, job: RewardJob) -> None:
        if self.workers[job.slot] is job.actor:
            self._ray.kill(job.actor, no_restart=True)
            self.workers[job.slot] = self._cls.remote(self._modules)
            self.replaced += 1

    def results(self, jobs: list[RewardJob], weights: dict[str, float], stats: RewardStats) -> list[list]:
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
                for name, n in calls.items():
                    stats.calls[name] += n
                for key, n in failures.items():
                    stats.failures[key] += n
                out.append(scored)
                continue
            self._replace(job)
            stats.failures[(WORKER_FAILURE, reason)] += job.size
            out.append([(0.0, {name: 0.0 for name in weights}) for _ in range(job.size)])
        return out

    def shutdown(self) -> None:
        for worker in self.workers:
            self._ray.kill(worker, no_restart=True)
        self.workers = []
