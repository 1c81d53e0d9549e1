"""Multi-process training under a real torchrun (2 CPU processes, gloo): the same loss and gradients
as one process on the same global batch, and ``r1kit zero`` running end to end."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from r1kit.distributed import ddp
from helpers import ARITHMETIC

ROOT = Path(__file__).resolve().parents[1]
HELPER = Path(__file__).resolve().parent / "helpers" / "ddp_grads.py"


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    env.pop("WORLD_SIZE", None)
    return env


def _torchrun(n: int, *args) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(n),
            "--standalone", *args]


def _run(cmd, timeout=600) -> subprocess.CompletedProcess:
    """Run in its own process group; on a timeout kill the whole group (torchrun's workers too)."""
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def test_shard_splits_contiguously_and_covers_everything():
    items = list(range(7))
    parts = [ddp.shard(items, r, 3) for r in range(3)]
    assert parts == [[0, 1, 2], [3, 4], [5, 6]]
    assert ddp.shard(items) == items  # alone: everything


def test_two_process_gradients_equal_one_process(tmp_path):
    one, two = tmp_path / "one.pt", tmp_path / "two.pt"
    alone = _run([sys.executable, str(HELPER), str(one), str(tmp_path / "r1")])
    assert alone.returncode == 0, alone.stderr[-3000:]
    proc = _run(_torchrun(2, str(HELPER), str(two), str(tmp_path / "r2")))
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = torch.load(one), torch.load(two)
    for agg in a:
        assert a[agg]["world"] == 1 and b[agg]["world"] == 2
        assert b[agg]["shard"] == 2  # rank 0's share of 3 groups (rank 1 has 1): unequal shards
        assert a[agg]["tokens"] == b[agg]["tokens"], "the fixed batch must be the same in both runs"
        assert b[agg]["loss"] == pytest.approx(a[agg]["loss"], rel=1e-5, abs=1e-7), agg
        ga, gb = a[agg]["grads"], b[agg]["grads"]
        assert ga.keys() == gb.keys()
        total = torch.sqrt(sum((g ** 2).sum() for g in ga.values()))
        assert total > 0
        for name in ga:
            diff = (ga[name] - gb[name]).norm()
            assert diff <= 1e-5 * max(ga[name].norm(), 1e-3 * total), (agg, name, float(diff))


def test_zero_under_torchrun_trains_and_logs_once(tmp_path):
    run = tmp_path / "run"
    proc = _run(_torchrun(2, "-m", "r1kit.cli", "zero", "--no-report", "--out", str(run), *ARITHMETIC,
                                    "steps=2", "grpo.prompts_per_step=4", "grpo.group_size=4",
                                    "rollout.max_new_tokens=48", "eval.every=2", "eval.limit=8", "eval.k=2",
                                    "eval.max_new_tokens=48", "log_tensorboard=false", "checkpoint_every=0"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]  # rank 0 logs, once per step
    # metrics cover the global batch: 4 prompts x 4 samples, sampled 2 + 2 by the two ranks
    assert all(r["grad_norm"] > 0 and r["weight_version/max"] == r["step"] - 1 for r in rows)
    assert (run / "checkpoint-2").is_dir() and (run / "summary.json").exists()
    assert [json.loads(line)["step"] for line in (run / "eval.jsonl").read_text().splitlines()] == [0, 2]


@pytest.mark.slow
def test_zero_under_torchrun_with_ray_actors(tmp_path):
    """Rank 0 drives 2 Ray rollout actors and broadcasts the batch; both ranks train on it."""
    pytest.importorskip("ray")
    run = tmp_path / "run"
    proc = _run(_torchrun(2, "-m", "r1kit.cli", "zero", "--no-report", "--out", str(run), "steps=2", *ARITHMETIC,
                          "grpo.prompts_per_step=4", "grpo.group_size=4", "rollout.max_new_tokens=48",
                          "eval.every=0", "log_tensorboard=false", "distributed.backend=ray",
                          "distributed.num_cpus=3"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and all(r["grad_norm"] > 0 for r in rows)
    samples = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 2 * 16 and {s["actor"] for s in samples} == {0, 1}
    assert all(s["weight_version"] == s["step"] - 1 for s in samples)


def test_a_collective_past_the_timeout_names_the_rank_and_the_operation():
    helper = Path(__file__).resolve().parent / "helpers" / "collective_timeout.py"
    proc = _run(_torchrun(2, str(helper), "2"), timeout=120)
    assert "CollectiveTimeout: rank 0 of 2: barrier failed or waited longer than distributed.collective_timeout " \
           "(2 s)" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-2000:]
