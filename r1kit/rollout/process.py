"""The torch engine in a second process: sampling that overlaps training without sharing the GIL.

With ``rollout.async_steps: 1`` the trainer samples step t + 1 while it trains step t. A thread in
the trainer's process would fight the training for the GIL (the decode loop is Python at every
token), so :class:`ProcessEngine` runs r1kit's decode loop (:func:`r1kit.rollout.engine.sample`) in
a spawned worker process, behind the same :class:`r1kit.rollout.engines.RolloutEngine` interface:

* the worker holds a *mirror* of the sampling model whose weights live in shared memory (made once
  at start, passed to the worker by ``torch.multiprocessing``); :meth:`ProcessEngine.update_weights`
  copies the trainer's sampling copy into it, so a weight push is one in-memory copy, no pickling;
* :meth:`ProcessEngine.generate` sends the prompts through a queue and waits for the rollouts. The
  caller must not update the weights while a ``generate`` is in flight (``LocalSource`` waits for
  it first), or the worker would sample from half-copied weights;
* a worker that dies, fails or goes ``timeout`` seconds without answering ends the wait with
  :class:`r1kit.errors.EngineError` naming it (a hung worker is killed), never a silent
  hang; a worker whose trainer died (SIGKILL) notices within a second and exits. The worker
  ignores Ctrl-C (SIGINT to the process group): the trainer stops after its step and closes it.

Threads: the worker runs ``threads`` torch threads (fixed: the trainer's governor sees the worker
as another process's load and leaves it its core; r1kit.threads).
"""
from __future__ import annotations

import copy
import os
import queue
import signal
import time

import torch
import torch.multiprocessing as mp

from r1kit import threads as thread_policy
from r1kit.errors import EngineError
from r1kit.rollout.engine import Rollout, sample
from r1kit.rollout.engines import RolloutEngine

POLL_S = 0.5  # how often a wait checks that the worker is alive
START_TIMEOUT_S = 300.0  # a worker's start (imports torch and transformers) under a loaded machine


def _serve(model, tokenizer, requests, results, threads: int, batch_size: int, parent: int) -> None:
    """The worker's loop: sample each request's prompts with ``model`` (shared-memory weights),
    answer ``("ok", rollouts)`` or ``("error", text)``; stop on ``None`` or when the parent is gone."""
    # Ctrl-C reaches the whole process group: the trainer stops after its step (with a checkpoint)
    # and closes this worker; dying here first would turn that into a worker error
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    thread_policy.apply(threads)
    results.put(("ready", os.getpid()))
    while True:
        try:
            request = requests.get(timeout=1.0)
        except queue.Empty:
            if os.getppid() != parent:  # the trainer was killed: nobody will read our answers, and a
                os._exit(0)             # normal exit could wait forever to flush one into a full pipe
            continue
        if request is None:
            return
        prompts, params, prompt_seeds = request
        try:
            with torch.no_grad():
                out = sample(model, tokenizer, prompts, params, batch_size=batch_size, prompt_seeds=prompt_seeds)
            results.put(("ok", out))
        except Exception as exc:  # reported to the trainer, which names it
            results.put(("error", f"{type(exc).__name__}: {exc}"))


class ProcessEngine(RolloutEngine):
    """r1kit's torch decode loop over ``model`` in a spawned worker process (see the module docstring).

    model: the trainer's sampling copy, refreshed in place after each optimiser step (as for
    ``TorchEngine``); ``update_weights`` copies it into the worker's shared-memory mirror.
    threads: the worker's torch threads. timeout: seconds a request may go unanswered.
    """

    def __init__(self, model: torch.nn.Module, tokenizer, threads: int = 1, timeout: float = 1800.0,
                 batch_size: int = 0):
        self.model, self.timeout = model, timeout
        with torch.no_grad():
            self.mirror = copy.deepcopy(model).eval().share_memory()  # the worker's weights, shared
        ctx = mp.get_context("spawn")
        self.requests, self.results = ctx.Queue(), ctx.Queue()
        self.proc = ctx.Process(target=_serve, name="r1kit-rollout-worker", daemon=True,
                                args=(self.mirror, tokenizer, self.requests, self.results, threads, batch_size,
                                      os.getpid()))
        self.proc.start()
        self._wait("starting", max(timeout, START_TIMEOUT_S))

    def generate(self, prompts, params, prompt_seeds=None, progress=None, environment=None,
                 examples=None) -> list[Rollout]:
        if environment is not None:  # (the options refuse it before any model loads)
            raise EngineError("the rollout worker process does not run tool episodes")
        self.requests.put((list(prompts), params, prompt_seeds))
        rollouts = self._wait(f"sampling {len(prompts)} prompts")
        if progress is not None:
            progress(len(rollouts))
        return rollouts

    @torch.no_grad()
    def update_weights(self, policy: torch.nn.Module, version: int) -> None:
        target = self.mirror.state_dict()
        for name, value in self.model.state_dict().items():
            target[name].copy_(value)
        self.version = version

    def _wait(self, what: str, timeout: float | None = None):
        """The worker's answer to the last request; a named error if it dies, fails or hangs."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            try:
                kind, payload = self.results.get(timeout=POLL_S)
            except queue.Empty:
                if not self.proc.is_alive():
                    raise EngineError(f"the rollout worker process (pid {self.proc.pid}) died "
                                      f"(exit code {self.proc.exitcode}) while {what}") from None
                if time.monotonic() > deadline:
                    self._kill()
                    raise EngineError(f"the rollout worker process (pid {self.proc.pid}) gave no answer "
                                      f"for {timeout:g} s while {what} (rollout.async_timeout); "
                                      "it was killed") from None
                continue
            if kind == "error":
                raise EngineError(f"the rollout worker process failed while {what}: {payload}")
            return payload

    def _kill(self) -> None:
        if self.proc.is_alive():
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.join(5)

    def close(self) -> None:
        if self.proc.is_alive():
            try:
                self.requests.put(None)
            except (OSError, ValueError):
                pass
            self.proc.join(5)
        self._kill()
