"""The ``device`` option, checked on the CPU.

What these tests can prove without a GPU: the option is validated before any model loads; the
configured device reaches the policy, the reference, the sampling copy and the optimiser state; and
no tensor of the hot path (the decode loop, the log-probs, the loss, backward) is built on the
*default* device. The last one runs the hot path with the default device set to ``meta``: a
factory call without an explicit ``device=`` then makes a meta tensor, and mixing it with the
CPU model's tensors fails. What they cannot prove: CUDA kernels, NCCL, or the CUDA memory figure
(scripts/gpu_check.sh checks those on a GPU).
"""
import json

import pytest
import torch

from r1kit.config import ConfigError, load_config
from r1kit.distributed import ddp
from r1kit.grpo.config import ZeroConfig
from r1kit.grpo.step import StepStats, accumulate, frozen_logprobs, layout
from r1kit.grpo.trainer import GRPOTrainer
from r1kit.models.config import check_device
from r1kit.models.device import resolve_device
from r1kit.rollout import SamplingParams, sample
from helpers import ARITHMETIC

SMALL = [*ARITHMETIC, "grpo.prompts_per_step=2", "grpo.group_size=4", "rollout.max_new_tokens=32", "eval.every=0",
         "log_tensorboard=false", "threads=1"]


@pytest.mark.parametrize("value", ["gpu", "cuda:", "cuda:x", "CPU", "cuda0", ""])
def test_bad_device_names_are_config_errors(value):
    with pytest.raises(ConfigError, match="device"):
        check_device(value, "device")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_cuda_without_a_gpu_fails_in_the_config_layer(tmp_path):
    with pytest.raises(ConfigError, match=r"^device: cuda:1 asked for, but torch sees no CUDA GPU"):
        load_config(ZeroConfig, None, ["device=cuda:1", f"out={tmp_path}"])
    assert resolve_device("auto") == torch.device("cpu")


def test_device_picks_the_collective_backend():
    assert ddp.backend_for("cuda") == "nccl" and ddp.backend_for("cuda:1") == "nccl"
    assert ddp.backend_for("cpu") == "gloo"
    assert resolve_device("cuda:3") == torch.device("cuda", 3)


def test_every_model_and_the_optimiser_state_are_on_the_device_and_each_step_logs_it(tmp_path):
    cfg = load_config(ZeroConfig, None, SMALL + ["steps=1", "device=cpu", "grpo.beta=0.04", "dtype=bfloat16",
                                                 f"out={tmp_path / 'run'}"])
    trainer = GRPOTrainer(cfg, progress=False)
    trainer.train()
    cpu = torch.device("cpu")
    for model in (trainer.policy, trainer.reference, trainer.sampler.model):
        assert {p.device for p in model.parameters()} == {cpu}
    state = [t for s in trainer.models.optimizer.state.values() for t in s.values() if torch.is_tensor(t)]
    assert state and {t.device for t in state} == {cpu}
    row = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert row["device"] == "cpu" and row["dtype"] == "bfloat16"
    assert row["peak_memory_mb"] > 50  # the process's peak RSS holds at least torch and the model


def test_the_hot_path_builds_no_tensor_on_the_default_device(tmp_path, tiny):
    """Sampling, the layout (advantages, normalisers), the frozen (reference) log-probs and a forward/backward pass
    with the default device set to meta: any tensor the code builds without saying where would be
    a meta tensor and break the CPU computation."""
    cfg = load_config(ZeroConfig, None, SMALL + ["steps=1", "device=cpu", "grpo.beta=0.04", "grpo.mu=2",
                                                 "grpo.overlong=mask", f"out={tmp_path / 'run'}"])
    trainer = GRPOTrainer(cfg, progress=False)
    model, tok = tiny
    with torch.device("meta"):
        rollouts = sample(model, tok, ["1 + 2 =", "3 + 4 ="], SamplingParams(n=2, max_new_tokens=8, seed=0,
                                                                            stop=["</answer>"]))
        ids, examples = trainer.stream.take_indexed(cfg.grpo.prompts_per_step)
        groups = trainer.source.sample_groups(ids, examples, 1234, trainer.step)
        lb = layout(groups, trainer.models, cfg, tok.pad_token_id)
        frozen_logprobs(lb, groups, trainer.models, cfg, trainer.step)
        loss = accumulate(lb, trainer.models, cfg, StepStats())
    assert len(rollouts) == 4 and all(r.token_ids for r in rollouts)
    assert torch.isfinite(torch.tensor(loss, device="cpu"))
    grads = [p.grad for p in trainer.policy.parameters() if p.grad is not None]
    assert grads and all(g.device.type == "cpu" for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("cls, key", [("r1kit.sft.config:SFTConfig", "device"),
                                      ("r1kit.sampling.config:SampleConfig", "device"),
                                      ("r1kit.pipeline.config:PipelineConfig", "device"),
                                      ("r1kit.distill.config:DistillConfig", "sft.device")])
def test_every_command_validates_its_device_before_loading_anything(cls, key):
    from r1kit.cli import _load_class

    with pytest.raises(ConfigError, match=rf"^{key}: 'gpu' is not a device"):
        load_config(_load_class(cls), None, [f"{key}=gpu"])


def test_eval_takes_a_device_flag(tmp_path, capsys):
    from r1kit.cli import main

    assert main(["eval", "--device", "tpu", "--out", str(tmp_path / "e")]) == 2
    assert "--device: 'tpu' is not a device" in capsys.readouterr().err
    assert main(["eval", "--device", "cpu", "--limit", "2", "--k", "1", "--max-new-tokens", "8",
                 "--out", str(tmp_path / "e")]) == 0


def test_sft_logs_its_device_and_keeps_the_model_there(tmp_path):
    from r1kit.sft import run_sft
    from r1kit.sft.config import SFTConfig

    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"prompt": f"{i} + 1 =", "completion": f" {i + 1}"}) + "\n" for i in range(4)))
    cfg = load_config(SFTConfig, None, [f"data={rows}", "epochs=1", "batch_size=4", "device=cpu", "threads=1",
                                        f"out={tmp_path / 'run'}"])
    run_sft(cfg, progress=False)
    row = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert row["device"] == "cpu" and row["dtype"] == "float32" and row["peak_memory_mb"] > 50
