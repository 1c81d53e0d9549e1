"""Slow (own CI step): the calculator demo (docs/tools.md), reduced: ``recipes/zero_tools.yaml`` (R1-Zero on
``tiny-calc`` with the ``calculator`` environment, seed 0, real training) for 30 steps instead of 80, a
100-problem evaluation at steps 0 and 30. The base calls the calculator in ~5% of its answers and a call
is right ~44% of the time, a guess almost never; GRPO selects the call, so the share of responses with a
call and the held-out accuracy rise (measured in full: 5% -> 98% of training answers, pass@1 1.3% ->
44.1%)."""
from pathlib import Path

import pytest

from helpers.demo_runs import mean as _mean, run_recipe

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "zero_tools.yaml"
STEPS = 30


@pytest.mark.slow
def test_calculator_calls_and_accuracy_rise(tmp_path):
    run = tmp_path / "tools"
    metrics, evals = run_recipe(RECIPE, run, f"steps={STEPS}", f"eval.every={STEPS}", "eval.limit=100",
                                "checkpoint_every=0")
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
