"""Slow (own CI step): scripts/gpu_check.sh's dry run on the CPU, end to end, reduced shapes.

The same script and checks as on a GPU (greedy == HF generate, sampled == teacher-forced log-probs,
a short tiny R1-Zero run, bf16 GRPO steps with and without LoRA, rollout vs HF generate), so a
broken check is found here before a GPU machine's minutes are spent on it.
"""
import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_dry_run_on_cpu(tmp_path):
    pytest.importorskip("peft")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([str(ROOT / "scripts" / "gpu_check.sh"), "--device", "cpu", "--reduced",
                           "--json", str(tmp_path / "table.json")], env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = json.loads((tmp_path / "table.json").read_text())["rows"]
    assert len(rows) == 7 and all(r["ok"] for r in rows), rows  # 5 checks + rollout (EOS, fixed length)
    assert "| greedy sampling == HF generate" in proc.stdout and "8/8 equal" in proc.stdout
