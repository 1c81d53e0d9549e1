"""Rewards that misbehave on purpose, for the reward-worker tests (imported by the Ray workers
through ``reward_modules``)."""
import os
import time

from r1kit.rewards import register


@register("test_exit_on_marker")
def exit_on_marker(completion: str, example: dict) -> float:
    """1.0, but the whole process exits (no exception to catch) on a completion with EXIT."""
    if "EXIT" in completion:
        os._exit(3)
    return 1.0


@register("test_sleep_on_marker")
def sleep_on_marker(completion: str, example: dict) -> float:
    """1.0, but hangs for a minute on a completion with SLEEP."""
    if "SLEEP" in completion:
        time.sleep(60)
    return 1.0
