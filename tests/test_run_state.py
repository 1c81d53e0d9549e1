"""Run state under real faults: truncated checkpoints, a checkpoint of another model, an edited
config.json, a finished run resumed, two writers, SIGTERM, a full disk (a small tmpfs) and a
read-only one (remounted). Every run is a real ``python -m r1kit.cli zero`` process."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import ARITHMETIC
from r1kit.runs import LOCK_FILE, checkpoint_damage, is_timing_key

ARGS = ["--no-report", *ARITHMETIC, "grpo.prompts_per_step=2", "grpo.group_size=4", "rollout.max_new_tokens=64",
        "eval.every=0", "log_tensorboard=false", "threads=1", "checkpoint_every=1"]
ZERO = [sys.executable, "-m", "r1kit.cli", "zero"]


def zero(out, *extra, resume=False):
    cmd = ZERO + (["--resume"] if resume else []) + ARGS + [f"out={out}", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def start_zero(out, *extra, resume=False):
    cmd = ZERO + (["--resume"] if resume else []) + ARGS + [f"out={out}", *extra]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_for(path: Path, proc, seconds=300):
    deadline = time.time() + seconds
    while not path.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert path.exists(), f"{path} never appeared"


def steps(run: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def one_line_error(proc_stderr: str) -> str:
    """The one line of a failed command (the progress bar's last line may follow it)."""
    assert "Traceback" not in proc_stderr, proc_stderr
    [line] = [line for line in proc_stderr.splitlines() if line.startswith("r1kit ")]
    return line


@pytest.fixture(scope="module")
def two_steps(tmp_path_factory) -> Path:
    """A finished run of 2 steps with checkpoint-1 and checkpoint-2."""
    run = tmp_path_factory.mktemp("state") / "run"
    done = zero(run, "steps=2")
    assert done.returncode == 0, done.stderr
    return run


def copy_of(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / "run"))


@pytest.mark.parametrize("damaged", ["model.safetensors", "trainer_state.pt"])
def test_a_truncated_checkpoint_falls_back_to_the_newest_intact_one(two_steps, tmp_path, damaged):
    run = copy_of(two_steps, tmp_path)
    with open(run / "checkpoint-2" / damaged, "r+b") as f:
        f.truncate(1000)
    done = zero(run, "steps=3", resume=True)
    assert done.returncode == 0, done.stderr
    assert f"checkpoint-2: damaged, skipped: {damaged} has 1000 bytes" in done.stdout
    assert "continuing from checkpoint-1" in done.stdout
    assert steps(run) == [1, 2, 3] and checkpoint_damage(run / "checkpoint-3") is None


def test_every_checkpoint_damaged_is_refused(two_steps, tmp_path):
    run = copy_of(two_steps, tmp_path)
    for checkpoint in ("checkpoint-1", "checkpoint-2"):
        (run / checkpoint / "model.safetensors").write_bytes(b"\0" * 1000)
    done = zero(run, "steps=3", resume=True)
    assert done.returncode == 2 and "no intact checkpoint" in one_line_error(done.stderr)


def test_a_checkpoint_of_another_model_is_refused(two_steps, tmp_path):
    other = tmp_path / "other"
    assert zero(other, "steps=1", "model=tiny-small").returncode == 0
    run = copy_of(two_steps, tmp_path)
    shutil.copytree(other / "checkpoint-1", run / "checkpoint-5")
    done = zero(run, "steps=6", resume=True)
    assert done.returncode == 2
    assert "holds a checkpoint of model 'tiny-small', this run trains 'tiny'" in one_line_error(done.stderr)


def test_an_edited_config_json_is_refused(two_steps, tmp_path):
    run = copy_of(two_steps, tmp_path)
    config = json.loads((run / "config.json").read_text())
    config["grpo"]["group_size"] = 8
    (run / "config.json").write_text(json.dumps(config))
    done = subprocess.run(ZERO + ["--resume", "--no-report", f"out={run}", "steps=3"], capture_output=True, text=True)
    assert done.returncode == 2
    assert "grpo.group_size: 4 there, 8 now" in one_line_error(done.stderr)


def test_resuming_a_finished_run_changes_nothing(two_steps, tmp_path):
    run = copy_of(two_steps, tmp_path)
    def records():  # the lock file aside, which names its latest holder
        return {p.name: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != LOCK_FILE}
    before = records()
    done = zero(run, "steps=2", resume=True)
    assert done.returncode == 0 and "already finished (2 of 2 steps" in done.stderr
    assert records() == before


def test_a_second_writer_is_refused_and_sigterm_checkpoints(tmp_path):
    run = tmp_path / "run"
    first = start_zero(run, "steps=200", "checkpoint_every=0")
    try:
        wait_for(run / "metrics.jsonl", first)
        started = time.time()
        for extra in (["--overwrite"], ["--resume"]):
            second = subprocess.run(ZERO + extra + ARGS + [f"out={run}", "steps=200"], capture_output=True, text=True)
            assert second.returncode == 2
            assert f"is in use by another r1kit process (pid={first.pid} " in one_line_error(second.stderr)
        assert time.time() - started < 60
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=120) == 130
    finally:
        first.kill()
    assert "interrupted: stopped at step" in first.stderr.read()
    last = steps(run)[-1]
    assert steps(run) == list(range(1, last + 1))  # no other writer's lines
    assert checkpoint_damage(run / f"checkpoint-{last}") is None
    assert not list(run.glob(".tmp-*"))


@pytest.fixture
def small_disk(tmp_path):
    """A 28 MB tmpfs (room for two checkpoints of the tiny model, 11 MB each, not three)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=28m", "tmpfs", str(mount)]).returncode:
        pytest.skip("mounting a tmpfs needs root")
    yield mount
    subprocess.run(["umount", "-l", str(mount)])


def test_a_full_disk_ends_with_one_line_and_resumes_exactly(small_disk, tmp_path):
    run = small_disk / "run"
    full = zero(run, "steps=4", "keep_checkpoints=5")
    assert full.returncode == 2
    assert one_line_error(full.stderr) == (f"r1kit zero: error: cannot write {run}/checkpoint-3: "
                                           "No space left on device (ENOSPC)")
    assert not list(run.glob(".tmp-*"))
    assert [checkpoint_damage(run / f"checkpoint-{s}") for s in (1, 2)] == [None, None]
    subprocess.run(["mount", "-o", "remount,size=80m", str(small_disk)], check=True)
    assert zero(run, "steps=4", "keep_checkpoints=5", resume=True).returncode == 0
    straight = tmp_path / "straight"
    assert zero(straight, "steps=4").returncode == 0
    def rows(r):
        return [{k: v for k, v in json.loads(line).items() if not is_timing_key(k)}
                for line in (r / "metrics.jsonl").read_text().splitlines()]
    assert rows(run) == rows(straight)


def test_a_disk_turned_read_only_ends_with_one_line(small_disk):
    run = small_disk / "run"
    proc = start_zero(run, "steps=200")
    try:
        wait_for(run / "checkpoint-1", proc)
        subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
        assert proc.wait(timeout=120) == 2
    finally:
        proc.kill()
    line = one_line_error(proc.stderr.read())
    assert line.startswith(f"r1kit zero: error: cannot write {run}/") and line.endswith("Read-only file system (EROFS)")
    assert checkpoint_damage(run / "checkpoint-1") is None
    again = zero(run, "steps=200", resume=True)
    assert again.returncode == 2 and "Read-only file system" in one_line_error(again.stderr)


POISON = '''
import time
from r1kit.rewards import register

@register("test_poison")
def poison(completion, example):
    """1e300 for most answers (inf once weighted), a hang for some, 1.0 otherwise."""
    if len(completion) % 7 == 0:
        time.sleep(600)
    return 1e300 if len(completion) % 2 else 1.0
'''


def test_a_huge_or_hanging_reward_cannot_stall_or_poison_a_run(tmp_path):
    """The default (in-process) backend: a user reward that returns 1e300 or sleeps is a counted
    failure scored 0 (reward_timeout), and metrics.jsonl stays strict JSON."""
    (tmp_path / "poison_reward.py").write_text(POISON)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))}
    run = tmp_path / "run"
    started = time.time()
    done = subprocess.run(ZERO + ARGS + [f"out={run}", "steps=2", "reward_modules=[poison_reward]",
                                         "rewards={test_poison: 1.0, format: 0.5}", "reward_timeout=0.2"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    assert time.time() - started < 300
    def strict(constant):
        raise ValueError(f"not JSON: {constant}")
    rows = [json.loads(line, parse_constant=strict) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    failures = json.loads((run / "summary.json").read_text(), parse_constant=strict)["reward_failures"]["failures"]
    assert any("out of range" in reason for reason in failures), failures
    assert any("TimeoutError" in reason for reason in failures), failures


def test_metrics_files_never_hold_infinity_or_nan(tmp_path):
    from r1kit.data.jsonl import append_jsonl, write_json_atomic

    append_jsonl(tmp_path / "m.jsonl", {"step": 1, "loss": float("nan"), "parts": [float("inf"), 1.5]})
    write_json_atomic(tmp_path / "s.json", {"reward": float("-inf")})
    assert (tmp_path / "m.jsonl").read_text() == '{"step": 1, "loss": null, "parts": [null, 1.5]}\n'
    assert json.loads((tmp_path / "s.json").read_text()) == {"reward": None}


def test_a_checkpoint_from_before_manifests_still_resumes(tmp_path, capsys):
    """Checkpoints written by an r1kit without manifests are taken as they are (and said so)."""
    from r1kit.runs import MANIFEST_FILE, checkpoint_damage, latest_checkpoint

    old = tmp_path / "run" / "checkpoint-3"
    old.mkdir(parents=True)
    (old / "trainer_state.pt").write_bytes(b"state")
    assert MANIFEST_FILE not in {p.name for p in old.iterdir()}
    assert checkpoint_damage(old) is None and latest_checkpoint(tmp_path / "run") == old
    assert "without manifest.json; not verified" in capsys.readouterr().out
