"""Ray rollout and reward workers on a real local Ray cluster (127.0.0.1, CPU actors).

Every test here drives real Ray processes: actors are killed with SIGKILL by PID, rewards exit the
worker process or hang, and the trainer runs end to end with ``distributed.backend=ray``.
"""
import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from r1kit.config import load_config  # noqa: E402
from r1kit.grpo.config import ZeroConfig  # noqa: E402
from r1kit.grpo.trainer import GRPOTrainer  # noqa: E402
from r1kit.rewards import RewardStats  # noqa: E402
from helpers import ARITHMETIC

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
SMALL = [*ARITHMETIC, "grpo.prompts_per_step=4", "grpo.group_size=4", "rollout.max_new_tokens=48", "eval.every=0",
         "log_tensorboard=false", "distributed.backend=ray", "distributed.rollout_actors=2",
         "distributed.reward_workers=1"]


@pytest.fixture(scope="module")
def cluster():
    """A private Ray cluster for this module; workers import r1kit and the test helpers from here."""
    path = os.pathsep.join([str(ROOT), str(TESTS), *filter(None, [os.environ.get("PYTHONPATH")])])
    ray.init(address="local", num_cpus=4, include_dashboard=False, _node_ip_address="127.0.0.1",
             runtime_env={"env_vars": {"PYTHONPATH": path, "OMP_NUM_THREADS": "1"}}, log_to_driver=False)
    yield
    ray.shutdown()


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _prompts(tiny_path, n):
    from r1kit.data import synthetic
    from r1kit.models import load_tokenizer
    from r1kit.prompts import build_prompt

    tok = load_tokenizer(tiny_path)
    return [build_prompt(ex["problem"], "r1_zero", tok) for ex in synthetic.train_set(n, seed=5)]


def test_killed_rollout_actor_is_replaced_and_its_prompts_requeued(cluster, tiny, tiny_path):
    from r1kit.distributed.ray_rollout import RayRollout, make_tasks
    from r1kit.rollout import SamplingParams

    model, _ = tiny
    rollout = RayRollout(tiny_path, "float32", 2, actor_cpus=1, threads=1)
    rollout.push_weights(model, 7)
    pids = rollout.pids()
    tasks = make_tasks(list(range(100, 108)), _prompts(tiny_path, 8), 2, seed=3, min_version=7)
    params = SamplingParams(n=4, max_new_tokens=40)
    clean = rollout.collect(rollout.submit(tasks, params))
    pending = rollout.submit(tasks, params)
    time.sleep(0.05)  # the actors are sampling
    os.kill(pids[0], signal.SIGKILL)
    results = rollout.collect(pending)
    assert rollout.restarts == 1 and rollout.requeued >= 1
    new_pids = rollout.pids()
    assert new_pids[0] != pids[0] and new_pids[1] == pids[1]
    seen = [(pid, r.prompt_index, j) for res in results for pid in res.task.prompt_ids
            for j, r in enumerate(res.rollouts[(pid - res.task.prompt_ids[0]) * 4:][:4])]
    assert sorted((p, j) for p, _, j in seen) == [(p, j) for p in range(100, 108) for j in range(4)]
    assert all(res.weight_version == 7 for res in results)  # the replacement got the current weights
    # a task's seed, not its actor, fixes its samples: the re-queued task sampled exactly the same
    assert [[r.token_ids for r in res.rollouts] for res in results] == \
        [[r.token_ids for r in res.rollouts] for res in clean]
    rollout.shutdown()


def test_a_hung_rollout_actor_is_killed_and_its_task_requeued(cluster, tiny, tiny_path):
    from r1kit.distributed.ray_rollout import RayRollout, make_tasks
    from r1kit.rollout import SamplingParams

    rollout = RayRollout(tiny_path, "float32", 2, actor_cpus=1, threads=1, timeout=4)
    rollout.push_weights(tiny[0], 1)
    pids = rollout.pids()
    tasks = make_tasks(list(range(6)), _prompts(tiny_path, 6), 2, seed=9, min_version=1)
    os.kill(pids[1], signal.SIGSTOP)  # a stuck process: alive, finishing nothing
    try:
        t0 = time.time()
        results = rollout.collect(rollout.submit(tasks, SamplingParams(n=2, max_new_tokens=32)))
    finally:
        try:
            os.kill(pids[1], signal.SIGCONT)
        except ProcessLookupError:
            pass
    assert 4 <= time.time() - t0 < 60
    assert rollout.restarts == 1 and rollout.requeued == 1 and rollout.pids()[1] != pids[1]
    assert [res.task.prompt_ids for res in results] == [[0, 1, 2], [3, 4, 5]]
    assert all(len(res.rollouts) == 6 and res.weight_version == 1 for res in results)
    rollout.shutdown()


def test_an_actor_refuses_to_sample_with_stale_weights(cluster, tiny, tiny_path):
    from r1kit.distributed.ray_rollout import RayRollout, make_tasks
    from r1kit.rollout import SamplingParams

    rollout = RayRollout(tiny_path, "float32", 1)
    rollout.push_weights(tiny[0], 2)
    tasks = make_tasks([0], _prompts(tiny_path, 1), 1, seed=0, min_version=3)
    with pytest.raises(ray.exceptions.RayTaskError, match="holds weights v2, task needs >= v3"):
        rollout.collect(rollout.submit(tasks, SamplingParams(n=2, max_new_tokens=8)))
    rollout.shutdown()


def test_ray_actors_sample_the_same_episodes_as_the_local_engine(cluster, tiny, tiny_path):
    """Episodes on the actors (their own environment, imported from environment_modules) are the local
    engine's: the same ids, observation masks and calls, task by task."""
    from r1kit.distributed.ray_rollout import RayRollout, make_tasks
    from r1kit.environments import ToolConfig, make_environment
    from r1kit.prompts import build_prompt
    from r1kit.rollout import SamplingParams, sample

    import helpers.think_env  # noqa: F401  (registers test_think here too)

    model, tok = tiny
    examples = [{"problem": f"Compute {a} + {b}", "answer": str(a + b)} for a, b in ((3, 4), (12, 7), (8, 6), (5, 9))]
    prompts = [build_prompt(ex["problem"], "r1_zero", tok) for ex in examples]
    tools = ToolConfig(max_turns=3)
    rollout = RayRollout(tiny_path, "float32", 2, actor_cpus=1, threads=1, environment="test_think",
                         environment_modules=("helpers.think_env",), tools=tools)
    rollout.push_weights(model, 1)
    tasks = make_tasks(list(range(4)), prompts, 2, seed=5, min_version=1, examples=examples)
    params = SamplingParams(n=4, max_new_tokens=64)
    results = rollout.collect(rollout.submit(tasks, params))
    rollout.shutdown()
    env = make_environment("test_think", tools)
    for res in results:
        local = sample(model, tok, res.task.prompts, SamplingParams(n=4, max_new_tokens=64, seed=res.task.seed),
                       environment=env, examples=res.task.examples)
        assert [(r.token_ids, r.policy_mask, r.tool_calls) for r in res.rollouts] == \
               [(r.token_ids, r.policy_mask, r.tool_calls) for r in local]
    assert sum(r.tool_calls for res in results for r in res.rollouts) >= 8  # the actors made calls
    assert all(0 in r.policy_mask for res in results for r in res.rollouts if r.tool_calls)


def test_reward_worker_that_dies_scores_its_samples_zero_with_a_reason(cluster):
    from r1kit.distributed.ray_rewards import WORKER_FAILURE, RayRewardPool

    weights = {"test_exit_on_marker": 1.0}
    pool = RayRewardPool(2, ["helpers.crashing_rewards"], timeout=60)
    pids = pool.pids()
    stats = RewardStats()
    jobs = [pool.submit(["fine", "also fine"], [{}, {}], [weights] * 2),
            pool.submit(["EXIT here", "innocent"], [{}, {}], [weights] * 2)]
    out = pool.results(jobs, stats)
    assert [t for t, _ in out[0]] == [1.0, 1.0]
    assert out[1] == [(0.0, {"test_exit_on_marker": 0.0})] * 2
    [(key, count)] = stats.failures.items()
    assert key[0] == WORKER_FAILURE and "died" in key[1] and count == 2
    assert pool.replaced == 1 and pool.pids()[1] != pids[1]
    again = pool.results([pool.submit(["fine"], [{}], [weights]) for _ in range(2)], stats)
    assert again == [[(1.0, {"test_exit_on_marker": 1.0})]] * 2  # the replacement works
    pool.shutdown()


def test_code_reward_runs_its_sandbox_in_the_reward_workers(cluster):
    from r1kit.data import synthetic
    from r1kit.distributed.ray_rewards import RayRewardPool

    ex = synthetic.code_train_set(2, seed=1)[0]
    right, wrong = (f"<think> x </think> <answer>```python\nprint({v})\n```</answer>" for v in (ex["answer"], -1))
    pool = RayRewardPool(1, [], timeout=60)
    stats = RewardStats()
    [out] = pool.results([pool.submit([right, wrong], [ex, ex], [{"code": 1.0}] * 2)], stats)
    assert [total for total, _ in out] == [1.0, 0.0] and stats.calls["code"] == 2 and not stats.failures
    pool.shutdown()


def test_reward_worker_that_hangs_times_out_instead_of_stalling_the_step(cluster):
    from r1kit.distributed.ray_rewards import RayRewardPool

    weights = {"test_sleep_on_marker": 1.0}
    pool = RayRewardPool(1, ["helpers.crashing_rewards"], timeout=3)
    pool.results([pool.submit(["warm"], [{}], [weights])], RewardStats())  # worker started
    started = pool.replaced  # (a start slower than the timeout, on a loaded machine, is replaced too)
    stats = RewardStats()
    t0 = time.time()
    out = pool.results([pool.submit(["SLEEP"], [{}], [weights])], stats)
    assert time.time() - t0 < 15  # the reward sleeps 60 s
    assert out == [[(0.0, {"test_sleep_on_marker": 0.0})]]
    assert any("timeout" in reason for (_, reason) in stats.failures)
    assert pool.replaced == started + 1
    pool.shutdown()


def _ray_run(out, *extra, kill_at_step=None):
    cfg = load_config(ZeroConfig, None, SMALL + [f"out={out}", *extra])
    trainer = GRPOTrainer(cfg, progress=False)
    killed = []
    if kill_at_step is not None:
        victim = trainer.source.rollout.pids()[0]

        def killer():  # SIGKILL actor 0 while a rollout of step >= kill_at_step is in flight
            while trainer.source.rollout is not None and not killed:
                if trainer.step >= kill_at_step and trainer.source.rollout.in_flight:
                    os.kill(victim, signal.SIGKILL)
                    killed.append(trainer.step)
                time.sleep(0.002)
        threading.Thread(target=killer, daemon=True).start()
    trainer.train()
    return killed


@pytest.mark.slow
def test_ray_run_records_versions_and_survives_a_killed_actor(cluster, tmp_path):
    _ray_run(tmp_path / "clean", "steps=3")
    killed = _ray_run(tmp_path / "killed", "steps=3", kill_at_step=1)
    assert killed, "the actor was never killed"
    clean, hit = _rows(tmp_path / "clean" / "samples.jsonl"), _rows(tmp_path / "killed" / "samples.jsonl")
    for rows in (clean, hit):
        # the weights that sampled every sample are the previous optimiser step's (lag 0)
        assert all(r["weight_version"] == r["step"] - 1 for r in rows)
        keys = [(r["prompt_id"], r["sample_index"]) for r in rows]
        assert sorted(keys) == [(p, j) for p in range(12) for j in range(4)]  # none lost, none twice
    metrics = _rows(tmp_path / "killed" / "metrics.jsonl")
    assert metrics[-1]["rollout/actor_restarts"] == 1 and metrics[-1]["rollout/requeued_tasks"] >= 1
    assert all(m["weight_lag/max"] == 0 for m in metrics)
    # re-queued prompts are sampled with the same seed and weights: the run is the clean one
    assert [(r["prompt_id"], r["sample_index"], r["length"], r["reward"]) for r in hit] == \
        [(r["prompt_id"], r["sample_index"], r["length"], r["reward"]) for r in clean]


def test_off_policy_lag_is_explicit_and_recorded(cluster, tmp_path):
    _ray_run(tmp_path / "lag", "steps=3", "distributed.max_weight_lag=1", "distributed.reward_workers=0")
    rows = _rows(tmp_path / "lag" / "samples.jsonl")
    lags = {r["step"]: r["step"] - 1 - r["weight_version"] for r in rows}
    assert lags == {1: 0, 2: 1, 3: 1}  # step 2's prompts were sampled while step 1 trained
    metrics = _rows(tmp_path / "lag" / "metrics.jsonl")
    assert [m["weight_lag/max"] for m in metrics] == [0, 1, 1]
    assert all(m["grad_norm"] > 0 for m in metrics)


def test_reward_workers_score_by_prompt_kind_with_reward_models_as_the_trainer_does(cluster, random_rm):
    """Ray reward workers score each sample with its own kind's weights, reward models included
    (registered in the worker from the config), exactly as ``score_batch`` does in this process."""
    from r1kit.distributed.ray_rewards import RayRewardPool
    from r1kit.rewards import score_batch
    from r1kit.rewards.config import RewardModelConfig
    from r1kit.rewards.reward_model import register_reward_models

    models = {"helpfulness": RewardModelConfig(path=random_rm, part="whole")}
    texts = [" <think> 3 + 4 = 7. </think> <answer> 7 </answer>", " <think> no. </think> <answer> 9 </answer>",
             " <think> eight. </think> Eight is a number."]
    examples = [{"problem": "Compute 3 + 4", "answer": "7"}] * 2 + [{"problem": "Describe 8.", "answer": "-",
                                                                       "kind": "general"}]
    weights = [{"accuracy_math": 1.0, "format": 0.5}] * 2 + [{"helpfulness": 1.0, "format": 2.0}]
    pool = RayRewardPool(1, [], timeout=120, reward_models=models)
    stats = RewardStats()
    [remote] = pool.results([pool.submit(texts, examples, weights)], stats)
    pool.shutdown()
    register_reward_models(models)
    local = score_batch(texts, examples, weights, RewardStats())
    assert [parts for _, parts in remote] == [parts for _, parts in local]
    assert [t for t, _ in remote] == pytest.approx([t for t, _ in local])
    assert remote[0][0] == pytest.approx(1.5) and remote[1][0] == pytest.approx(0.5)
    assert set(remote[2][1]) == {"helpfulness", "format"} and not stats.failures
    assert stats.calls["helpfulness"] == 1 and stats.calls["accuracy_math"] == 2


def test_a_ray_run_trains_with_rewards_by_kind_and_a_reward_model(cluster, tmp_path, random_rm):
    """All-scenario RL under Ray: reasoning rows score by rule, general rows by the reward model."""
    from r1kit.data import general, synthetic

    rows = synthetic.train_set(6, seed=3) + general.prompts(6, "train")
    data = tmp_path / "mixed.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    _ray_run(tmp_path / "run", "steps=2", f"data={data}", "rewards_by_kind.general.helpfulness=1.0",
             f"reward_models.helpfulness.path={random_rm}", "reward_models.helpfulness.part=summary")
    metrics = _rows(tmp_path / "run" / "metrics.jsonl")
    assert len(metrics) == 2 and all(m["grad_norm"] > 0 for m in metrics)
    assert any(m.get("reward/helpfulness/mean") is not None for m in metrics)
    assert any(m.get("reward/accuracy_math/mean") is not None for m in metrics)
    assert all(m["reward_failures"] == 0 for m in metrics)
