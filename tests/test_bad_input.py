"""Bad input, driven through the command line as a user would: every case exits with status 2
(130 for Ctrl-C), names the culprit, prints no traceback and leaves no half-written output."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import ARITHMETIC

PROBLEM = {"id": "p1", "problem": "Compute 1 + 2", "answer": "3"}


def r1kit(*args, cwd=None):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "r1kit.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)


def assert_refused(proc, *culprits: str, code: int = 2) -> None:
    said = proc.stdout + proc.stderr
    assert proc.returncode == code, said[-3000:]
    assert "Traceback" not in said, said[-3000:]
    for culprit in culprits:
        assert culprit in proc.stderr, (culprit, proc.stderr[-3000:])


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


@pytest.fixture()
def files(tmp_path):
    """Input files a user might get wrong."""
    good = [PROBLEM, {**PROBLEM, "id": "p2", "problem": "Compute 4 - 1"}]
    made = {"good": tmp_path / "good.jsonl", "empty": tmp_path / "empty.jsonl", "broken": tmp_path / "broken.jsonl",
            "no_answer": tmp_path / "no_answer.jsonl", "bom_crlf": tmp_path / "bom_crlf.jsonl",
            "yaml_bad": tmp_path / "bad.yaml", "yaml_list": tmp_path / "list.yaml", "a_file": tmp_path / "a_file",
            "folder": tmp_path / "folder"}
    made["good"].write_text("".join(json.dumps(r) + "\n" for r in good))
    made["empty"].write_text("")
    made["broken"].write_text(json.dumps(PROBLEM) + "\n{not json\n")
    made["no_answer"].write_text(json.dumps({"id": "x", "problem": "Compute 1 + 1"}) + "\n")
    made["bom_crlf"].write_bytes(b"\xef\xbb\xbf" + "".join(json.dumps(r) + "\r\n" for r in good).encode())
    made["yaml_bad"].write_text("steps: 3\ngrpo:\n  beta: [0.1\n")
    made["yaml_list"].write_text("- steps\n- 3\n")
    made["a_file"].write_text("not a folder\n")
    made["folder"].mkdir()
    return made


# (command line, culprits the message must name); {name} is replaced by that file's path, {out} by a fresh folder
CASES = [
    # out-of-range and wrongly typed numbers
    (["eval", "--k", "0"], ["--k", "0", ">= 1"]),
    (["eval", "--k", "-1"], ["--k", "-1"]),
    (["eval", "--limit", "0"], ["--limit"]),
    (["eval", "--top-p", "1.5"], ["--top-p", "1.5"]),
    (["eval", "--temperature", "-0.5"], ["--temperature"]),
    (["eval", "--max-new-tokens", "0"], ["--max-new-tokens"]),
    (["zero", "--out", "{out}", "grpo.group_size=0"], ["grpo.group_size", ">= 2"]),
    (["zero", "--out", "{out}", "grpo.group_size=1"], ["grpo.group_size", ">= 2"]),
    (["zero", "--out", "{out}", "steps=-3"], ["steps", "-3", ">= 1"]),
    (["zero", "--out", "{out}", "steps=0"], ["steps"]),
    (["zero", "--out", "{out}", "steps=abc"], ["steps", "expected an integer"]),
    (["zero", "--out", "{out}", "grpo.beta=-0.1"], ["grpo.beta"]),
    (["zero", "--out", "{out}", "rollout.top_p=0"], ["rollout.top_p"]),
    (["zero", "--out", "{out}", "eval.k=0"], ["eval.k"]),
    (["zero", "--out", "{out}", "optim.lr=0"], ["optim.lr"]),
    (["zero", "--out", "{out}", "grpo.prompts_per_step=0"], ["grpo.prompts_per_step"]),
    (["zero", "--out", "{out}", "grpo.loss_agg=mean"], ["grpo.loss_agg", "token-mean"]),
    (["zero", "--out", "{out}", "log_tensorboard=maybe"], ["log_tensorboard", "true/false"]),
    (["sft", "--data", "{good}", "--out", "{out}", "batch_size=0"], ["batch_size"]),
    (["sft", "--data", "{good}", "--out", "{out}", "lr=-1"], ["lr"]),
    (["sample", "--k", "0", "--out", "{out}"], ["k", ">= 1"]),
    (["sample", "--out", "{out}", "judge_threshold=2"], ["judge_threshold"]),
    (["distill", "--out", "{out}", "eval.k=0"], ["eval.k"]),
    (["pipeline", "--dry-run", "reasoning_rl.grpo.grpo.group_size=1"], ["reasoning_rl.grpo.grpo.group_size"]),
    # unknown names
    (["zero", "--out", "{out}", "grpo.nope=1"], ["grpo.nope"]),
    (["zero", "--out", "{out}", "rewards={{nope: 1.0}}"], ["rewards.nope", "unknown reward"]),
    (["zero", "--out", "{out}", "reward_modules=[no_such_module]"], ["reward_modules", "no_such_module"]),
    (["zero", "--out", "{out}", "steps"], ["steps", "key=value"]),
    (["eval", "--data", "no_such_benchmark"], ["no_such_benchmark"]),
    (["eval", "--model", "./no/such/model", "--out", "{out}"], ["./no/such/model"]),
    # empty, malformed and missing files; folders where files are expected
    (["eval", "--data", "{empty}", "--out", "{out}"], ["{empty}"]),
    (["eval", "--data", "{broken}", "--out", "{out}"], ["{broken}:2"]),
    (["eval", "--data", "{no_answer}", "--out", "{out}"], ["{no_answer}", "answer"]),
    (["eval", "--data", "{folder}/missing.jsonl", "--out", "{out}"], ["missing.jsonl"]),
    (["eval", "--data", "{folder}", "--out", "{out}"], ["{folder}"]),
    (["zero", "--out", "{out}", "data={empty}"], ["{empty}"]),
    (["zero", "--out", "{out}", "data={broken}"], ["{broken}:2"]),
    (["zero", "--out", "{out}", "eval.data={empty}"], ["{empty}"]),
    (["sft", "--data", "{broken}", "--out", "{out}"], ["{broken}:2"]),
    (["sft", "--out", "{out}"], ["data"]),
    (["cold-start", "--data", "{empty}", "--out", "{out}"], ["{empty}"]),
    (["grade", "--data", "{good}", "--responses", "{broken}", "--out", "{out}"], ["{broken}:2"]),
    (["zero", "--config", "{yaml_bad}", "--out", "{out}"], ["{yaml_bad}:4:1:", "YAML"]),
    (["zero", "--config", "{yaml_list}", "--out", "{out}"], ["{yaml_list}", "mapping"]),
    (["zero", "--config", "{folder}", "--out", "{out}"], ["{folder}", "folder"]),
    (["zero", "--config", "{folder}/missing.yaml", "--out", "{out}"], ["missing.yaml", "not found"]),
    (["pipeline", "{folder}/missing.yaml", "--dry-run"], ["missing.yaml"]),
    (["report", "{folder}"], ["{folder}", "not a run directory"]),
    (["eval", "--model", "{folder}", "--out", "{out}"], ["{folder}", "no model"]),
    # outputs that cannot be written
    (["eval", "--out", "{a_file}"], ["{a_file}", "is a file"]),
    (["eval", "--out", "{a_file}/sub"], ["{a_file}", "is a file"]),
    (["zero", "--out", "{a_file}"], ["{a_file}", "is a file"]),
    (["sft", "--data", "{good}", "--out", "{a_file}"], ["{a_file}", "is a file"]),
    (["sample", "--out", "{a_file}"], ["{a_file}", "is a file"]),
    (["eval", "--out", "/proc/r1kit-out"], ["/proc/r1kit-out", "cannot write"]),
    (["zero", "--out", "/proc/r1kit-out"], ["/proc/r1kit-out", "cannot write"]),
    (["base", "--out", "{a_file}"], ["{a_file}"]),
]


@pytest.mark.parametrize("argv, culprits", CASES, ids=[" ".join(a[:4]) for a, _ in CASES])
def test_bad_input_is_refused_with_a_clear_error(tmp_path, files, argv, culprits):
    paths = {name: str(path) for name, path in files.items()} | {"out": str(tmp_path / "out")}
    before = files_under(tmp_path)
    proc = r1kit(*[a.format(**paths) for a in argv], cwd=tmp_path)
    assert_refused(proc, *[c.format(**paths) for c in culprits])
    assert files_under(tmp_path) == before  # nothing written, not even an empty --out


def test_bom_and_crlf_files_are_read(tmp_path, files):
    proc = r1kit("eval", "--data", files["bom_crlf"], "--k", "1", "--max-new-tokens", "8", "--out", tmp_path / "e")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((tmp_path / "e" / "results.json").read_text())["n_problems"] == 2


def test_an_earlier_evaluation_is_not_overwritten(tmp_path, files):
    out = tmp_path / "e"
    out.mkdir()
    (out / "results.json").write_text('{"pass@1": 0.5}')
    proc = r1kit("eval", "--data", files["good"], "--k", "1", "--max-new-tokens", "8", "--out", out)
    assert_refused(proc, str(out), "--overwrite")
    assert (out / "results.json").read_text() == '{"pass@1": 0.5}'
    proc = r1kit("eval", "--data", files["good"], "--k", "1", "--max-new-tokens", "8", "--out", out, "--overwrite")
    assert proc.returncode == 0 and json.loads((out / "results.json").read_text())["n_problems"] == 2


ZERO_FAST = [*ARITHMETIC, "grpo.prompts_per_step=2", "grpo.group_size=2", "rollout.max_new_tokens=16", "eval.every=0",
             "threads=1", "log_tensorboard=false"]


def test_resume_keeps_the_recorded_config(tmp_path):
    run = tmp_path / "run"
    assert r1kit("zero", "--out", run, "--no-report", "steps=1", "optim.lr=1e-4", *ZERO_FAST).returncode == 0
    recorded = (run / "config.json").read_text()
    # a run directory that holds a run: refused without --resume / --overwrite
    assert_refused(r1kit("zero", "--out", run, "--no-report", "steps=1"), str(run), "--resume")
    # a changed option that would rewrite history: refused, the record untouched
    assert_refused(r1kit("zero", "--out", run, "--resume", "--no-report", "optim.lr=1e-3"),
                   "optim.lr", "0.0001 -> 0.001")
    assert (run / "config.json").read_text() == recorded
    # no overrides: the recorded options, not the defaults; a safe change is accepted and logged
    proc = r1kit("zero", "--out", run, "--resume", "--no-report", "steps=2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["optim"]["lr"] == 1e-4 and cfg["grpo"]["group_size"] == 2 and cfg["steps"] == 2
    changes = [json.loads(line) for line in (run / "config.changes.jsonl").read_text().splitlines()]
    assert [(c["key"], c["old"], c["new"], c["step"]) for c in changes] == [("steps", 1, 2, 1)]
    assert [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2]


def test_model_run_dir_means_its_newest_checkpoint(tmp_path):
    run = tmp_path / "run"
    assert r1kit("zero", "--out", run, "--no-report", "steps=2", "checkpoint_every=1", "keep_checkpoints=2",
                 *ZERO_FAST).returncode == 0
    proc = r1kit("eval", "--model", run, "--data", "synthetic", "--limit", "2", "--k", "1", "--max-new-tokens", "8",
                 "--out", tmp_path / "e")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"using its model {run / 'checkpoint-2'}" in proc.stderr


def test_overrides_may_follow_flags(tmp_path):
    proc = r1kit("pipeline", "--dry-run", "--out", tmp_path / "p", "r1_zero.grpo.steps=7")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_refused(r1kit("eval", "--k", "1", "steps=3"), "unknown config key steps")  # not an eval option
    assert_refused(r1kit("eval", "--k", "1", "--sterps", "3"), "--sterps")  # a flag is no key=value


def _interrupt_when(proc, ready) -> None:
    deadline = time.time() + 300
    while not ready() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)


def _popen(tmp_path, *args):
    log = open(tmp_path / "stderr.log", "w")
    # a shell's background job inherits an ignored SIGINT, and Python then never raises
    # KeyboardInterrupt: give the child the default, as a terminal's foreground command has
    proc = subprocess.Popen([sys.executable, "-m", "r1kit.cli", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=log, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    return proc, tmp_path / "stderr.log"


def test_ctrl_c_stops_zero_after_a_step_with_a_checkpoint(tmp_path):
    run = tmp_path / "run"
    proc, log = _popen(tmp_path, "zero", "--out", run, "--no-report", "steps=50", "checkpoint_every=0", *ZERO_FAST)
    _interrupt_when(proc, lambda: (run / "metrics.jsonl").exists())
    out, _ = proc.communicate(timeout=300)
    err = log.read_text()
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in out + err and "--resume" in err
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert (run / f"checkpoint-{steps[-1]}" / "trainer_state.pt").exists() and steps[-1] < 50
    proc = r1kit("zero", "--out", run, "--resume", "--no-report", "steps=" + str(steps[-1] + 1))
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_ctrl_c_during_eval_writes_no_results(tmp_path):
    out = tmp_path / "e"
    proc, log = _popen(tmp_path, "eval", "--data", "synthetic", "--k", "64", "--out", out)
    _interrupt_when(proc, lambda: "eval samples" in log.read_text())  # sampling has started (its progress bar)
    out_text, _ = proc.communicate(timeout=300)
    err = log.read_text()
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in out_text + err and "interrupted" in err
    assert not (out / "results.json").exists() and not (out / "samples.jsonl").exists()
