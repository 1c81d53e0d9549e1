"""Reading a GRPO run directory for the report.

A run directory holds ``metrics.jsonl`` (one row per training step),
``eval.jsonl`` (one row per periodic evaluation), ``config.json`` and
optionally ``summary.json``. Runs can be killed mid-write, so the readers
here are forgiving: unparsable lines are skipped with a warning, and a
missing or broken file is recorded as a note instead of raising.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.jsonl"
EVAL_FILE = "eval.jsonl"
CONFIG_FILE = "config.json"
SUMMARY_FILE = "summary.json"


class ReportWarning(UserWarning):
    """Warned when an input file of the report is partly unreadable."""


def is_number(value: Any) -> bool:
    """True for ints and floats (NaN included), False for bools and the rest."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def read_jsonl(path: Path) -> list[dict]:
    """Return the JSON objects of a JSON-lines file, one per line.

    Blank lines are ignored. Lines that are not valid JSON objects (for
    instance a last line cut short when the run was killed) are skipped
    with a :class:`ReportWarning` naming the file and line number.
    """
    rows: list[dict] = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for lineno, line in enumerate(handle, start=1):
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                warnings.warn(f"{path}:{lineno}: skipping unparsable line ({exc.msg})",
                              ReportWarning, stacklevel=2)
                continue
            if not isinstance(row, dict):
                warnings.warn(f"{path}:{lineno}: skipping line that is not a JSON object",
                              ReportWarning, stacklevel=2)
                continue
            rows.append(row)
    return rows


def read_json(path: Path) -> tuple[Any, str | None]:
    """Return ``(value, None)`` for a readable JSON file, else ``(None, reason)``."""
    if not path.is_file():
        return None, f"{path.name} not found"
    try:
        return json.loads(path.read_text(encoding="utf-8", errors="replace")), None
    except json.JSONDecodeError as exc:
        warnings.warn(f"{path}: unparsable JSON ({exc.msg})", ReportWarning, stacklevel=2)
        return None, f"{path.name} is not valid JSON ({exc.msg} at line {exc.lineno})"


def series(rows: list[dict], key: str) -> tuple[list[float], list[float]]:
    """Return ``(steps, values)`` of ``key`` over the rows that have both.

    Points are sorted by step. When a step occurs more than once (a run
    resumed from a checkpoint logs some steps again) the last row wins.
    """
    by_step: dict[float, float] = {}
    for row in rows:
        step, value = row.get("step"), row.get(key)
        if is_number(step) and is_number(value) and math.isfinite(step):
            by_step[step] = float(value)
    steps = sorted(by_step)
    return steps, [by_step[s] for s in steps]


def has_series(rows: list[dict], key: str) -> bool:
    """True when at least one row has a numeric ``step`` and ``key``."""
    return bool(series(rows, key)[0])


def keys_matching(rows: list[dict], prefix: str = "", suffix: str = "") -> list[str]:
    """Keys with the given prefix and suffix, in order of first appearance."""
    found: dict[str, None] = {}
    for row in rows:
        for key in row:
            if key.startswith(prefix) and key.endswith(suffix) and len(key) > len(prefix) + len(suffix):
                found.setdefault(key, None)
    return list(found)


def cons_keys(rows: list[dict]) -> list[str]:
    """The ``cons@K`` keys of the eval rows (usually exactly one)."""
    return keys_matching(rows, prefix="cons@")


def reward_component_keys(rows: list[dict]) -> list[str]:
    """The per-function reward keys ``reward/<name>/mean`` of the metrics rows."""
    return [k for k in keys_matching(rows, prefix="reward/", suffix="/mean") if k != "reward/mean"]


@dataclass
class RunData:
    """Everything the report needs from one run directory."""

    run_dir: Path
    metrics: list[dict] = field(default_factory=list)
    evals: list[dict] = field(default_factory=list)
    config: Any = None
    summary: dict | None = None
    notes: list[str] = field(default_factory=list)
    """Human-readable remarks about missing or unreadable inputs."""

    @classmethod
    def load(cls, run_dir: str | Path) -> "RunData":
        """Read a run directory.

        Raises :class:`FileNotFoundError` when ``run_dir`` is not a directory
        or holds neither ``metrics.jsonl`` nor ``eval.jsonl``.
        """
        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise FileNotFoundError(f"run directory not found: {run_dir}")
        metrics_path, eval_path = run_dir / METRICS_FILE, run_dir / EVAL_FILE
        if not metrics_path.is_file() and not eval_path.is_file():
            raise FileNotFoundError(
                f"no {METRICS_FILE} or {EVAL_FILE} in run directory {run_dir}: nothing to report")

        run = cls(run_dir=run_dir)
        for path, attr in ((metrics_path, "metrics"), (eval_path, "evals")):
            if path.is_file():
                rows = read_jsonl(path)
                setattr(run, attr, rows)
                if not rows:
                    run.notes.append(f"{path.name} has no readable rows.")
            else:
                run.notes.append(f"{path.name} is missing; the plots that need it are left out.")

        run.config, problem = read_json(run_dir / CONFIG_FILE)
        if problem:
            run.notes.append(problem + ".")
        summary, problem = read_json(run_dir / SUMMARY_FILE)
        if isinstance(summary, dict):
            run.summary = summary
        elif summary is not None:
            run.notes.append(f"{SUMMARY_FILE} is not a JSON object; showing the last rows instead.")
        elif problem and "not found" not in problem:
            run.notes.append(problem + "; showing the last rows instead.")
        return run
