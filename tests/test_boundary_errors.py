"""Bad models and data met at the command line, each made for real on disk: one line naming the
file and what to do, exit 2, no traceback; an unexpected failure prints its traceback and says
that it is a bug."""
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from r1kit.cli import run_guarded
from r1kit.models import resolve_model_path
from helpers import ARITHMETIC

ZERO = [sys.executable, "-m", "r1kit.cli", "zero", "--no-report", *ARITHMETIC, "steps=1", "eval.every=0", "threads=1",
        "grpo.prompts_per_step=2", "grpo.group_size=2", "rollout.max_new_tokens=16", "log_tensorboard=false"]


def zero(tmp_path, *extra, env=None, python_prefix=()):
    cmd = ZERO if not python_prefix else [sys.executable, *python_prefix, *ZERO[3:]]
    return subprocess.run(cmd + [f"out={tmp_path / 'run'}", *extra], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=600)


def one_line(done) -> str:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    [line] = [line for line in done.stderr.splitlines() if line.startswith("r1kit zero: ")]
    return line


@pytest.fixture
def tiny_copy(tmp_path):
    return shutil.copytree(resolve_model_path("tiny"), tmp_path / "model")


def test_a_model_folder_without_tokenizer_files(tmp_path, tiny_copy):
    for name in os.listdir(tiny_copy):
        if name.startswith("tokenizer"):
            os.remove(tiny_copy / name)
    assert "no tokenizer files" in one_line(zero(tmp_path, f"model={tiny_copy}"))


def test_a_tokenizer_larger_than_the_model_vocabulary(tmp_path, tiny_copy):
    config = json.loads((tiny_copy / "config.json").read_text())
    config["vocab_size"] = 10
    (tiny_copy / "config.json").write_text(json.dumps(config))
    assert "the model's vocab_size is 10" in one_line(zero(tmp_path, f"model={tiny_copy}"))


def test_random_bytes_as_weights(tmp_path, tiny_copy):
    (tiny_copy / "model.safetensors").write_bytes(os.urandom(100_000))
    line = one_line(zero(tmp_path, f"model={tiny_copy}"))
    assert f"model {tiny_copy}: cannot load it" in line and "damaged" in line


def test_an_unknown_hub_id_offline(tmp_path):
    line = one_line(zero(tmp_path, "model=no-such-org/no-such-model", env={"HF_HUB_OFFLINE": "1"}))
    assert "no-such-org/no-such-model" in line and "check the name" in line


def test_a_lora_checkpoint_as_the_model_and_without_peft(tmp_path):
    lora_run = tmp_path / "lora"
    done = subprocess.run(ZERO + [f"out={lora_run}", "lora.r=4"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    full = zero(tmp_path, f"model={lora_run / 'checkpoint-1'}")  # trained whole, adapters merged
    assert full.returncode == 0, full.stderr
    # peft made unimportable in the process that runs the command
    no_peft = ["-c", "import sys, runpy; sys.modules['peft'] = None; sys.argv[0] = 'r1kit'; "
                     "runpy.run_module('r1kit.cli', run_name='__main__')"]
    done = zero(tmp_path, f"model={lora_run / 'checkpoint-1'}", "--overwrite", python_prefix=no_peft)
    assert "needs the Python package 'peft'" in one_line(done) and "r1kit[lora]" in one_line(done)


def test_a_json_file_with_invalid_utf8(tmp_path):
    data = tmp_path / "bad.json"
    data.write_bytes(b'[{"id": "1", "problem": "1 + 1",\n "answer": "2 \xff"}]')
    assert f"{data}:2: not valid UTF-8" in one_line(zero(tmp_path, f"data={data}"))


def test_a_corrupt_parquet_file(tmp_path):
    pytest.importorskip("pyarrow")
    data = tmp_path / "bad.parquet"
    data.write_bytes(b"PAR1" + os.urandom(1000))
    assert f"{data}: not a readable Parquet file" in one_line(zero(tmp_path, f"data={data}"))


def test_a_50_mb_problem_is_refused_by_line_without_tokenising_it(tmp_path):
    data = tmp_path / "long.jsonl"
    rows = [{"id": "a", "problem": "1 + 1", "answer": "2"}, {"id": "b", "problem": "1 + " * 12_500_000, "answer": "2"}]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    started = time.time()
    line = one_line(zero(tmp_path, f"data={data}"))
    assert f"{data}:2: the problem is " in line and "longer than the model's context of 512 tokens" in line
    assert time.time() - started < 120


def test_an_unexpected_failure_prints_its_traceback_and_says_it_is_a_bug(capsys):
    assert run_guarded("zero", lambda: {}["missing"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "KeyError: 'missing'" in err
    assert err.strip().splitlines()[-1].startswith("r1kit zero: this is a bug in r1kit")


def test_a_report_into_a_read_only_run_folder(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)]).returncode:
        pytest.skip("mounting a tmpfs needs root")
    try:
        (disk / "run").mkdir()
        (disk / "run" / "metrics.jsonl").write_text('{"step": 1, "reward/mean": 0.5}\n')
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        done = subprocess.run([sys.executable, "-m", "r1kit.cli", "report", str(disk / "run")],
                              capture_output=True, text=True)
    finally:
        subprocess.run(["umount", "-l", str(disk)])
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip() == f"r1kit report: error: {disk / 'run' / 'report'}: Read-only file system"
