"""The thread policy: a governor that gives way to other processes, and numbers that do not depend
on the thread count it picks."""
import json
import os
import subprocess
import sys
import time

import pytest
import torch

from r1kit import threads

PROBE = """
import hashlib, json, os, sys
import torch
from r1kit.threads import apply
from r1kit.models import load_model, load_tokenizer
from r1kit.rollout import SamplingParams, sample
count = apply(int(sys.argv[1]))
torch.manual_seed(0)
model, tok = load_model("tiny"), load_tokenizer("tiny")
rs = sample(model, tok, ["Compute 3 + 4", "Compute 9 - 1 + 5"], SamplingParams(n=4, max_new_tokens=24, seed=3))
loss = model(torch.tensor([rs[0].token_ids + rs[1].token_ids]), labels=torch.tensor([rs[0].token_ids + rs[1].token_ids])).loss
loss.backward()
digest = hashlib.sha256(json.dumps([r.token_ids for r in rs]).encode())
for p in model.parameters():
    digest.update(p.grad.numpy().tobytes())
print(json.dumps({"threads": count, "interop": torch.get_num_interop_threads(), "digest": digest.hexdigest(),
                  "logprobs": [r.logprobs for r in rs]}))
"""


def _probe(threads_option: int, **env) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, str(threads_option)], env={**os.environ, **env},
                         capture_output=True, text=True, check=True, timeout=600)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_thread_count_changes_only_last_bits_on_the_tiny_model():
    """Sampled tokens and gradients are bit for bit the same with 1 and 2 threads and with the
    policy off; the sampled log-probs agree to 1e-5 (the cached forward's sums split differently)."""
    one, two, off = _probe(1), _probe(2), _probe(2, R1KIT_THREAD_POLICY="0")
    assert (one["threads"], two["threads"]) == (1, 2)
    assert two["interop"] == 1
    assert one["digest"] == two["digest"] == off["digest"]
    assert two["logprobs"] == off["logprobs"]  # same count: bit for bit
    pairs = [(a, b) for ra, rb in zip(one["logprobs"], two["logprobs"]) for a, b in zip(ra, rb)]
    assert pairs and max(abs(a - b) for a, b in pairs) < 1e-5


def test_free_cpus_counts_a_cpu_taken_above_the_threshold():
    assert [threads.free_cpus(2, x) for x in (0.0, 0.4, 0.6, 0.7, 1.5, 1.7, 3.0)] == [2, 2, 2, 1, 1, 1, 1]
    assert [threads.free_cpus(8, x) for x in (0.5, 1.0, 2.65, 7.9)] == [8, 7, 5, 1]


def test_auto_is_capped_by_the_cpus_and_governed():
    count = threads.apply(0)
    try:
        assert 1 <= count <= threads.cpu_budget()
        assert threads.governor() is not None and threads.governor().ceiling == count
        threads.apply(1)
        assert threads.governor() is None and torch.get_num_threads() == 1
    finally:
        threads.apply(0)


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or not os.path.exists("/proc/stat"),
                    reason="the governor reads /proc/stat (Linux)")
def test_governor_gives_way_to_busy_processes():
    """With as many busy processes as CPUs, the governor measures them and drops to one thread."""
    cpus = os.sched_getaffinity(0)
    gov = threads.Governor(ceiling=max(2, len(cpus)), cpus=cpus, interval=0.3)
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in cpus]
    try:
        time.sleep(0.5)
        gov.reset()
        a = torch.randn(256, 256)
        deadline = time.perf_counter() + 2.0
        while time.perf_counter() < deadline:
            a = torch.tanh(a @ a)
            gov.tick()
        # one busy process per CPU beside our threads: they get at least half of every CPU
        assert gov.others > 0.4 * len(cpus), gov.others
        assert gov.count == min(gov.ceiling, threads.free_cpus(len(cpus), gov.others))
        assert torch.get_num_threads() == gov.count
        assert gov.count < len(cpus) or len(cpus) == 1
    finally:
        for p in busy:
            p.kill()
            p.wait()
        threads.apply(0)
