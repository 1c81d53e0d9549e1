"""Environments and multi-turn episodes: the built-in tools, the registry, the torch decode loop's
episodes on the real tiny model (masks, forced observation ids, log-probs equal to a teacher-forced
recomputation, continuous batching), the loss mask, the probes, the options."""
import random
import subprocess
import sys
import threading
import time

import pytest
import torch

from r1kit.config import ConfigError, load_config
from r1kit.environments import (ENVIRONMENTS, Environment, ToolConfig, check_environment, check_environment_options,
                                make_environment, register_environment)
from r1kit.environments.calculator import calculate, show
from r1kit.eval.probes import tool_probes
from r1kit.grpo.config import ZeroConfig

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
import helpers.think_env  # noqa: E402,F401  (registers test_think)
from helpers import ARITHMETIC


@pytest.mark.parametrize("expr, value", [("1234 * 5678", "7006652"), ("2 + 3 * 4", "14"), ("(2 + 3) * 4", "20"),
                                         ("7 / 2 - 1", "5/2"), ("-2 ^ 2", "-4"), ("2 ** 3 ** 2", "512"),
                                         ("1.5 * 4", "6"), ("10 ÷ 4 × 2", "5"), ("0.1 + 0.2", "3/10")])
def test_calculator_is_exact(expr, value):
    assert show(calculate(expr)) == value


@pytest.mark.parametrize("turn, needle", [("<calc>1/0</calc>", "division by zero"),
                                          ("<calc>__import__('os')</calc>", "unexpected"),
                                          ("<calc>2 ** 1000</calc>", "exponent"),
                                          ("<calc>" + "9" * 199 + " * 99</calc>", "longer than"),
                                          ("<calc>(1 + 2</calc>", "end of expression"),
                                          ("1 + 2</calc>", "no <calc> before </calc>")])
def test_calculator_failures_are_error_observations(turn, needle):
    obs = make_environment("calculator").step(turn, {})
    assert obs.error and needle in obs.text and obs.text.startswith("<output> error:")


def test_calculator_reads_the_last_call_of_the_turn():
    obs = make_environment("calculator").step(" <think> <calc>1 + 1</calc> no, <calc>3 * 3</calc>", {})
    assert obs.text == "<output> 9 </output>" and not obs.error


def test_python_tool_runs_in_the_sandbox_and_bounds_failures():
    env = make_environment("python", ToolConfig(timeout=1.0, max_output_chars=40))
    assert env.step("<python>print(6 * 7)</python>", {}).text == "<output>42\n</output>"
    failed = env.step("<python>1 / 0</python>", {})
    assert failed.error and "ZeroDivisionError" in failed.text
    start = time.monotonic()
    hung = env.step("<python>while True: pass</python>", {})
    assert hung.error and "timeout after 1 s" in hung.text and time.monotonic() - start < 10
    huge = env.step("<python>print('x' * 10_000_000)</python>", {})
    assert huge.error and "more characters cut" in huge.text and len(huge.text) < 120


def test_a_raising_environment_gives_an_error_observation():
    class Broken(Environment):
        def run(self, call, example):
            raise KeyError("boom")

    obs = Broken().step("<tool>x</tool>", {})
    assert obs.error and "KeyError" in obs.text


def test_registry_and_options():
    assert {"calculator", "python", "test_think"} <= set(ENVIRONMENTS)
    assert make_environment("none") is None
    with pytest.raises(ConfigError, match="environment: unknown environment 'nope'"):
        check_environment("nope")
    with pytest.raises(ConfigError, match="environment: unknown environment 'nope'"):
        load_config(ZeroConfig, None, ["environment=nope"])
    with pytest.raises(ConfigError, match="environment_modules: cannot import 'no_such_module'"):
        load_config(ZeroConfig, None, ["environment_modules=[no_such_module]"])
    assert load_config(ZeroConfig, None, ["environment=calculator", "distributed.backend=ray"]).environment == "calculator"
    with pytest.raises(ConfigError, match="environment: calculator: tool episodes need token ids in and out, "
                                          "which the openai engine does not give"):
        check_environment_options("calculator", [], "openai")
    with pytest.raises(ConfigError, match="tools.max_turns"):
        load_config(ZeroConfig, None, ["environment=calculator", "tools.max_turns=0"])
    cfg = load_config(ZeroConfig, None, ["environment=test_think", "environment_modules=[helpers.think_env]"])
    assert cfg.environment == "test_think"


def test_a_bad_environment_is_refused_before_torch_loads():
    code = ("import sys; from r1kit.cli import main; rc = main(sys.argv[1:]); "
            "print('torch loaded' if 'torch' in sys.modules else 'torch not loaded'); sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code, "zero", "environment=calculater"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and "torch not loaded" in proc.stdout
    assert "environment: unknown environment 'calculater'" in proc.stderr and "Traceback" not in proc.stderr


def test_tool_probes_on_hand_counted_responses():
    got = tool_probes(calls=[0, 1, 2, 0], errors=[0, 1, 0, 0], turns=[1, 2, 3, 1], correct=[False, True, True, True])
    assert got == {"tool_call_rate": 0.5, "tool_calls_mean": 0.75, "tool_error_rate": 1 / 3,
                   "accuracy_with_tool": 1.0, "accuracy_without_tool": 0.5, "turns_mean": 1.75}
    assert tool_probes([0], [0], [1], [True])["tool_error_rate"] is None


EXAMPLES = [{"problem": "Compute 3 + 4 - 2", "answer": "5"}, {"problem": "Compute 12 + 7", "answer": "19"},
            {"problem": "Compute 8 - 6 + 1", "answer": "3"}]


def _episodes(tiny, batch_size=0, max_turns=3, max_new=80, env_name="test_think", overlap=4):
    from r1kit.prompts import build_prompt
    from r1kit.rollout import SamplingParams, sample

    model, tok = tiny
    env = ENVIRONMENTS[env_name](ToolConfig(max_turns=max_turns, overlap_steps=overlap))
    prompts = [build_prompt(ex["problem"]) for ex in EXAMPLES]
    params = SamplingParams(n=4, max_new_tokens=max_new, seed=0)
    return sample(model, tok, prompts, params, batch_size=batch_size, environment=env, examples=EXAMPLES), prompts


@pytest.fixture(scope="module")
def episodes(tiny):
    """The default episodes (3 prompts x 4 samples, 3 turns, 80 tokens), sampled once for the module."""
    return _episodes(tiny)


def _runs(ids, mask):
    """The runs of consecutive masked (observation) ids."""
    runs, current = [], []
    for t, m in zip(ids, mask):
        if not m:
            current.append(t)
        elif current:
            runs.append(current)
            current = []
    return runs + ([current] if current else [])


def test_episodes_force_observation_ids_and_mask_them(tiny, episodes):
    _, tok = tiny
    rollouts, _ = episodes
    assert sum(r.tool_calls for r in rollouts) >= 8  # the tiny model closes </think> almost always
    for r in rollouts:
        assert len(r.policy_mask) == len(r.token_ids) == len(r.logprobs) <= 80
        assert r.turns <= 3 and r.tool_calls <= r.turns
        answer = EXAMPLES[r.prompt_index]["answer"]
        observations = [tok(text, add_special_tokens=False)["input_ids"]  # what the environment can answer
                        for text in (f"<output>{answer}</output>", "<output>error: no <think> before </think></output>")]
        runs = _runs(r.token_ids, r.policy_mask)
        assert len(runs) == r.tool_calls
        for k, run in enumerate(runs):  # the ids, verbatim (the last one may be cut by the budget)
            cut = k == len(runs) - 1 and len(r.token_ids) == 80
            assert any(run == obs or (cut and obs[: len(run)] == run) for obs in observations), tok.decode(run)
        assert all(lp == 0.0 for lp, m in zip(r.logprobs, r.policy_mask) if not m)
        assert all(lp < 0.0 for lp, m in zip(r.logprobs, r.policy_mask) if m)
        assert r.policy_tokens == sum(r.policy_mask)
        assert r.tool_errors >= r.tool_calls * (int(answer) % 2)


def test_episode_logprobs_equal_a_teacher_forced_recomputation(tiny, episodes):
    from r1kit.models.logprobs import completion_logprobs, make_group_batch

    model, tok = tiny
    rollouts, prompts = episodes
    batch = make_group_batch([tok(p, add_special_tokens=False)["input_ids"] for p in prompts],
                             [r.token_ids for r in rollouts], 4, tok.eos_token_id)
    with torch.no_grad():
        logp, _ = completion_logprobs(model, batch, 1.0)                                   # [B, Wc]
    worst = max(abs(lp - logp[j, k].item()) for j, r in enumerate(rollouts)
                for k, (lp, m) in enumerate(zip(r.logprobs, r.policy_mask)) if m)
    assert worst < 1e-4


def test_continuous_batching_keeps_episodes_identical(tiny, episodes):
    whole, _ = episodes
    for batch_size in (4,):  # one prompt (4 rows) at a time: every later prompt is spliced in
        rows, _ = _episodes(tiny, batch_size=batch_size)
        assert [(r.token_ids, r.policy_mask, r.tool_calls) for r in rows] == \
               [(r.token_ids, r.policy_mask, r.tool_calls) for r in whole]


@register_environment("test_slow_think")
class SlowThink(ENVIRONMENTS["test_think"]):
    """``test_think`` whose calls take 0-60 ms (drawn at random) and note how many calls run at once."""

    lock, running, most = threading.Lock(), 0, 0

    def run(self, call, example):
        with self.lock:
            SlowThink.running += 1
            SlowThink.most = max(SlowThink.most, SlowThink.running)
        time.sleep(random.random() * 0.06)
        with self.lock:
            SlowThink.running -= 1
        return super().run(call, example)


def test_episodes_depend_neither_on_the_overlap_nor_on_how_long_a_call_takes(tiny, episodes):
    """A call runs in the background while the batch decodes on (``tools.overlap_steps``); the row
    idles in masked columns, so the episodes are the same whatever the overlap and the calls' durations."""
    whole, _ = episodes  # overlap 4, instant calls
    key = [(r.token_ids, r.policy_mask, r.tool_calls, r.finish_reason) for r in whole]
    SlowThink.most = 0
    for overlap in (0, 12):
        rows, _ = _episodes(tiny, env_name="test_slow_think", overlap=overlap)
        assert [(r.token_ids, r.policy_mask, r.tool_calls, r.finish_reason) for r in rows] == key
        gap = max(abs(a - b) for x, y in zip(rows, whole) for a, b in zip(x.logprobs, y.logprobs))
        assert gap < 1e-5, gap
    assert SlowThink.most >= 2  # calls of different rows ran at the same time: no call held the batch


def test_one_turn_episodes_call_nothing_and_single_turn_has_no_mask(tiny):
    from r1kit.prompts import build_prompt
    from r1kit.rollout import SamplingParams, sample

    model, tok = tiny
    one, _ = _episodes(tiny, max_turns=1)
    assert all(r.tool_calls == 0 and all(r.policy_mask) for r in one)
    assert sum(r.finish_reason == "turns" for r in one) >= 8  # a call in the last turn ends the episode
    plain = sample(model, tok, [build_prompt(ex["problem"]) for ex in EXAMPLES], SamplingParams(n=4, max_new_tokens=80, seed=0))
    assert all(r.policy_mask is None and r.policy_tokens == len(r.token_ids) for r in plain)


def test_per_token_loss_weights_equal_the_policy_mask(tiny, episodes):
    from r1kit.grpo import core
    from r1kit.grpo.sources import Group
    from r1kit.grpo.step import micro_batches

    _, tok = tiny
    rollouts, prompts = episodes
    groups = [Group(EXAMPLES[i], tok(prompts[i], add_special_tokens=False)["input_ids"], rollouts[4 * i: 4 * i + 4],
                    [float(j % 2) for j in range(4)], [{}] * 4) for i in range(3)]
    (mb,) = micro_batches(groups, tok.eos_token_id, 1 << 20, mask_truncated=False)
    expected = torch.zeros_like(mb.loss_mask)
    for j, row in enumerate(mb.rows.tolist()):
        mask = rollouts[row].policy_mask
        expected[j, : len(mask)] = torch.tensor(mask, dtype=torch.float)
    assert torch.equal(mb.loss_mask, expected)
    # the gradient of the loss reaches exactly the policy's tokens (token-mean: every weight 1 / tokens)
    logp = torch.full(mb.loss_mask.shape, -1.0, requires_grad=True)
    advantages = torch.ones(len(mb.rows))
    loss, _ = core.grpo_loss(logp, logp.detach(), None, advantages, mb.loss_mask, agg="token-mean")
    loss.backward()
    weights = -logp.grad * mb.loss_mask.sum()
    assert torch.allclose(weights, mb.loss_mask)


def test_zero_with_an_environment_logs_the_tool_probes(tmp_path):
    import json

    from r1kit.grpo.trainer import GRPOTrainer

    cfg = load_config(ZeroConfig, None, [
        *ARITHMETIC, "grpo.prompts_per_step=2", "grpo.group_size=4", "rollout.max_new_tokens=64", "eval.limit=4", "eval.k=2",
        "eval.max_new_tokens=64", "log_tensorboard=false", "steps=1", "eval.every=1", "environment=test_think",
        "environment_modules=[helpers.think_env]", f"out={tmp_path / 'run'}"])
    GRPOTrainer(cfg, progress=False).train()
    row = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    assert row["tool_call_rate"] > 0 and row["turns_mean"] > 1 and "tool_calls_mean" in row
    assert row["response_length/mean"] < 64  # policy tokens only: observations are not counted
    evals = [json.loads(line) for line in (tmp_path / "run" / "eval.jsonl").read_text().splitlines()]
    assert all("tool_call_rate" in e for e in evals)


def test_calculator_task_sets():
    from r1kit.data import calc
    from r1kit.environments.calculator import calculate

    test = calc.test_set(200)
    train = calc.train_set(2000, tool_rate=0.04)
    assert not {ex["problem"] for ex in test} & {ex["problem"] for ex in train}
    assert all(show(calculate(ex["problem"].removeprefix("Compute "))) == ex["answer"] for ex in test + train)
    tools = [ex for ex in train if ex["style"] == "tool"]
    assert 0.02 < len(tools) / len(train) < 0.06
    env = make_environment("calculator")
    for ex in tools[:20]:  # the corpus's calls read exactly what the environment answers
        call, rest = ex["solution"].split("</calc>")
        assert rest.startswith(env.step(call + "</calc>", ex).text)


def test_tools_recipe_loads_with_the_shipped_calculator_base():
    """recipes/zero_tools.yaml validates; its model, tiny-calc, is the shipped base, whose tokenizer
    has the calculator's tags as whole tokens (a turn ends on the token ``</calc>``)."""
    from pathlib import Path

    from transformers import AutoTokenizer

    from r1kit.models import resolve_model_path

    cfg = load_config(ZeroConfig, Path(__file__).resolve().parents[1] / "recipes" / "zero_tools.yaml", [])
    assert (cfg.model, cfg.environment, cfg.data, cfg.seed, cfg.threads) == ("tiny-calc", "calculator",
                                                                             "synthetic_calc", 0, 1)
    path = resolve_model_path(cfg.model)
    assert Path(path).name == "tiny-calc-base" and "assets" in Path(path).parts
    tokenizer = AutoTokenizer.from_pretrained(path)
    for tag in ("<calc>", "</calc>", "<output>", "</output>"):
        assert len(tokenizer(tag, add_special_tokens=False)["input_ids"]) == 1, tag
