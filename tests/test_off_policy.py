"""Off-policy training on the tiny model: the trainer/sampler mismatch in metrics.jsonl, the rollout
correction, one-step-off-policy rollouts (``rollout.async_steps``) in a worker process, its named
errors, and an exact resume of an async run after SIGKILL."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from helpers.procs import child_pids, start_and_wait_for, wait_until_gone
from r1kit.config import ConfigError, load_config
from r1kit.errors import EngineError
from r1kit.grpo.config import ZeroConfig
from r1kit.grpo.trainer import GRPOTrainer
from r1kit.runs import is_timing_key
from helpers import ARITHMETIC

SMALL = [*ARITHMETIC, "grpo.prompts_per_step=2", "grpo.group_size=4", "rollout.max_new_tokens=64", "eval.limit=8", "eval.k=2",
         "eval.max_new_tokens=64", "log_tensorboard=false", "threads=1"]
MISMATCH = ["rollout/logprob_diff_mean", "rollout/logprob_diff_max", "rollout/is_ratio_mean", "rollout/is_ratio_max",
            "rollout/is_capped_frac"]


def _cfg(tmp_path, name, *extra):
    return load_config(ZeroConfig, None, SMALL + [f"out={tmp_path / name}", "eval.every=0", *extra])


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _strip(rows):
    return [{k: v for k, v in r.items() if not is_timing_key(k) and k != "seconds"} for r in rows]


def test_synchronous_run_logs_a_near_zero_mismatch(tmp_path):
    """Synchronous: the sampler (KV-cached decode, one token at a time) and the trainer (one full
    forward) hold the same float32 weights, so their log-probs of the sampled tokens differ only by
    kernel rounding."""
    GRPOTrainer(_cfg(tmp_path, "run", "steps=2"), progress=False).train()
    for row in _rows(tmp_path / "run" / "metrics.jsonl"):
        assert set(MISMATCH) <= set(row)
        assert 0 <= row["rollout/logprob_diff_mean"] < 1e-5 and row["rollout/logprob_diff_max"] < 1e-4
        assert row["rollout/is_ratio_mean"] == pytest.approx(1.0, abs=1e-5) and row["rollout/is_capped_frac"] == 0
        assert row["weight_lag/max"] == 0


def test_async_run_trains_on_the_previous_weights_in_a_worker_process(tmp_path):
    GRPOTrainer(_cfg(tmp_path, "sync", "steps=3"), progress=False).train()
    trainer = GRPOTrainer(_cfg(tmp_path, "async", "steps=3", "rollout.async_steps=1"), progress=False)
    worker = trainer.source.engine.proc
    assert worker.is_alive() and worker.pid != os.getpid()
    trainer.train()
    assert not worker.is_alive()  # closed with the run
    sync, rows = _rows(tmp_path / "sync" / "metrics.jsonl"), _rows(tmp_path / "async" / "metrics.jsonl")
    # step 0 is sampled before anything trained: the worker draws exactly what the trainer's process drew
    assert _strip(rows)[0] == _strip(sync)[0]
    for row in rows[1:]:  # logged step s trained at 0-based step s - 1 on samples of weights s - 2
        assert row["weight_version/min"] == row["weight_version/max"] == row["step"] - 2
        assert row["weight_lag/max"] == 1
        assert row["rollout/logprob_diff_mean"] > 1e-4  # one optimiser step apart: a real gap
        assert row["grad_norm"] > 0
    assert rows[-1]["reward/mean"] != sync[-1]["reward/mean"] or rows[-1]["entropy"] != sync[-1]["entropy"]


def test_rollout_correction_trains_and_caps(tmp_path):
    GRPOTrainer(_cfg(tmp_path, "tis", "steps=3", "rollout.async_steps=1", "grpo.rollout_correction=tis",
                     "grpo.rollout_correction_cap=1.01"), progress=False).train()
    rows = _rows(tmp_path / "tis" / "metrics.jsonl")
    assert all(r["grad_norm"] > 0 for r in rows)
    # stale samples, a cap just above 1: some tokens are capped
    assert rows[0]["rollout/is_capped_frac"] == 0 and rows[-1]["rollout/is_capped_frac"] > 0
    GRPOTrainer(_cfg(tmp_path, "mis", "steps=2", "grpo.rollout_correction=mis",
                     "grpo.rollout_correction_level=sequence", "grpo.mu=2"), progress=False).train()
    assert all(r["grad_norm"] > 0 for r in _rows(tmp_path / "mis" / "metrics.jsonl"))


@pytest.mark.parametrize("fault", ["kill", "stop"])
def test_a_dead_or_hung_worker_is_a_named_error(tmp_path, fault):
    trainer = GRPOTrainer(_cfg(tmp_path, "run", "steps=3", "rollout.async_steps=1", "rollout.async_timeout=3"),
                          progress=False)
    pid = trainer.source.engine.proc.pid
    os.kill(pid, signal.SIGKILL if fault == "kill" else signal.SIGSTOP)
    started = time.time()
    with pytest.raises(EngineError, match="died" if fault == "kill" else "gave no answer for 3 s"):
        trainer.train()
    assert time.time() - started < 30
    assert not trainer.source.engine.proc.is_alive()


def test_ctrl_c_to_the_process_group_stops_an_async_run_after_a_step(tmp_path):
    """A terminal's Ctrl-C reaches the trainer and its worker: the run stops after a step with a
    checkpoint (exit 130, one line), not with a dead-worker error."""
    run = tmp_path / "run"
    log = open(tmp_path / "stderr.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "r1kit.cli", "zero", "--no-report", *SMALL, f"out={run}",
                             "steps=50", "checkpoint_every=0", "eval.every=0", "rollout.async_steps=1"],
                            stdout=subprocess.DEVNULL, stderr=log, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 300
    while not (run / "metrics.jsonl").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)
    proc.wait(timeout=300)
    err = (tmp_path / "stderr.log").read_text()
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err and "worker" not in err and "--resume" in err
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert (run / f"checkpoint-{steps[-1]}" / "trainer_state.pt").exists() and steps[-1] < 50


@pytest.mark.parametrize("extra, needle", [
    (["rollout.async_steps=1", "distributed.backend=ray"], "rollout.async_steps"),
    (["rollout.async_steps=1", "grpo.dynamic_sampling=true"], "rollout.async_steps"),
    (["rollout.async_steps=2"], "rollout.async_steps"),
    (["grpo.rollout_correction_cap=0.5"], "grpo.rollout_correction_cap"),
    (["grpo.rollout_correction=is"], "grpo.rollout_correction"),
])
def test_bad_off_policy_options_name_the_key(extra, needle):
    pytest.importorskip("ray") if "distributed.backend=ray" in extra else None
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        from r1kit.config import validate
        validate(load_config(ZeroConfig, None, extra))


@pytest.mark.slow
def test_sigkill_and_resume_of_an_async_run_gives_identical_metrics(tmp_path):
    args = SMALL + ["steps=6", "checkpoint_every=2", "eval.every=3", "rollout.async_steps=1"]
    cmd = [sys.executable, "-m", "r1kit.cli", "zero", "--no-report"]
    subprocess.run(cmd + args + [f"out={tmp_path / 'a'}"], check=True, capture_output=True)
    run_b = tmp_path / "b"
    proc = start_and_wait_for(cmd + args + [f"out={run_b}"], run_b / "checkpoint-4")
    workers = child_pids(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run_b / "summary.json").exists(), "the run finished before it could be killed"
    assert workers, "no rollout worker process"
    assert wait_until_gone(workers, 30)  # the orphaned worker notices and exits
    subprocess.run(cmd + ["--resume"] + args + [f"out={run_b}"], check=True, capture_output=True)
    for name in ("metrics.jsonl", "eval.jsonl"):
        a, b = _strip(_rows(tmp_path / "a" / name)), _strip(_rows(run_b / name))
        assert [r["step"] for r in a] == [r["step"] for r in b]
        assert a == b, name
