"""The slow demo tests' one way to run a recipe for real and read its logs."""
import json
import subprocess
import sys
from pathlib import Path


def mean(values):
    """Mean of the values that are not None (None when there is none)."""
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def run_recipe(recipe: Path | None, out: Path, *overrides: str) -> tuple[list[dict], list[dict]]:
    """``r1kit zero --config recipe --out out overrides...`` (no ``--config`` for None: the defaults)
    in a subprocess (it must succeed); returns the run's metrics.jsonl and eval.jsonl rows."""
    config = ["--config", str(recipe)] if recipe else []
    subprocess.run([sys.executable, "-m", "r1kit.cli", "zero", *config, "--out", str(out), *overrides], check=True)
    read = lambda name: [json.loads(line) for line in (out / name).read_text().splitlines()]
    return read("metrics.jsonl"), read("eval.jsonl")
