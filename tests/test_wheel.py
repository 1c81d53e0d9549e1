"""Slow (own CI step): r1kit as a user who installed only the wheel gets it.

Builds the wheel with ``python -m build`` (sdist, then the wheel from the sdist), checks that it
holds the tiny bases and the benchmark files, installs it into a fresh virtual environment outside
the checkout (no system site-packages, no PYTHONPATH, so the checkout cannot leak in), then runs
``r1kit zero`` (reduced) and ``r1kit eval --data math500`` from a folder outside the checkout.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
WHEEL_ASSETS = [
    "r1kit/assets/tiny-base/model.safetensors", "r1kit/assets/tiny-base/tokenizer.json",
    "r1kit/assets/tiny-small-base/model.safetensors", "r1kit/assets/tiny-mixed-base/model.safetensors",
    "r1kit/assets/tiny-calc-base/model.safetensors",
    "r1kit/assets/benchmarks/math500.jsonl", "r1kit/assets/benchmarks/aime2024.jsonl",
    "r1kit/assets/benchmarks/gsm8k_test.jsonl", "r1kit/assets/benchmarks/README.md",
    "r1kit/assets/benchmarks/SHA256SUMS", "r1kit/rollout/vllm_worker/r1kit_vllm_worker.py",
]


def _run(cmd, cwd, env, timeout=1200):
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"{cmd} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.mark.slow
@pytest.mark.timeout(1800)  # pip installs r1kit's dependencies into the fresh environment
def test_built_wheel_runs_zero_and_eval_in_a_fresh_venv(tmp_path):
    assert not tmp_path.resolve().is_relative_to(REPO)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(R1KIT_CACHE=str(tmp_path / "cache"), OMP_NUM_THREADS="1")
    env.pop("R1KIT_DATA_DIR", None)

    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "build", "--outdir", dist, REPO], cwd=tmp_path, env=env)
    wheel, = dist.glob("r1kit-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert [a for a in WHEEL_ASSETS if a not in names] == []
    assert not any(n.startswith(("tests/", "docs/", "benchmarks/")) for n in names)

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv], cwd=tmp_path, env=env)
    pip = [venv / "bin" / "python", "-m", "pip", "install", "-q"]
    _run([*pip, "torch==2.13.0"], cwd=tmp_path, env=env)  # the CPU build first, as scripts/setup.sh does
    _run([*pip, wheel], cwd=tmp_path, env=env)
    where = _run([venv / "bin" / "python", "-c", "import r1kit, torch; print(r1kit.__file__); print(torch.__version__)"],
                 cwd=tmp_path, env=env).split()
    assert Path(where[0]).resolve().is_relative_to(venv.resolve()) and where[1].startswith("2.13.0")

    user = tmp_path / "user"  # a working directory with no checkout above it
    user.mkdir()
    r1kit = venv / "bin" / "r1kit"
    _run([r1kit, "zero", "--out", "zero", "steps=2", "eval.limit=10", "eval.k=2", "threads=1"], cwd=user, env=env)
    run = user / "zero"
    assert [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    evals = [json.loads(line) for line in (run / "eval.jsonl").read_text().splitlines()]
    assert [e["step"] for e in evals] == [0, 2] and all(0 <= e["pass@1"] <= 1 for e in evals)
    assert (run / "checkpoint-2" / "model.safetensors").is_file()
    assert (run / "report" / "index.html").is_file()

    _run([r1kit, "eval", "--model", "tiny", "--data", "math500", "--limit", "5", "--k", "1", "--out", "eval"],
         cwd=user, env=env)
    results = json.loads((user / "eval" / "results.json").read_text())
    assert results["n_responses"] == 5
    samples = [json.loads(line) for line in (user / "eval" / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 5 and samples[0]["id"] == "test/precalculus/807.json"
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())  # tiny came from the wheel
