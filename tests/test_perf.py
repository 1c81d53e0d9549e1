"""FLOP accounting: the weights it counts are the model's matmul weights."""
import torch

from r1kit.perf import SectionTimer, Shape, forward_flops, grpo_step_flops


def test_matmul_weights_are_the_models_linear_weights(tiny):
    model, _ = tiny
    shape = Shape.of(model.config)
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    assert shape.matmul_weights == linear  # q, k, v, o, gate, up, down of every layer + the LM head
    assert forward_flops(shape, 10, 0) == 2 * linear * 10
    assert forward_flops(shape, 10, 8) - forward_flops(shape, 10, 0) == 4 * shape.layers * shape.heads * shape.head_dim * 80
    one, two = grpo_step_flops(shape, 100, 800, 50, 100), grpo_step_flops(shape, 100, 800, 50, 100, passes=2)
    assert two - one == 3 * (forward_flops(shape, 100, 25) + forward_flops(shape, 800, 100))


def test_section_timer_adds_up_and_clears():
    timer = SectionTimer()
    for _ in range(2):
        with timer("a"):
            pass
    with timer("b"):
        pass
    split = timer.split()
    assert set(split) == {"a", "b"} and all(v >= 0 for v in split.values())
    assert timer.split() == {}
