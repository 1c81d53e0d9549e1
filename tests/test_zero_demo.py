"""Slow (own CI step): the arithmetic R1-Zero run end to end, checked against the measured base.

Runs the README's arithmetic job (`r1kit zero --config recipes/zero_tiny.yaml`: the tiny base on
r1kit's arithmetic task, seed 0; `r1kit zero`'s default before the Countdown run, which
tests/test_aha_demo.py checks) and checks the
acceptance: pass@1 on the held-out synthetic set rises by >= 25 points over the base model, the
format reward ends >= 0.95, cons@k >= pass@1 at every evaluation, responses get longer, the
phenomenon probes (docs/phenomena.md) are logged in metrics.jsonl and eval.jsonl, and the report
renders with its phenomena table and plots.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "zero_tiny.yaml"


@pytest.mark.slow
def test_default_zero_run_learns(tmp_path):
    run = tmp_path / "zero"
    subprocess.run([sys.executable, "-m", "r1kit.cli", "zero", "--config", str(RECIPE), "--out", str(run)], check=True)
    evals = [json.loads(line) for line in (run / "eval.jsonl").read_text().splitlines()]
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    base, final = evals[0], evals[-1]
    k = base["k"]
    assert base["step"] == 0 and final["step"] == metrics[-1]["step"]
    assert final["pass@1"] - base["pass@1"] >= 0.25, (base["pass@1"], final["pass@1"])
    assert final["format_rate"] >= 0.95
    assert sum(m["format_rate"] for m in metrics[-10:]) / 10 >= 0.95
    assert all(e[f"cons@{k}"] >= e["pass@1"] for e in evals), [(e[f"cons@{k}"], e["pass@1"]) for e in evals]
    assert final["mean_length"] > base["mean_length"]
    for key in ("accuracy_non_reflective", "length_incorrect", "language_mixing_rate", "reflection_rate"):
        assert key in final and key in metrics[-1], key
    page = (run / "report" / "index.html").read_text()
    assert 'id="phenomena"' in page
    for name in ("accuracy.png", "length.png", "reflection_accuracy.png", "language.png"):
        assert (run / "report" / name).exists(), name
