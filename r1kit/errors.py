"""How a run ends other than by finishing, as exceptions the command line turns into one line and
an exit status (``r1kit.cli.run_guarded``); free of torch, so the command line reports them
without loading it."""
from __future__ import annotations

from pathlib import Path


class RunFinished(Exception):
    """``--resume`` of a run that already trained all its steps: nothing to do, nothing changed."""


class Interrupted(Exception):
    """A run stopped by Ctrl-C at a safe point (after ``step`` of ``total``, checkpoint saved)."""

    def __init__(self, step: int, total: int, run_dir: Path):
        super().__init__(f"stopped at step {step} of {total}; checkpoint-{step} saved in {run_dir}")
        self.step, self.total, self.run_dir = step, total, Path(run_dir)


class EngineError(RuntimeError):
    """A rollout engine's server, endpoint or worker process failed for good (it did not start,
    died, stopped answering or refused a request after the retries): one line naming it and the
    cause."""
