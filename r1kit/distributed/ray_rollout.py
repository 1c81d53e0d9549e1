"""Rollout actors on Ray: N processes, each with a policy copy and r1kit's rollout engine.

Weights travel through the Ray object store: after every optimiser step the trainer puts the
state dict once (``ray.put``) and every actor loads it from that reference, tagged with a
*version*, the trainer step whose optimiser produced those weights (0: the initial weights).
Actors run their calls in submission order, so a sampling call submitted after a push sees the
pushed weights; each call also names the oldest version it accepts and fails if the actor holds
an older one (a safety net: with ``max_weight_lag`` 0 that is the current step's). The version an
actor actually sampled with is returned with every sample.

A step's prompts are cut into tasks (one per actor, contiguous); each task has its own sampling
seed, so its samples do not depend on which actor runs it. With an environment, each actor builds
its own (after importing ``environment_modules``) and a task carries its problems, so the actors
sample multi-turn episodes exactly as the trainer's own engine does. An actor that dies (its process killed,
a node lost) is replaced by a fresh one, which gets the current weights, and its tasks are
re-queued: every (prompt id, sample index) comes back exactly once. So is an actor that finishes
nothing for ``distributed.rollout_timeout`` seconds (a stuck process or node): it is killed first.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace

import torch

from r1kit.config import import_modules
from r1kit.environments import ToolConfig, make_environment
from r1kit.models import load_model, load_tokenizer
from r1kit.rollout import Rollout, SamplingParams, sample
from r1kit.threads import apply as apply_threads


class StaleWeightsError(RuntimeError):
    """An actor was asked to sample with weights newer than it holds."""


@dataclass
class RolloutTask:
    """Prompts sampled together by one actor call."""

    task_id: int
    prompt_ids: list[int]   # global ids (positions in the trainer's prompt stream)
    prompts: list[str]
    seed: int
    min_version: int
    examples: list[dict] | None = None  # the problems, for an environment's episodes


@dataclass
class TaskResult:
    """What an actor sampled for a task: ``n`` rollouts per prompt, grouped by prompt."""

    task: RolloutTask
    rollouts: list[Rollout]
    weight_version: int
    actor: int


class RolloutWorker:
    """The actor's body (a plain class; ``RayRollout`` wraps it with ``ray.remote``)."""

    def __init__(self, model: str, dtype: str, threads: int, device: str, environment: str = "none",
                 environment_modules: tuple[str, ...] = (), tools: ToolConfig | None = None):
        """``model``: a name resolved on the actor's node (``tiny``, a hub id, or a folder that
        exists there); the trainer's weights replace the loaded ones before any sampling.
        ``environment``: the episodes' environment (``none``: single-turn), built here after
        importing ``environment_modules``, with ``tools``."""
        apply_threads(threads)
        import_modules(list(environment_modules), "environment_modules")
        self.environment = make_environment(environment, tools)
        self.model = load_model(model, dtype, device)
        self.tokenizer = load_tokenizer(model)
        self.version = -1

    def pid(self) -> int:
        return os.getpid()

    def set_weights(self, version: int, state: dict) -> int:
        """Load a pushed state dict (Ray resolves the object reference to it) as ``version``."""
        self.model.load_state_dict(state)
        self.version = version
        return version

    def sample(self, task: RolloutTask, params: SamplingParams) -> tuple[list[Rollout], int]:
        if self.version < task.min_version:
            raise StaleWeightsError(f"actor holds weights v{self.version}, task needs >= v{task.min_version}")
        rollouts = sample(self.model, self.tokenizer, task.prompts, replace(params, seed=task.seed),
                          environment=self.environment, examples=task.examples if self.environment else None)
        return rollouts, self.version


def make_tasks(prompt_ids: list[int], prompts: list[str], n_tasks: int, seed: int, min_version: int,
               examples: list[dict] | None = None) -> list[RolloutTask]:
    """Cut the prompts (and their ``examples``, for episodes) into ``n_tasks`` contiguous tasks; task
    k samples with seed ``seed + k``."""
    n_tasks = max(1, min(n_tasks, len(prompts)))
    base, extra = divmod(len(prompts), n_tasks)
    tasks, start = [], 0
    for k in range(n_tasks):
        end = start + base + (1 if k < extra else 0)
        tasks.append(RolloutTask(k, prompt_ids[start:end], prompts[start:end], seed + k, min_version,
                                 None if examples is None else examples[start:end]))
        start = end
    return tasks


@dataclass
class Pending:
    """Submitted tasks, waiting for ``RayRollout.collect``."""

    calls: dict             # object reference -> (slot, task, actor handle)
    params: SamplingParams


class RayRollout:
    """N rollout actors, weight pushes and task dispatch with re-queueing."""

    START_TIMEOUT = 600.0  # seconds a replacement actor may take to start and load the weights

    def __init__(self, model: str, dtype: str, n_actors: int, actor_cpus: float = 1.0,
                 threads: int = 1, device: str = "cpu", max_restarts: int = 8, timeout: float | None = None,
                 environment: str = "none", environment_modules: tuple[str, ...] = (), tools: ToolConfig | None = None):
        import ray

        self._ray = ray
        opts = {"num_cpus": actor_cpus, "max_restarts": 0, "max_task_retries": 0}
        if device == "cuda":
            opts["num_gpus"] = 1
        self._cls = ray.remote(**opts)(RolloutWorker)
        self._args = (model, dtype, threads, device, environment, tuple(environment_modules), tools)
        self.actors = [self._cls.remote(*self._args) for _ in range(n_actors)]
        self.max_restarts, self.restarts, self.requeued = max_restarts, 0, 0
        self.timeout = timeout  # seconds without any task finishing before the busy actors count as hung
        self.version, self._weights = -1, None
        self.in_flight = 0

    def pids(self) -> list[int]:
        return self._ray.get([a.pid.remote() for a in self.actors])

    def push_weights(self, model: torch.nn.Module, version: int) -> None:
        """Put the state dict in the object store once; every actor loads it as ``version``."""
        state = {k: v.detach().to("cpu") for k, v in model.state_dict().items()}
        self._weights, self.version = self._ray.put(state), version
        for actor in self.actors:
            actor.set_weights.remote(version, self._weights)

    def submit(self, tasks: list[RolloutTask], params: SamplingParams) -> Pending:
        """Hand the tasks to the actors round-robin (they start at once; ``collect`` waits)."""
        calls = {}
        for i, task in enumerate(tasks):
            slot = i % len(self.actors)
            calls[self.actors[slot].sample.remote(task, params)] = (slot, task, self.actors[slot])
        self.in_flight += len(calls)
        return Pending(calls, params)

    def _replace(self, slot: int, dead) -> None:
        """A fresh actor in ``slot`` (once per death), loaded with the current weights."""
        if self.actors[slot] is not dead:
            return
        if self.restarts >= self.max_restarts:
            raise RuntimeError(f"rollout actors died {self.restarts + 1} times "
                               f"(distributed.max_actor_restarts={self.max_restarts})")
        self.restarts += 1
        self._ray.kill(dead, no_restart=True)
        self.actors[slot] = self._cls.remote(*self._args)
        # wait until it has started and holds the current weights, so that its start-up does not
        # count against the hang timeout
        ready = self.actors[slot].pid.remote() if self._weights is None else \
            self.actors[slot].set_weights.remote(self.version, self._weights)
        self._ray.get(ready, timeout=self.START_TIMEOUT)

    def collect(self, pending: Pending, on_result=None) -> list[TaskResult]:
        """Wait for every task; re-queue the tasks of actors that died, or that finished nothing
        for ``timeout`` seconds (hung: they are killed and replaced). ``on_result(result)`` is
        called as each task finishes. Results in task order."""
        ray, calls, done = self._ray, dict(pending.calls), {}

        def requeue(ref):
            slot, task, actor = calls.pop(ref)
            self._replace(slot, actor)
            self.requeued += 1
            calls[self.actors[slot].sample.remote(task, pending.params)] = (slot, task, self.actors[slot])

        try:
            while calls:
                ready, _ = ray.wait(list(calls), num_returns=1, timeout=self.timeout)
                if not ready:
                    for ref in list(calls):
                        requeue(ref)
                    continue
                try:
                    rollouts, version = ray.get(ready[0])
                except ray.exceptions.RayActorError:
                    requeue(ready[0])
                    continue
                slot, task, _ = calls.pop(ready[0])
                done[task.task_id] = TaskResult(task, rollouts, version, slot)
                if on_result is not None:
                    on_result(done[task.task_id])
        finally:
            self.in_flight -= len(pending.calls)
        return [done[k] for k in sorted(done)]

    def shutdown(self) -> None:
        for actor in self.actors:
            self._ray.kill(actor, no_restart=True)
        self.actors = []
