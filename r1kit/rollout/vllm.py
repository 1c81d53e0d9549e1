"""The ``vllm`` engine: a vLLM server samples, the trainer pushes its weights after every step.

:class:`VLLMServer` starts ``python -m vllm.entrypoints.openai.api_server`` with the interpreter
``endpoint.python`` (vLLM lives in its own environment: it pins its own torch and transformers),
on 127.0.0.1 and a free port, with r1kit's worker extension (``vllm_worker/r1kit_vllm_worker.py``,
put on the server's ``PYTHONPATH``) and its log in a file; it waits for ``/health`` and stops the
server (its whole process group) on :meth:`close`. A server that exits or does not answer within
``endpoint.startup_timeout`` is an :class:`EngineError` with the last lines of its log.

:class:`VLLMEngine` talks to it (or to a server at ``endpoint.url`` started the same way by the
user) through the OpenAI API with token ids in and out (``prompt`` as ids,
``return_tokens_as_token_ids``), so the tokens trained on are exactly the tokens sampled, and
per-token log-probs of ``log softmax(logits / T)`` (``--logprobs-mode processed_logprobs``; with
top-p/top-k below their defaults vLLM's are of the filtered distribution, r1kit's torch engine's
of the full one).

Weights: :meth:`VLLMEngine.update_weights` writes the sampling copy's weights as safetensors to a
temporary folder (in ``/dev/shm`` when there is one), then ``/pause`` (waiting for requests in
flight), ``/collective_rpc`` ``r1kit_load_weights(folder, version)``, ``/reset_prefix_cache``,
``/resume``. Before every generation it asks the server which version it holds and refuses to
sample with any other (a server restarted behind r1kit's back, or a push that failed), so a step is
never trained on samples of unknown weights. The transfer goes through files: on one GPU machine
that is the same path; NCCL transfer between GPUs is not implemented.

Multi-turn episodes (``environment``): the first turns of a prompt's ``n`` episodes are one request
that also stops at the environment's ``call_end`` tag (stop strings are kept in the output, as the
torch engine keeps them); each episode that closed a call gets its observation's ids (tokenised
once, log-prob 0, mask 0) and continues alone from its whole context as token ids, which the
server's prefix cache already holds. The budget, ``max_turns`` and the finish reasons are the torch
engine's.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import torch

from r1kit.errors import EngineError
from r1kit.rollout.config import EndpointConfig
from r1kit.rollout.endpoint import OpenAIEngine
from r1kit.rollout.engine import Rollout, SamplingParams, mix_seeds, observation_ids
from r1kit.rollout.engines import EngineSetup

WORKER_DIR = Path(__file__).parent / "vllm_worker"
SERVED_NAME = "r1kit"
LOG_TAIL_LINES = 12


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file, joined by `` | `` (for a one-line error)."""
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(line.strip() for line in text[-lines:] if line.strip())


def stop_with_parent() -> None:
    """Run in the server's process before it starts vLLM: SIGTERM when the process that started it
    dies (Linux ``PR_SET_PDEATHSIG``), so a trainer killed by SIGKILL or the OOM killer does not leave
    a server holding the machine's memory and cores. (The signal follows the *thread* that started
    the server: engines are built on the main thread.)"""
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the server outlives a killed parent
        pass


class VLLMServer:
    """A vLLM OpenAI-compatible server in its own process group (see the module docstring)."""

    def __init__(self, endpoint: EndpointConfig, model_path: str, dtype: str, log_path: Path):
        self.log_path, self.port = Path(log_path), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [endpoint.python, "-m", "vllm.entrypoints.openai.api_server", "--model", model_path,
                   "--served-model-name", endpoint.model or SERVED_NAME, "--host", "127.0.0.1",
                   "--port", str(self.port), "--dtype", dtype, "--seed", "0",
                   "--worker-extension-cls", "r1kit_vllm_worker.WeightSync",
                   "--logprobs-mode", "processed_logprobs", *endpoint.server_args]
        if "--enable-chunked-prefill" not in endpoint.server_args:
            # vLLM's CPU build crashes on a seeded request whose prefill was split into chunks
            # ("CPU Generator does not use offset"): whole prefills keep per-request seeds working
            command.append("--no-enable-chunked-prefill")
        env = {**os.environ, "VLLM_SERVER_DEV_MODE": "1",
               "PYTHONPATH": os.pathsep.join(filter(None, [str(WORKER_DIR), os.environ.get("PYTHONPATH")]))}
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB of KV cache on a CPU server (ignored on GPUs)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            try:
                self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                                start_new_session=True, preexec_fn=stop_with_parent)
            except OSError as exc:
                raise EngineError(f"endpoint.python: cannot start {endpoint.python!r} ({exc.strerror})") from None
        self._wait_ready(endpoint.startup_timeout)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise EngineError(f"the vLLM server exited with status {self.process.returncode} while starting; "
                                  f"{self.log_path}: {log_tail(self.log_path)}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=5) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(1.0)
        self.close()
        raise EngineError(f"the vLLM server did not answer within endpoint.startup_timeout={timeout:g} s; "
                          f"{self.log_path}: {log_tail(self.log_path)}")

    def exited(self) -> str | None:
        """Why the server is gone (None while it runs)."""
        if self.process.poll() is None:
            return None
        return f"the vLLM server exited with status {self.process.returncode}; {self.log_path}: {log_tail(self.log_path)}"

    def close(self) -> None:
        """Stop the server and its workers (SIGTERM to the process group, SIGKILL after 30 s)."""
        for signal, wait in ((15, 30), (9, None)):
            if self.process.poll() is not None:
                return
            try:
                os.killpg(self.process.pid, signal)
                self.process.wait(timeout=wait)
            except ProcessLookupError:
                return
            except subprocess.TimeoutExpired:
                continue


class VLLMEngine(OpenAIEngine):
    """Samples with a vLLM server, token ids in and out, and takes new weights (module docstring).

    model: the sampling copy whose weights :meth:`update_weights` pushes (the trainer refreshes it
    in place after every optimiser step; with LoRA the adapters are merged into it). model_path: the
    folder the server starts from (its config and tokenizer). log_path: the server's log.
    """

    def __init__(self, endpoint: EndpointConfig, tokenizer, model: torch.nn.Module | None, model_path: str,
                 dtype: str = "float32", log_path: Path | str = "vllm-server.log"):
        self.server = None if endpoint.url else VLLMServer(endpoint, model_path, dtype, Path(log_path))
        base = endpoint.url or f"{self.server.url}/v1"
        try:
            super().__init__(endpoint, tokenizer, url=base, model=endpoint.model or (SERVED_NAME if self.server else ""))
        except BaseException:
            self.close()
            raise
        self.root = self.url[: -len("/v1")] if self.url.endswith("/v1") else self.url
        self.sampling_model = model
        self.version = self._server_version()

    @classmethod
    def build(cls, setup: EngineSetup) -> "VLLMEngine":
        model = setup.load_model() if setup.trains else None
        return cls(setup.endpoint, setup.tokenizer, model, setup.model_path, setup.dtype, setup.log_path)

    # ---- the server's control endpoints (VLLM_SERVER_DEV_MODE) -------------------------------------
    def _post(self, path: str, body: dict | None = None):
        request = urllib.request.Request(self.root + path, json.dumps(body or {}).encode(),
                                         {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.endpoint.timeout) as answer:
                raw = answer.read()
        except (urllib.error.URLError, OSError) as exc:
            raise EngineError(self.describe_failure(exc)) from None
        return json.loads(raw) if raw.strip() else None

    def _rpc(self, method: str, *args):
        answer = self._post("/collective_rpc", {"method": method, "args": list(args)})
        return answer["results"][0]

    def _server_version(self) -> int:
        return int(self._rpc("r1kit_weight_version"))

    def describe_failure(self, exc: Exception) -> str:
        gone = self.server.exited() if getattr(self, "server", None) else None
        return gone or f"vLLM server {self.url}: {type(exc).__name__}: {str(exc)[:300]}"

    # ---- the engine interface ----------------------------------------------------------------------
    def request(self, prompt, params: SamplingParams, seed: int | None) -> dict:
        """``prompt``: a text, or the token ids of a context (an episode's next turn)."""
        ids = prompt if isinstance(prompt, list) else self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        args = super().request(ids, params, seed)
        extra = {**args.pop("extra_body", {}), "return_tokens_as_token_ids": True, "skip_special_tokens": True,
                 "ignore_eos": params.ignore_eos, "include_stop_str_in_output": True}
        return {**args, "logprobs": 0, "extra_body": extra}

    def generate(self, prompts, params, prompt_seeds=None, progress=None, environment=None,
                 examples=None) -> list[Rollout]:
        held = self._server_version()
        if held != self.version:
            raise EngineError(f"vLLM server {self.url} holds the weights of step {held}, not {self.version}: "
                              "refusing to sample with unknown weights")
        return super().generate(prompts, params, prompt_seeds, progress, environment, examples)

    def episodes(self, index, prompt, params, seed, environment, example) -> list[Rollout]:
        """The ``params.n`` episodes of prompt ``index``: the first turns in one request, then each
        episode on its own (module docstring)."""
        prompt_ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        turn = replace(params, stop=[*params.stop, environment.call_end])
        firsts = self.complete(index, prompt_ids, turn, seed)

        def go_on(j: int) -> Rollout:
            return self._episode(index, prompt_ids, firsts[j], params, None if seed is None else mix_seeds(seed, j),
                                 environment, example)

        with ThreadPoolExecutor(len(firsts)) as pool:  # a tool call holds its own episode only
            return list(pool.map(go_on, range(len(firsts))))

    def _episode(self, index: int, prompt_ids: list[int], first: Rollout, params: SamplingParams,
                 seed: int | None, environment, example: dict) -> Rollout:
        """One episode from its first turn: observation after each closed call, then the next turn."""
        budget, turn = params.max_new_tokens, replace(params, n=1, stop=[*params.stop, environment.call_end])
        ids, logprobs, mask = list(first.token_ids), list(first.logprobs), [1] * len(first.token_ids)
        last, finish, calls, errors, turns = first, first.finish_reason, 0, 0, 1
        while finish == "stop" and len(ids) < budget:
            text = self.tokenizer.decode(last.token_ids)
            if any(stop in text for stop in params.stop) or environment.call_end not in text:
                break  # a stop string of the run's own ends the episode
            observation = environment.step(text, example) if turns < environment.max_turns else None
            if observation is None:
                finish = "turns"
                break
            calls, errors, turns = calls + 1, errors + int(observation.error), turns + 1
            seen = observation_ids(self.tokenizer, observation.text, budget - len(ids))
            ids, logprobs, mask = ids + seen, logprobs + [0.0] * len(seen), mask + [0] * len(seen)
            if len(ids) >= budget:
                break
            last = self.complete(index, prompt_ids + ids, replace(turn, max_new_tokens=budget - len(ids)),
                                 None if seed is None else mix_seeds(seed, turns))[0]
            ids, logprobs, mask = ids + last.token_ids, logprobs + last.logprobs, mask + [1] * len(last.token_ids)
            finish = last.finish_reason
        if finish == "stop" and len(ids) >= budget and \
                not any(stop in self.tokenizer.decode(last.token_ids) for stop in params.stop):
            finish = "length"  # as the torch engine: a call or an observation that ends at the budget
        text = self.tokenizer.decode(ids[:-1] if finish == "eos" else ids)
        return Rollout(index, ids, logprobs, text, finish, mask, calls, errors, turns)

    def rollout(self, index: int, choice) -> Rollout:
        ids = [int(token.rsplit(":", 1)[1]) for token in choice.logprobs.tokens]  # "token_id:17"
        logprobs = [float(lp) for lp in choice.logprobs.token_logprobs]
        finish = "length" if choice.finish_reason == "length" else \
            "eos" if ids and ids[-1] == self.tokenizer.eos_token_id else "stop"
        return Rollout(index, ids, logprobs, choice.text, finish)

    def update_weights(self, policy: torch.nn.Module, version: int) -> None:
        """Push the sampling copy's weights (``policy`` when the engine was given no copy)."""
        from safetensors.torch import save_file

        model = self.sampling_model if self.sampling_model is not None else policy
        folder = Path(tempfile.mkdtemp(prefix="r1kit-weights-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
        try:
            tied = getattr(model.config, "tie_word_embeddings", False)
            state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()
                     if not (tied and k == "lm_head.weight")}
            save_file(state, str(folder / "model.safetensors"))
            self._post("/pause?mode=wait")
            try:
                self.version = int(self._rpc("r1kit_load_weights", str(folder), version))
                self._post("/reset_prefix_cache")
            finally:
                self._post("/resume")
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def close(self) -> None:
        if getattr(self, "server", None) is not None:
            self.server.close()
            self.server = None
