"""FSDP2 (``distributed.strategy=fsdp``) under a real torchrun on the CPU (gloo).

Three ranks shard the tiny model, whose sizes (vocabulary 388, hidden 128, MLP 384) do not divide
by 3, so every shard is uneven; the 4 groups of the step split 2/1/1, so rank 0 runs two
micro-batches and the others one real and one empty (lockstep) pass. Compared with one process
on the same global batch: the loss (rel 1e-5), every full gradient (rel 1e-5 of its norm), the
clipped gradient norm (rel 1e-5) and the updated weights (|diff| <= 1e-5 elementwise: Adam's first
step is lr * g / (|g| + eps), so entries whose gradient is near eps = 1e-8 move by float rounding;
measured 3.4e-6 at most against lr 2e-4). beta = 0.04: the reference is sharded too.
"""
import json
import sys
from pathlib import Path

import pytest
import torch

from tests.test_ddp import _run, _torchrun
from helpers import ARITHMETIC

HELPER = Path(__file__).resolve().parent / "helpers" / "fsdp_grads.py"


def test_three_process_fsdp_equals_one_process(tmp_path):
    one, three = tmp_path / "one.pt", tmp_path / "three.pt"
    alone = _run([sys.executable, str(HELPER), str(one), str(tmp_path / "r1"), "ddp"])
    assert alone.returncode == 0, alone.stderr[-3000:]
    proc = _run(_torchrun(3, str(HELPER), str(three), str(tmp_path / "r3"), "fsdp"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = torch.load(one), torch.load(three)
    assert a["world"] == 1 and b["world"] == 3 and b["shard"] == 2 and b["passes"] == 2
    assert a["tokens"] == b["tokens"], "the fixed batch must be the same in both runs"
    assert b["loss"] == pytest.approx(a["loss"], rel=1e-5, abs=1e-7)
    assert b["norm"] == pytest.approx(a["norm"], rel=1e-5) and a["norm"] > 0
    assert a["grads"].keys() == b["grads"].keys() and a["weights"].keys() == b["weights"].keys()
    for name in a["grads"]:
        diff = (a["grads"][name] - b["grads"][name]).norm()
        assert diff <= 1e-5 * max(a["grads"][name].norm(), 1e-3 * a["norm"]), (name, float(diff))
    for name in a["weights"]:
        assert (a["weights"][name] - b["weights"][name]).abs().max() <= 1e-5, name


def _zero(run: Path, *extra) -> list[str]:
    return _torchrun(2, "-m", "r1kit.cli", "zero", "--no-report", "--out", str(run), *ARITHMETIC, "grpo.prompts_per_step=3",
                     "grpo.group_size=4", "rollout.max_new_tokens=32", "eval.every=0", "log_tensorboard=false",
                     "grpo.beta=0.04", "distributed.strategy=fsdp", "checkpoint_every=1", *extra)


def test_fsdp_checkpoint_is_a_full_model_plus_optimiser_shards_and_resume_is_exact(tmp_path):
    from r1kit.runs import is_timing_key

    def rows(run):
        return [{k: v for k, v in json.loads(line).items() if not is_timing_key(k)}
                for line in (run / "metrics.jsonl").read_text().splitlines()]

    straight, split = tmp_path / "straight", tmp_path / "split"
    for cmd in (_zero(straight, "steps=2"), _zero(split, "steps=1"), _zero(split, "steps=2") + ["--resume"]):
        proc = _run(cmd)
        assert proc.returncode == 0, proc.stderr[-3000:]
    assert rows(split) == rows(straight) and len(rows(straight)) == 2
    ckpt = straight / "checkpoint-2"
    assert (ckpt / "optimizer-rank0.pt").exists() and (ckpt / "optimizer-rank1.pt").exists()
    from r1kit.models import load_model
    model = load_model(str(ckpt))  # a plain, full HF folder
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in load_model("tiny").parameters())
