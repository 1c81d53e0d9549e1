"""The ``python`` environment: the model's code runs in r1kit's sandbox (``r1kit.sandbox``).

The model writes ``<python>print(sum(range(10)))</python>`` and reads ``<output>45</output>``: the
program's stdout, then its stderr, cut to ``tools.max_output_chars``. The sandbox's limits hold
(no network, a private file system, CPU, memory and process caps) with ``tools.timeout`` as the
wall-clock limit and the captured output capped near the shown size, so a program that fails, hangs
or prints megabytes gives an observation that says so (``error: timeout ...``) in bounded time.
"""
from __future__ import annotations

from r1kit.environments import Environment, Observation, register_environment
from r1kit.sandbox import SandboxLimits, run_code


@register_environment("python")
class Python(Environment):
    """``<python>CODE</python>`` -> ``<output>STDOUT and errors</output>`` (see the module docstring)."""

    call_start, call_end = "<python>", "</python>"

    def limits(self) -> SandboxLimits:
        """The sandbox limits of one call: the tool timeout; output captured up to a few times what is
        shown (more stops the program)."""
        return SandboxLimits(wall_s=self.tools.timeout, cpu_s=self.tools.timeout,
                             max_output_bytes=max(4 * self.tools.max_output_chars, 4096))

    def run(self, call: str, example: dict) -> Observation:
        result = run_code(call, limits=self.limits())
        if result.ok:
            return self.observe(result.stdout + result.stderr)
        said = {"timeout": f"timeout after {self.tools.timeout:g} s", "output_limit": "too much output, stopped"}
        reason = said.get(result.status, result.reason or result.status)
        return self.observe(f"{result.stdout}error: {reason}", error=True)
