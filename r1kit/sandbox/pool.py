"""Many sandboxed runs in parallel with a concurrency limit: :class:`SandboxPool`."""
from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Iterable, NamedTuple, Union

from r1kit.sandbox.runner import ExecResult, SandboxLimits, run_code


class Job(NamedTuple):
    """One run for :meth:`SandboxPool.map`: a program, its stdin, extra files and limits
    (None: the pool's)."""

    code: str
    stdin: str | bytes = ""
    files: dict[str, str | bytes] | None = None
    limits: SandboxLimits | None = None


JobLike = Union[Job, str, tuple]


def as_job(item: JobLike) -> Job:
    """A :class:`Job` from a Job, a program string, or a tuple ``(code, stdin[, files[, limits]])``."""
    if isinstance(item, Job):
        return item
    if isinstance(item, str):
        return Job(item)
    if isinstance(item, tuple) and 1 <= len(item) <= 4:
        return Job(*item)
    raise TypeError(f"expected a Job, a code string or a (code, stdin, ...) tuple, got {type(item).__name__}")


class SandboxPool:
    """Runs sandboxed programs in parallel, at most ``max_workers`` at a time.

    Each worker thread starts one sandbox (a subprocess) at a time, so ``max_workers`` bounds the
    number of programs running at once. Use as a context manager or call :meth:`close`.
    """

    def __init__(self, max_workers: int | None = None, limits: SandboxLimits | None = None):
        self.max_workers = max(1, max_workers or os.cpu_count() or 1)
        self.limits = limits or SandboxLimits()
        self._executor = ThreadPoolExecutor(self.max_workers, thread_name_prefix="r1kit-sandbox")

    def submit(self, code: str, stdin: str | bytes = "", files: dict[str, str | bytes] | None = None,
               limits: SandboxLimits | None = None) -> Future[ExecResult]:
        """Start one run; its future gives the :class:`~r1kit.sandbox.ExecResult`."""
        return self._executor.submit(run_code, code, stdin, limits or self.limits, files)

    def map(self, jobs: Iterable[JobLike]) -> list[ExecResult]:
        """Run every job (see :func:`as_job` for the accepted forms); results in the jobs' order."""
        futures = [self.submit(job.code, job.stdin, job.files, job.limits) for job in map(as_job, jobs)]
        return [f.result() for f in futures]

    def close(self) -> None:
        """Wait for the runs in progress and stop the worker threads."""
        self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> "SandboxPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
