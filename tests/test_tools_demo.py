"""Slow (own CI step): the calculator demo (docs/tools.md), reduced: ``recipes/zero_tools.yaml`` (R1-Zero on
``tiny-calc`` with the ``calculator`` environment, seed 0, real training) for 30 steps instead of 80, a
100-problem evaluation at steps 0 and 30. The base calls the calculator in ~5% of its answers and a call
is right ~44% of the time, a guess almost never; GRPO selects the call, so the share of responses with a
call and the held-out accuracy rise (measured in full: 5% -> 98% of training answers, pass@1 1.3% ->
44.1%)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "zero_tools.yaml"
STEPS = 30


def _mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


@pytest.mark.slow
def test_calculator_calls_and_accuracy_rise(tmp_path):
    run = tmp_path / "tools"
    subprocess.run([sys.executable, "-m", "r1kit.cli", "zero", "--config", str(RECIPE), "--out", str(run),
                    f"steps={STEPS}", f"eval.every={STEPS}", "eval.limit=100", "checkpoint_every=0"], check=True)
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [json.loads(line) for line in (run / "eval.jsonl").read_text().splitlines()]
    first = _mean(m["tool_call_rate"] for m in metrics[:5])
    last = _mean(m["tool_call_rate"] for m in metrics[-5:])
    assert first <= 0.1 and last >= 0.6, (first, last)  # rare at the start, most answers call at the end
    base, final = evals[0], evals[-1]
    assert base["step"] == 0 and final["step"] == STEPS
    assert base["tool_call_rate"] <= 0.05 and final["tool_call_rate"] >= 0.6
    assert final["pass@1"] >= base["pass@1"] + 0.2, (base["pass@1"], final["pass@1"])
    with_tool = _mean(m["accuracy_with_tool"] for m in metrics[-10:])
    without = _mean(m["accuracy_without_tool"] for m in metrics)  # the last steps may have no guess at all
    assert with_tool > without + 0.2, (with_tool, without)
