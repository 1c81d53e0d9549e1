"""Distillation end to end: teacher traces -> student SFT -> evaluation, on the tiny models.

The slow test is the paper's §4.1 in miniature, reduced: a short R1-Zero run makes the teacher,
the smaller ``tiny-small`` student is distilled from it, and the distilled student must beat the
student base on the held-out set.
"""
import json
import subprocess
import sys

import pytest
from helpers import ARITHMETIC


def r1kit(*args, check=True):
    proc = subprocess.run([sys.executable, "-m", "r1kit.cli", *args], capture_output=True, text=True)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_distill_command_end_to_end(tmp_path):
    out = tmp_path / "d"
    args = ["distill", "--teacher", "tiny", "--student", "tiny-small", "--out", str(out), "sample.limit=16",
            "sample.k=2", "sample.batch_size=16", "sample.threads=1", "sft.max_steps=3", "sft.batch_size=4",
            "sft.threads=1", "eval.limit=8", "eval.k=2", "eval.base=true"]
    r1kit(*args)
    summary = json.loads((out / "summary.json").read_text())
    stats = json.loads((out / "sample" / "stats.json").read_text())
    assert stats["sampled"] == 32 and stats["kept"] + stats["rejected_total"] == 32 and stats["kept"] > 0
    assert summary["sft"]["steps"] == 3 and (out / "sft" / "final" / "model.safetensors").exists()
    results = json.loads((out / "eval" / "results.json").read_text())
    assert results["n_problems"] == 8 and results["k"] == 2 and summary["eval"]["pass@1"] == results["pass@1"]
    assert "pass@1" in summary["eval_base"] and summary["seconds"]["distill"] > 0
    from transformers import AutoConfig
    assert AutoConfig.from_pretrained(out / "sft" / "final").hidden_size == 96  # the student, not the teacher
    # a second run into the same folder is refused; stage options that distill sets are refused
    proc = r1kit(*args, check=False)
    assert proc.returncode == 2 and "already holds" in proc.stderr
    proc = r1kit("distill", "--out", str(tmp_path / "e"), "sample.model=some/other", check=False)
    assert proc.returncode == 2 and "sample.model" in proc.stderr


def test_sft_and_sample_commands(tmp_path, capsys):
    out = tmp_path / "s"
    r1kit("sample", "--model", "tiny", "--data", "synthetic", "--k", "2", "--limit", "6", "--max-per-prompt", "1",
          "--out", str(out), "threads=1")
    stats = json.loads((out / "stats.json").read_text())
    assert stats["sampled"] == 12 and stats["kept"] + stats["rejected_total"] == 12 and stats["kept"] <= 6
    r1kit("sft", "--model", "tiny-small", "--data", str(out / "sft.jsonl"), "--out", str(tmp_path / "f"),
          "max_steps=2", "threads=1")
    assert (tmp_path / "f" / "final" / "config.json").exists()
    from r1kit.cli import main
    assert main(["sft", "--data", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "g")]) == 2
    assert "missing.jsonl: file not found" in capsys.readouterr().err


@pytest.mark.slow
def test_distilled_student_beats_the_student_base(tmp_path):
    teacher = tmp_path / "teacher"
    r1kit("zero", "--out", str(teacher), "--no-report", *ARITHMETIC, "steps=50", "eval.every=0", "checkpoint_every=0")
    out = tmp_path / "distill"
    r1kit("distill", "--teacher", str(teacher / "checkpoint-50"), "--student", "tiny-small", "--out", str(out),
          "sample.limit=1000", "eval.limit=100", "eval.k=4", "eval.base=true")
    summary = json.loads((out / "summary.json").read_text())
    base, distilled = summary["eval_base"]["pass@1"], summary["eval"]["pass@1"]
    stats = summary["sample"]
    assert stats["kept"] + stats["rejected_total"] == stats["sampled"] == 1000 * stats["k"]
    assert distilled > base + 0.25, (base, distilled)
