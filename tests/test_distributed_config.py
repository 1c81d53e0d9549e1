"""The ``distributed`` config section: bad values are errors naming the field; Ray-free helpers."""
import pytest

from r1kit.config import ConfigError, load_config
from r1kit.distributed.ray_rollout import make_tasks
from r1kit.grpo.config import ZeroConfig
from r1kit.grpo.trainer import GRPOTrainer
from helpers import ARITHMETIC


@pytest.mark.parametrize("override, field", [
    ("distributed.rollout_actors=0", "distributed.rollout_actors"),
    ("distributed.max_weight_lag=1", "distributed.max_weight_lag"),      # lag without Ray
    ("distributed.reward_timeout=0", "distributed.reward_timeout"),
    ("reward_modules=[no_such_module_here]", "reward_modules"),
    ("distributed.backend=mpi", "distributed.backend"),
    ("distributed.actors=2", "distributed.actors"),
])
def test_bad_distributed_options_name_the_field(tmp_path, override, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        load_config(ZeroConfig, None, [f"out={tmp_path}", override])


def test_lag_with_dynamic_sampling_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="max_weight_lag"):  # refused by the config layer, before any model loads
        load_config(ZeroConfig, None, [f"out={tmp_path}", "distributed.backend=ray", "distributed.max_weight_lag=1",
                                       "grpo.dynamic_sampling=true"])


def test_tasks_cover_the_prompts_once_with_their_own_seeds():
    tasks = make_tasks(list(range(10, 17)), [f"p{i}" for i in range(7)], 3, seed=100, min_version=4)
    assert [t.prompt_ids for t in tasks] == [[10, 11, 12], [13, 14], [15, 16]]
    assert [t.prompts for t in tasks] == [["p0", "p1", "p2"], ["p3", "p4"], ["p5", "p6"]]
    assert [t.seed for t in tasks] == [100, 101, 102] and {t.min_version for t in tasks} == {4}
    assert len(make_tasks([1], ["p"], 4, 0, 0)) == 1  # never an empty task


def test_behaviour_logprobs_line_up_with_the_trainers_logprobs(tmp_path):
    """With an off-policy lag, pi_old is the sampler's recorded log-probs: laid out per micro-batch
    exactly like ``completion_logprobs`` (same weights here, so the values agree)."""
    import torch

    from r1kit.models.logprobs import completion_logprobs
    from r1kit.grpo.step import behaviour_logprobs, micro_batches

    trainer = GRPOTrainer(load_config(ZeroConfig, None, [
        *ARITHMETIC, f"out={tmp_path}", "grpo.prompts_per_step=3", "grpo.group_size=4", "rollout.max_new_tokens=32",
        "grpo.micro_batch_tokens=150", "eval.every=0", "log_tensorboard=false"]), progress=False)
    groups = trainer.source.collect(trainer.step).train
    mbs = micro_batches(groups, trainer.tokenizer.pad_token_id, 150, False)
    assert len(mbs) > 1
    with torch.no_grad():
        for mb, old in zip(mbs, behaviour_logprobs(groups, mbs)):
            logp, _ = completion_logprobs(trainer.policy, mb.batch)
            assert torch.allclose(old * mb.loss_mask, logp * mb.loss_mask, atol=1e-4)


def test_ray_backend_without_ray_says_how_to_install_it(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # as if the ray extra were not installed
    with pytest.raises(ConfigError, match=r"distributed\.backend: 'ray' needs Ray: pip install 'r1kit\[ray\]'"):
        load_config(ZeroConfig, None, [f"out={tmp_path}", "distributed.backend=ray"])
