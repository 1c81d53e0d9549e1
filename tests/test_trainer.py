"""The GRPO trainer on the tiny model: variants run, no reference at beta 0, exact resume after SIGKILL."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.procs import start_and_wait_for
from r1kit.config import load_config
from r1kit.runs import is_timing_key
from r1kit.grpo.config import ZeroConfig
from r1kit.grpo.trainer import GRPOTrainer
from helpers import ARITHMETIC

SMALL = [*ARITHMETIC, "grpo.prompts_per_step=2", "grpo.group_size=4", "rollout.max_new_tokens=64",
         "eval.limit=8", "eval.k=2", "eval.max_new_tokens=64", "log_tensorboard=false"]


def _cfg(tmp_path, *extra):
    return load_config(ZeroConfig, None, SMALL + [f"out={tmp_path / 'run'}", *extra])


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_beta_zero_loads_no_reference_and_logs_every_step(tmp_path):
    trainer = GRPOTrainer(_cfg(tmp_path, "steps=2", "eval.every=2"), progress=False)
    assert trainer.reference is None
    trainer.train()
    rows = _rows(tmp_path / "run" / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2]
    for key in ("reward/mean", "reward/accuracy_math/mean", "reward/format/mean", "accuracy", "format_rate",
                "response_length/mean", "response_length/max", "truncated_frac", "entropy", "clip_frac",
                "grad_norm", "lr", "tokens_per_s", "step_seconds", "reflection_rate", "threads"):
        assert key in rows[-1], key
    for row in rows:  # the step's time split: every section timed, together within the step's wall time
        split = {k: v for k, v in row.items() if k.startswith("seconds/")}
        assert {"seconds/sampling", "seconds/rewards", "seconds/forward", "seconds/backward",
                "seconds/optimiser", "seconds/weight_sync"} <= set(split), split
        assert all(v >= 0 for v in split.values()) and 0 < sum(split.values()) <= row["step_seconds"] + 1e-3
        assert split["seconds/sampling"] <= row["rollout_seconds"] + 1e-3
    evals = _rows(tmp_path / "run" / "eval.jsonl")
    assert [e["step"] for e in evals] == [0, 2] and "cons@2" in evals[0]
    ckpt = tmp_path / "run" / "checkpoint-2"
    from transformers import AutoModelForCausalLM
    assert AutoModelForCausalLM.from_pretrained(ckpt).num_parameters() > 0


@pytest.mark.parametrize("extra", [
    ["grpo.beta=0.04", "grpo.mu=2", "grpo.loss_agg=token-mean"],
    ["grpo.dynamic_sampling=true", "grpo.advantage_scale=none", "grpo.loss_agg=seq-mean-token-sum-norm",
     "grpo.eps_high=0.28", "grpo.overlong=soft", "grpo.overlong_buffer=8"],
    ["grpo.overlong=mask", "rollout.max_new_tokens=8", "grpo.micro_batch_tokens=40"],
    ["grpo.policy_loss=gspo", "grpo.mu=2", "optim.warmup_steps=0", "grpo.eps_low=3e-4", "grpo.eps_high=4e-4"],
])
def test_variants_run(tmp_path, extra):
    trainer = GRPOTrainer(_cfg(tmp_path, "steps=1", "eval.every=0", *extra), progress=False)
    assert (trainer.reference is not None) == ("grpo.beta=0.04" in extra)
    trainer.train()
    row = _rows(tmp_path / "run" / "metrics.jsonl")[-1]
    assert row["step"] == 1 and row["grad_norm"] >= 0
    if "grpo.beta=0.04" in extra:  # reference and old-policy passes: timed as log-probs
        assert row["kl"] >= 0 and row["seconds/logprobs"] > 0
    if "rollout.max_new_tokens=8" in extra:
        assert row["truncated_frac"] > 0.5
    if "grpo.policy_loss=gspo" in extra:  # the second pass moves the sequence ratios past a 4e-4 range
        assert 0 < row["clip_frac"] <= 1


def _strip(rows):
    return [{k: v for k, v in r.items() if not is_timing_key(k) and k != "seconds"} for r in rows]


TOOLS = ["environment=test_think", "environment_modules=[helpers.think_env]", "tools.max_turns=2"]


@pytest.mark.parametrize("episodes", [[], TOOLS], ids=["single-turn", "tool-episodes"])
def test_sigkill_and_resume_gives_identical_metrics(tmp_path, episodes):
    args = SMALL + ["steps=6", "checkpoint_every=2", "eval.every=3", *episodes]
    cmd = [sys.executable, "-m", "r1kit.cli", "zero", "--no-report"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    subprocess.run(cmd + args + [f"out={tmp_path / 'a'}"], check=True, capture_output=True, env=env)

    run_b = tmp_path / "b"
    proc = start_and_wait_for(cmd + args + [f"out={run_b}"], run_b / "checkpoint-4", env=env)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run_b / "summary.json").exists(), "the run finished before it could be killed"
    subprocess.run(cmd + ["--resume"] + args + [f"out={run_b}"], check=True, capture_output=True, env=env)

    for name in ("metrics.jsonl", "eval.jsonl"):
        a, b = _strip(_rows(tmp_path / "a" / name)), _strip(_rows(run_b / name))
        assert [r["step"] for r in a] == [r["step"] for r in b]
        assert a == b, name
    if episodes:  # the runs were episodes with calls, and their tool probes resumed too
        assert sum(r["tool_call_rate"] for r in _rows(run_b / "metrics.jsonl")) > 0


def test_dynamic_sampling_drops_all_equal_groups(tmp_path):
    trainer = GRPOTrainer(_cfg(tmp_path, "steps=1", "eval.every=0", "grpo.dynamic_sampling=true",
                               "grpo.prompts_per_step=4", "grpo.max_refill_rounds=4"), progress=False)
    batch = trainer.source.collect(trainer.step)
    kept, sampled, rounds = batch.train, batch.sampled, batch.refill_rounds
    assert len(sampled) == 4 * (rounds + 1)
    assert len(kept) <= 4
    if rounds < 4:  # the batch was filled: every kept group carries a learning signal
        assert len(kept) == 4 and not any(g.all_equal for g in kept)
    assert sum(not g.all_equal for g in sampled) >= sum(not g.all_equal for g in kept)
    plain = GRPOTrainer(_cfg(tmp_path, "steps=1", "eval.every=0", "grpo.prompts_per_step=4"), progress=False)
    batch = plain.source.collect(plain.step)
    kept, sampled, rounds = batch.train, batch.sampled, batch.refill_rounds
    assert rounds == 0 and kept == sampled and len(kept) == 4


def test_zero_on_the_code_task_scores_programs_in_the_sandbox(tmp_path):
    cfg = _cfg(tmp_path, "steps=2", "eval.every=2", "eval.data=synthetic_code", "data=synthetic_code",
               "rewards={code: 1.0, format: 0.5}", "accuracy_reward=code")
    GRPOTrainer(cfg, progress=False).train()
    row = _rows(tmp_path / "run" / "metrics.jsonl")[-1]
    assert row["accuracy"] == row["reward/code/mean"] and 0.0 <= row["accuracy"] <= 1.0
    evals = _rows(tmp_path / "run" / "eval.jsonl")
    assert [e["step"] for e in evals] == [0, 2] and "pass@1" in evals[-1]


def test_unknown_reward_is_a_config_error(tmp_path):
    from r1kit.config import ConfigError
    with pytest.raises(ConfigError, match="rewards.nope"):
        GRPOTrainer(_cfg(tmp_path, "rewards={nope: 1.0}"), progress=False)


def test_a_new_run_never_appends_to_an_earlier_one(tmp_path):
    from r1kit.config import ConfigError
    GRPOTrainer(_cfg(tmp_path, "steps=1", "eval.every=0"), progress=False).train()
    with pytest.raises(ConfigError, match="already holds a run"):
        GRPOTrainer(_cfg(tmp_path, "steps=1", "eval.every=0"), progress=False)
    GRPOTrainer(_cfg(tmp_path, "steps=1", "eval.every=0"), progress=False, overwrite=True).train()
    assert [r["step"] for r in _rows(tmp_path / "run" / "metrics.jsonl")] == [1]
