"""Slow (own CI step): the whole R1 pipeline on the tiny-mixed base, reduced to a few minutes,
killed in the middle of a stage and resumed.

1. ``r1kit pipeline recipes/r1_tiny.yaml`` with reduced step counts starts in a subprocess and is
   killed (SIGKILL) in ``reasoning_rl`` after its step-10 checkpoint and a few more logged steps.
2. The same command again: ``cold_start`` is skipped (its marker untouched), ``reasoning_rl``
   resumes from its checkpoint (every step logged exactly once), the rest runs to the end.
3. Once more: every stage is skipped, nothing starts.
4. The measured claims of the reduced run, against the measured base: the cold start makes the
   chains of thought consistent (language consistency up by >= 0.1 over the base's ~0.80), so is
   the final model (up by >= 0.1: measured 0.94 with one SFT epoch), and the harmlessness reward
   model separates its held-out pairs. R1-Zero (40 steps straight on the base, no language reward)
   mixes languages while it gains accuracy; the language-rewarded reasoning RL, from the English
   cold start, does not (R1_ZERO_*: measured margins below).
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REDUCED = [
    "cold_start.size=300", "cold_start.sft.epochs=1",
    "reasoning_rl.grpo.steps=20", "reasoning_rl.grpo.checkpoint_every=5", "reasoning_rl.grpo.train_size=400",
    "rejection_sampling.sample.train_size=96", "rejection_sampling.non_reasoning_size=96", "sft.sft.epochs=3",
    "reward_models.train.steps=40", "reward_models.train.pairs=400",
    "all_scenario_rl.prompts=400", "all_scenario_rl.grpo.steps=10", "all_scenario_rl.grpo.checkpoint_every=5",
    "distill.sample.train_size=64", "distill.sft.epochs=1",
    "r1_zero.grpo.steps=40", "r1_zero.grpo.train_size=400", "r1_zero.grpo.checkpoint_every=20",
    "evaluate.reasoning.limit=100", "evaluate.general_limit=30",
]

# Measured in this reduced run (seed 0): R1-Zero 47.0% -> 71.8% pass@1 (+24.8 points) at consistency 0.263,
# reasoning RL and final R1 at 1.00 (the full-size run: +37.7 points at 0.315; docs/tiny-base.md).
R1_ZERO_MIN_GAIN = 0.10  # pass@1 gain over the base after 40 R1-Zero steps
R1_ZERO_MAX_CONSISTENCY = 0.75  # language consistency of R1-Zero after 40 steps


def command(out: Path) -> list[str]:
    return [sys.executable, "-m", "r1kit.cli", "pipeline", str(ROOT / "recipes" / "r1_tiny.yaml"), *REDUCED,
            "--out", str(out)]


def events(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]


def logged_steps(path: Path) -> list[int]:
    return [json.loads(line)["step"] for line in path.read_text().splitlines()] if path.exists() else []


def run_until_killed(out: Path, timeout: float = 600) -> None:
    """Start the pipeline and SIGKILL it once reasoning_rl has checkpoint-10 and logged step 12."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(command(out), cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    grpo, start = out / "reasoning_rl" / "grpo", time.time()
    try:
        while time.time() - start < timeout:
            if (grpo / "checkpoint-10").exists() and max(logged_steps(grpo / "metrics.jsonl"), default=0) >= 12:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return
            assert proc.poll() is None, "the pipeline ended before it could be killed"
            time.sleep(0.2)
        raise AssertionError("reasoning_rl never reached step 12")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.mark.slow
def test_tiny_pipeline_killed_resumed_and_measured(tmp_path):
    out = tmp_path / "r1"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    run_until_killed(out)
    assert (out / "cold_start" / "COMPLETE.json").exists()
    assert not (out / "reasoning_rl" / "COMPLETE.json").exists()
    cold_marker = (out / "cold_start" / "COMPLETE.json").read_text()
    n_events = len(events(out))

    subprocess.run(command(out), cwd=ROOT, env=env, check=True, capture_output=True)
    second = events(out)[n_events:]
    planned = {e["stage"]: e["action"] for e in second if e["event"] == "planned"}
    assert planned["cold_start"] == "skip" and planned["reasoning_rl"] == "resume"
    assert not any(e["event"] == "started" and e["stage"] == "cold_start" for e in second)
    assert (out / "cold_start" / "COMPLETE.json").read_text() == cold_marker
    assert logged_steps(out / "reasoning_rl" / "grpo" / "metrics.jsonl") == list(range(1, 21)), \
        "every step of the interrupted stage is logged exactly once"
    assert json.loads((out / "reasoning_rl" / "COMPLETE.json").read_text())["resumed"] is True
    stages = ["cold_start", "reasoning_rl", "rejection_sampling", "sft", "reward_models", "all_scenario_rl",
              "distill", "r1_zero", "evaluate"]
    assert all((out / s / "COMPLETE.json").exists() for s in stages)

    n_events = len(events(out))
    subprocess.run(command(out), cwd=ROOT, env=env, check=True, capture_output=True)
    third = events(out)[n_events:]
    assert {e["action"] for e in third if e["event"] == "planned"} == {"skip"}
    assert not any(e["event"] == "started" for e in third)

    table = {row["key"]: row for row in json.loads((out / "evaluate" / "table.json").read_text())}
    assert set(table) == {"base", "r1_zero", "cold_start", "reasoning_rl", "sft", "all_scenario_rl",
                          "distill-tiny-small"}
    lc = {key: row["reasoning"]["language_consistency"] for key, row in table.items()}
    acc = {key: row["reasoning"]["pass@1"] for key, row in table.items()}
    assert lc["cold_start"] >= lc["base"] + 0.1 or lc["cold_start"] >= 0.98, lc
    # the final model, fine-tuned from the mixing base on filtered (English-only) data, mixes less
    assert lc["all_scenario_rl"] >= lc["base"] + 0.1 or lc["all_scenario_rl"] >= 0.98, lc
    # R1-Zero selects the base's accurate chains, which mix: it gains accuracy and mixes more than
    # the base; the language-rewarded RL from the English cold start stays consistent
    assert acc["r1_zero"] >= acc["base"] + R1_ZERO_MIN_GAIN, acc
    assert lc["r1_zero"] <= R1_ZERO_MAX_CONSISTENCY, lc
    assert lc["reasoning_rl"] >= 0.98 and lc["all_scenario_rl"] >= 0.98, lc
    rms = json.loads((out / "reward_models" / "COMPLETE.json").read_text())["outputs"]
    assert rms["harmlessness"]["test_pair_accuracy"] >= 0.9, rms
    assert (out / "evaluate" / "table.md").read_text().count("\n") == 2 + len(table)
