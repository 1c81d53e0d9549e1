"""A user environment for the tests (imported through ``environment_modules``): its call tag is the
``</think>`` the tiny base writes in almost every response, so the real tiny model makes calls."""
from r1kit.environments import Environment, Observation, register_environment
from r1kit.rewards import register


@register_environment("test_think")
class ThinkEcho(Environment):
    """``<think> ... </think>`` is a call; the observation is the problem's answer (an error on odd answers)."""

    call_start, call_end = "<think>", "</think>"

    def run(self, call: str, example: dict) -> Observation:
        return self.observe(f"{example['answer']}", error=int(example["answer"]) % 2 == 1)


@register("test_called")
def called(completion: str, example: dict) -> float:
    """1.0 when the episode made a call that answered (an environment's own reward, registered
    beside it: what the sampling tests keep)."""
    return float(f"<output>{example['answer']}</output>" in completion)
