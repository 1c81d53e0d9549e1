"""Helpers shared by the tests (imported as ``helpers``: pytest puts ``tests/`` on the path)."""

# The arithmetic run on the tiny base (recipes/zero_tiny.yaml's task and clip range): the run that
# the trainer's mechanics tests were written and calibrated on, before Countdown on tiny-countdown
# became `r1kit zero`'s default.
ARITHMETIC = ["model=tiny", "data=synthetic", "grpo.eps_high=0.2"]
