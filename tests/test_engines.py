"""Rollout engines without a vLLM environment: options checked before torch loads, the torch engine
behind the interface, and endpoint failures made for real (a port nobody listens on, an interpreter
without vLLM): one line naming the server and the cause, exit 2, no traceback, no key written.
The tests against a real vLLM server are in tests/test_vllm.py (scripts/test_vllm.sh)."""
import json
import os
import socket
import subprocess
import sys

import pytest

from r1kit.config import ConfigError, load_config
from r1kit.errors import EngineError
from r1kit.grpo.config import ZeroConfig
from r1kit.rollout.config import EndpointConfig
from r1kit.sampling.config import SampleConfig

CLI = [sys.executable, "-m", "r1kit.cli"]


def closed_port_url() -> str:
    """The URL of a port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def error_line(done, command: str) -> str:
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    [line] = [line for line in done.stderr.splitlines() if line.startswith(f"r1kit {command}: ")]
    return line


@pytest.mark.parametrize("overrides, message", [
    (["rollout.engine=openai", "rollout.endpoint.url=http://x:1/v1"], "rollout.engine: openai endpoints cannot take"),
    (["rollout.engine=openai"], "rollout.endpoint.url: the openai engine needs"),
    (["rollout.engine=vllm", "distributed.backend=ray"], "rollout.engine: vllm samples with distributed.backend none"),
    (["rollout.engine=vllm", "rollout.endpoint.url=localhost:8000"], "is not an http(s) URL"),
    (["rollout.engine=sglang"], "rollout.engine"),
    (["rollout.endpoint.concurrency=0"], "rollout.endpoint.concurrency"),
])
def test_engine_options_are_checked_before_any_model_loads(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(ZeroConfig, overrides=overrides)


def test_judge_model_and_judge_endpoint_are_exclusive():
    with pytest.raises(ConfigError, match="judge_endpoint.url: give a judge model or a judge endpoint"):
        load_config(SampleConfig, overrides=["judge=tiny", "judge_endpoint.url=http://x:1/v1"])


def test_eval_through_an_engine_equals_eval_of_the_model(tiny):
    """run_eval takes a torch model or an engine; the torch engine gives the same samples."""
    from r1kit.eval import EvalConfig, run_eval
    from r1kit.rollout.engines import EngineSetup, make_engine

    model, tok = tiny
    cfg = EvalConfig(limit=6, k=2, max_new_tokens=24, seed=3)
    direct = run_eval(model, tok, cfg, progress=False)
    engine = make_engine("torch", EngineSetup(tok, lambda: model, batch_size=cfg.batch_size * cfg.k))
    through = run_eval(engine, tok, cfg, progress=False)
    assert {k: v for k, v in through.items() if k != "seconds"} == {k: v for k, v in direct.items() if k != "seconds"}


def test_eval_against_a_dead_endpoint_is_one_line(tmp_path):
    url = closed_port_url()
    done = subprocess.run(CLI + ["eval", "--endpoint", url, "--endpoint-model", "m", "--limit", "2",
                                 "--out", str(tmp_path / "e"), "endpoint.max_retries=0", "endpoint.timeout=5"],
                          capture_output=True, text=True, timeout=300)
    line = error_line(done, "eval")
    assert f"endpoint {url}: APIConnectionError" in line, line


def test_sample_from_a_dead_teacher_keeps_the_key_out_of_every_file(tmp_path):
    secret = "sk-r1kit-test-not-a-real-key"
    out = tmp_path / "s"
    done = subprocess.run(CLI + ["sample", "--teacher-url", closed_port_url(), "--teacher-model", "m", "--limit", "2",
                                 "--out", str(out), "endpoint.max_retries=1", "endpoint.timeout=5"],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "OPENAI_API_KEY": secret})
    line = error_line(done, "sample")
    assert "APIConnectionError" in line and line.endswith("continue with the same r1kit sample command and --resume")
    recorded = json.loads((out / "config.json").read_text())
    assert recorded["engine"] == "openai" and recorded["endpoint"]["api_key_env"] == "OPENAI_API_KEY"
    for path in out.rglob("*"):
        if path.is_file():
            assert secret not in path.read_text(errors="replace"), path
    assert secret not in done.stdout + done.stderr


def test_a_vllm_server_that_cannot_start_names_its_log(tmp_path, tiny_path):
    """The interpreter has no vLLM: the server exits at once; the error quotes its log's last lines."""
    from r1kit.rollout.vllm import VLLMServer

    log = tmp_path / "server.log"
    with pytest.raises(EngineError, match=r"exited with status 1 while starting; .*server.log: .*No module named"):
        VLLMServer(EndpointConfig(python=sys.executable, startup_timeout=120), tiny_path, "float32", log)


def test_a_missing_server_interpreter_is_named(tmp_path, tiny_path):
    from r1kit.rollout.vllm import VLLMServer

    with pytest.raises(EngineError, match="endpoint.python: cannot start '/nonexistent/python'"):
        VLLMServer(EndpointConfig(python="/nonexistent/python"), tiny_path, "float32", tmp_path / "log")
