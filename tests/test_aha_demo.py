"""Slow (own CI step): the "aha" run (docs/phenomena.md), reduced: ``r1kit zero`` with its defaults
(written out in ``recipes/zero_countdown.yaml``: R1-Zero on ``tiny-countdown``, Countdown in order
with the 3 -> 4 numbers ramp, seed 0; here one thread, real training) for 40 steps instead of 100, a 100-problem evaluation at steps 0 and 40. The base
checks a candidate against the target in ~4% of its answers, and a checked answer is right ~3x as
often as a guess; GRPO selects the check, so reflection (checks with their verdict), attempts and
length rise together (measured in full: reflection 0% -> 100%, attempts 0 -> 5.7, length 30 -> 259
tokens, pass@1 17.0% -> 66.4%; reduced, as here: reflection 0% -> 82%, attempts 0 -> 3.25, length
29.8 -> 160.4, training length of the last 10 steps 2.75x that of steps 11-20, accuracy of the last
20 steps' reflective / other answers 46.5% / 15.2%, pass@1 17.2% -> 53.7%; 170 s)."""
import pytest

from helpers.demo_runs import mean as _mean, run_recipe

STEPS = 40


@pytest.mark.slow
def test_checks_attempts_and_length_rise_together(tmp_path):
    run = tmp_path / "aha"
    metrics, (base, final) = run_recipe(None, run, "--no-report", f"steps={STEPS}", f"eval.every={STEPS}",
                                        "eval.limit=100", "checkpoint_every=0", "threads=1", "log_tensorboard=false")
    assert (base["step"], final["step"]) == (0, STEPS)
    assert base["reflection_rate"] <= 0.05 and final["reflection_rate"] >= 0.3, (base, final)
    assert final["attempts_mean"] >= base["attempts_mean"] + 1.0
    assert final["mean_length"] >= 2 * base["mean_length"] and final["length_correct"] > base["length_correct"]
    assert final["pass@1"] > base["pass@1"]
    early = _mean(m["response_length/mean"] for m in metrics[10:20])
    late = _mean(m["response_length/mean"] for m in metrics[-10:])
    assert late >= 1.15 * early, (early, late)  # still growing in the last quarter
    reflective = _mean(m.get("accuracy_reflective") for m in metrics[-20:])
    plain = _mean(m.get("accuracy_non_reflective") for m in metrics[-20:])
    assert reflective > plain, (reflective, plain)
