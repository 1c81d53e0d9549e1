"""The thread policy: passive waiting before torch loads, and numbers that do not depend on it."""
import json
import os
import subprocess
import sys

PROBE = """
import hashlib, json, os, sys
import r1kit
import torch
from r1kit.threads import apply
from r1kit.models import load_model, load_tokenizer
from r1kit.rollout import SamplingParams, sample
count = apply(0)
torch.manual_seed(0)
model, tok = load_model("tiny"), load_tokenizer("tiny")
rs = sample(model, tok, ["Compute 3 + 4", "Compute 9 - 1 + 5"], SamplingParams(n=4, max_new_tokens=24, seed=3))
loss = model(torch.tensor([rs[0].token_ids + rs[1].token_ids]), labels=torch.tensor([rs[0].token_ids + rs[1].token_ids])).loss
loss.backward()
digest = hashlib.sha256(json.dumps([r.token_ids for r in rs] + [r.logprobs for r in rs]).encode())
for p in model.parameters():
    digest.update(p.grad.numpy().tobytes())
print(json.dumps({"wait": os.environ.get("OMP_WAIT_POLICY"), "threads": count,
                  "interop": torch.get_num_interop_threads(), "digest": digest.hexdigest()}))
"""


def _probe(**env) -> dict:
    full = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "KMP_BLOCKTIME")}
    out = subprocess.run([sys.executable, "-c", PROBE], env={**full, **env}, capture_output=True, text=True,
                         check=True, timeout=600)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_passive_waiting_changes_no_number():
    """Importing r1kit sets passive waiting before torch loads; sampled tokens, log-probs and
    gradients are bit-for-bit those of torch's spinning default (the policy turned off)."""
    from r1kit.threads import cpu_budget

    policy, spinning = _probe(), _probe(R1KIT_THREAD_POLICY="0")
    assert policy["wait"] == "PASSIVE" and spinning["wait"] is None
    assert policy["interop"] == 1
    assert policy["threads"] == spinning["threads"] <= cpu_budget()
    assert policy["digest"] == spinning["digest"]
