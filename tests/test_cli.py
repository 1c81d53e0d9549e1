"""End-to-end command lines on the tiny model: eval, grade, errors that name file and line."""
import json
import subprocess
import sys


def r1kit(*args, check=True):
    proc = subprocess.run([sys.executable, "-m", "r1kit.cli", *args], capture_output=True, text=True)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_eval_end_to_end_k4(tmp_path):
    out = tmp_path / "eval"
    r1kit("eval", "--model", "tiny", "--data", "synthetic", "--limit", "12", "--k", "4",
          "--max-new-tokens", "96", "--out", str(out))
    results = json.loads((out / "results.json").read_text())
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 48 and results["n_problems"] == 12
    assert {"pass@1", "cons@4", "pass@2", "pass@4"} <= results.keys()
    per_id = {}
    for s in samples:
        per_id.setdefault(s["id"], []).append(s["correct"])
    assert all(len(v) == 4 for v in per_id.values())
    expected = sum(sum(v) / 4 for v in per_id.values()) / len(per_id)
    assert abs(results["pass@1"] - expected) < 1e-9
    assert results["pass@4"] >= results["pass@1"]


def test_eval_on_a_real_benchmark_file(tmp_path):
    out = tmp_path / "gsm"
    r1kit("eval", "--model", "tiny", "--data", "gsm8k", "--limit", "2",
          "--k", "2", "--max-new-tokens", "16", "--out", str(out))
    assert json.loads((out / "results.json").read_text())["n_responses"] == 4


def test_broken_jsonl_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "problem": "Compute 1 + 1", "answer": "2"}\n{"id": "b", "problem": \n')
    proc = r1kit("eval", "--data", str(bad), "--out", str(tmp_path / "o"), check=False)
    assert proc.returncode == 2
    assert "bad.jsonl:2" in proc.stderr
    missing = tmp_path / "missing_field.jsonl"
    missing.write_text('{"id": "a", "problem": "Compute 1 + 1"}\n')
    proc = r1kit("eval", "--data", str(missing), "--out", str(tmp_path / "o"), check=False)
    assert proc.returncode == 2 and "answer" in proc.stderr and "missing_field.jsonl" in proc.stderr


def test_grade_command(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text('{"id": "q1", "problem": "p", "answer": "\\\\frac{1}{2}"}\n{"id": "q2", "problem": "p", "answer": "3"}\n')
    resp = tmp_path / "r.jsonl"
    resp.write_text("".join(json.dumps(r) + "\n" for r in [
        {"id": "q1", "response": "<answer>0.5</answer>"}, {"id": "q1", "response": "\\boxed{1/2}"},
        {"id": "q2", "response": "<answer>4</answer>"}, {"id": "q2", "response": "<answer>3</answer>"}]))
    r1kit("grade", "--data", str(data), "--responses", str(resp), "--out", str(tmp_path / "g"))
    res = json.loads((tmp_path / "g" / "results.json").read_text())
    assert res["accuracy"] == 0.75 and res["pass@1"] == 0.75
    assert len((tmp_path / "g" / "graded.jsonl").read_text().splitlines()) == 4


def test_eval_on_humaneval_runs_in_the_sandbox(tmp_path):
    out = tmp_path / "he"
    r1kit("eval", "--model", "tiny", "--data", "humaneval", "--limit", "2", "--k", "2",
          "--max-new-tokens", "12", "--out", str(out))
    res = json.loads((out / "results.json").read_text())
    assert res["n_problems"] == 2 and res["n_responses"] == 4 and sum(res["outcomes"].values()) == 4
    assert "pass@1" in res and "pass@2" in res


def test_eval_on_the_synthetic_code_task(tmp_path):
    out = tmp_path / "code"
    r1kit("eval", "--model", "tiny", "--data", "synthetic_code", "--limit", "6", "--k", "2",
          "--max-new-tokens", "64", "--out", str(out))
    res = json.loads((out / "results.json").read_text())
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert res["n_responses"] == 12 and len(samples) == 12
    assert res["pass@1"] == sum(s["correct"] for s in samples) / 12
    assert not any(k.startswith("cons@") for k in res)  # programs do not vote
