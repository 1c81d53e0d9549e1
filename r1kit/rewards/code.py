r"""Code-execution reward: run the completion's program against the problem's tests in the sandbox.

Program extraction (:func:`extract_program`): the content of the LAST complete fenced code block
tagged ``python``/``py``/``python3`` or untagged (blocks in other languages are skipped; an
unclosed fence does not count); otherwise the content of the last complete ``<answer>`` block;
otherwise None (reward 0).

Tests (:func:`run_tests`), from the problem row ``example``:

* **assert style**: ``example["test"]`` is test code that asserts (a string: one test; a list of
  strings: one test each). If the test code defines ``check(candidate)`` (HumanEval convention),
  ``example["entry_point"]`` names the function passed to it. The program and every test run in
  ONE sandboxed process, through a harness that loads the program as module ``solution`` (so
  its ``if __name__ == "__main__":`` block does not run), then runs each test and prints the
  count of passed tests behind a random nonce fed on stdin. A test that raises counts as failed,
  except MemoryError, which ends the run (the memory limit is a fatal violation).
* **stdin/stdout style**: ``example["tests"] = [{"input": ..., "output": ...}, ...]`` (or
  ``{"inputs": [...], "outputs": [...]}``): one sandboxed run per case, passing when it exits
  normally and its stdout equals the expected output after normalisation (line endings, trailing
  spaces of each line, leading/trailing blank space removed).

Scoring (:func:`code_reward`): the fraction of tests passed (``"fraction"``) or 1/0 for all passed
(``"all"``), chosen by ``example["code_reward_mode"]``, else :data:`DEFAULT_MODE`. A timeout, a
crash (the program or the harness did not complete), exceeding the memory or output limit, or a
sandbox violation scores 0 for the whole completion. Optional ``example["limits"]``: a dict of
:class:`~r1kit.sandbox.SandboxLimits` fields for this problem.

Reward hacking the harness resists: exiting early (``sys.exit(0)``, ``os._exit(0)``: no nonce line,
so 0), printing a fake result line (it lacks the nonce), objects that claim equality with
anything (the candidate passed to ``check`` must return plain built-in values, checked
recursively), and patching ``builtins`` (tests run with a copy of the original builtins). It does
not resist a program that introspects the interpreter (stack frames, ``gc``) to find the nonce:
it is a guard against cheap hacks that RL training tends to find, not against an adversary.

Failures: a wrong, crashing or timed-out program is the model's fault and simply scores 0 (counted
in :data:`CODE_OUTCOMES` by outcome); a problem without tests or a sandbox failure is an
infrastructure fault and raises, so that the reward registry's :func:`~r1kit.rewards.score`
counts it with its reason in :class:`~r1kit.rewards.RewardStats`.
"""
from __future__ import annotations

import json
import re
import textwrap
import secrets
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from r1kit.rewards import register
from r1kit.sandbox import ExecResult, Job, SandboxError, SandboxLimits, SandboxPool

DEFAULT_MODE = "fraction"
"""Scoring when the example does not say: ``"fraction"`` of tests passed, or ``"all"`` (1 or 0)."""
MODES = ("fraction", "all")
DEFAULT_LIMITS = SandboxLimits()
CODE_OUTCOMES: Counter[str] = Counter()
"""How graded completions ended: ``passed``, ``partial``, ``failed``, ``no_program``, ``timeout``,
``error`` (crash), ``memory``, ``output_limit``, ``killed``, ``sandbox_error``."""
FATAL_STATUSES = ("timeout", "memory", "output_limit", "killed", "sandbox_error")

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+.#-]*)[^\n]*\n(.*?)^[ \t]*```", re.DOTALL | re.MULTILINE)
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_PYTHON_TAGS = {"", "python", "py", "python3", "py3"}


def extract_program(completion: str) -> str | None:
    """The program in ``completion``: last complete Python (or untagged) fenced block, else the
    last ``<answer>`` block, else None. Empty content gives None. The program is dedented, so
    ``<answer> print(9) </answer>`` (spaces around the tags' content) runs as ``print(9)``."""
    blocks = [body for tag, body in _FENCE.findall(completion) if tag.lower() in _PYTHON_TAGS]
    if blocks:
        program = blocks[-1]
    else:
        answers = _ANSWER.findall(completion)
        if not answers:
            return None
        program = answers[-1]
    program = textwrap.dedent(program.strip("\n")).strip()
    return program or None


# The harness of assert-style tests (a program of its own, run in the sandbox; see its docstring).
HARNESS = (Path(__file__).with_name("code_harness.py")).read_text(encoding="utf-8")


def _normalize_output(text: str) -> str:
    """Output compared by stdin/stdout tests: line endings unified, trailing spaces of each line and
    surrounding blank lines removed."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join(line.rstrip() for line in lines).strip()


def _stdio_cases(tests) -> list[tuple[str, str]]:
    """(input, expected output) pairs from ``[{"input", "output"}]`` or ``{"inputs", "outputs"}``."""
    if isinstance(tests, dict):
        inputs, outputs = tests.get("inputs"), tests.get("outputs")
        if not isinstance(inputs, list) or not isinstance(outputs, list) or len(inputs) != len(outputs):
            raise ValueError("example['tests'] as a dict needs 'inputs' and 'outputs' lists of equal length")
        tests = [{"input": i, "output": o} for i, o in zip(inputs, outputs)]
    cases = []
    for case in tests:
        if not isinstance(case, dict) or "input" not in case or "output" not in case:
            raise ValueError("each stdin/stdout test needs 'input' and 'output'")
        cases.append((str(case["input"]), str(case["output"])))
    return cases


@dataclass
class TestReport:
    """Outcome of running a program's tests.

    ``outcome``: ``passed`` (all), ``partial``, ``failed`` (none), or the sandbox status that made
    the run fatal (``timeout``, ``error`` for a crash, ``memory``, ``output_limit``, ``killed``,
    ``sandbox_error``), which scores 0 whatever passed before.
    """

    passed: int
    total: int
    outcome: str
    reason: str = ""
    results: list[ExecResult] = field(default_factory=list, repr=False)

    def reward(self, mode: str = DEFAULT_MODE) -> float:
        """``passed / total`` (``"fraction"``) or 1.0 if all passed else 0.0 (``"all"``); 0 if fatal."""
        if mode not in MODES:
            raise ValueError(f"unknown code reward mode {mode!r}; use one of {MODES}")
        if self.outcome not in ("passed", "partial", "failed") or self.total == 0:
            return 0.0
        return self.passed / self.total if mode == "fraction" else float(self.passed == self.total)

    @property
    def all_passed(self) -> bool:
        """Whether every test passed."""
        return self.outcome == "passed"


@dataclass
class TestPlan:
    """The sandbox runs needed to test one program (see :func:`plan_tests`), and how to judge them."""

    kind: str  # "assert" or "stdio"
    jobs: list[Job]
    expected: list[str] = field(default_factory=list)  # stdio: expected outputs
    nonce: str = ""  # assert: the secret of the harness's result line
    total: int = 0

    def judge(self, results: list[ExecResult]) -> TestReport:
        """A :class:`TestReport` from the results of :attr:`jobs` (same order)."""
        if len(results) != len(self.jobs):
            raise ValueError(f"expected {len(self.jobs)} results, got {len(results)}")
        fatal = next((r for r in results if r.status in FATAL_STATUSES), None)
        if fatal is not None:
            return TestReport(0, self.total, fatal.status, fatal.reason, results)
        if self.kind == "assert":
            return self._judge_assert(results[0])
        passed = sum(r.status == "ok" and _normalize_output(r.stdout) == _normalize_output(want)
                     for r, want in zip(results, self.expected))
        crashed = next((r for r in results if r.status != "ok"), None)
        if crashed is not None:
            return TestReport(0, self.total, "error", f"crashed on a test: {crashed.reason}", results)
        return TestReport(passed, self.total, _outcome(passed, self.total),
                          "" if passed == self.total else f"{self.total - passed} wrong output(s)", results)

    def _judge_assert(self, result: ExecResult) -> TestReport:
        lines = [line.split() for line in result.stdout.splitlines() if line.startswith(self.nonce)]
        if not lines or len(lines[-1]) != 3 or result.status != "ok":
            reason = result.reason or "the program ended before the tests finished"
            return TestReport(0, self.total, "error", reason, [result])
        passed = int(lines[-1][1])
        reason = ""
        if passed < self.total:
            failures = [line for line in result.stderr.splitlines() if line and not line.startswith(" ")]
            reason = failures[-1][:300] if failures else "tests failed"
        return TestReport(passed, self.total, _outcome(passed, self.total), reason, [result])


def _outcome(passed: int, total: int) -> str:
    return "passed" if passed == total else "partial" if passed else "failed"


def _limits(example: dict, limits: SandboxLimits | None) -> SandboxLimits:
    if limits is not None:
        return limits
    overrides = example.get("limits")
    return SandboxLimits(**overrides) if overrides else DEFAULT_LIMITS


def plan_tests(program: str, example: dict, limits: SandboxLimits | None = None) -> TestPlan:
    """The sandbox jobs that test ``program`` on ``example`` (ValueError if it has no usable tests)."""
    limits = _limits(example, limits)
    if example.get("test"):
        tests = example["test"]
        tests = [tests] if isinstance(tests, str) else [str(t) for t in tests]
        entry_point = example.get("entry_point") or None
        if entry_point is None and any(re.search(r"^def check\(", t, re.MULTILINE) for t in tests):
            raise ValueError("the test defines check(candidate) but the example has no 'entry_point'")
        nonce = secrets.token_hex(16)
        files = {"solution.py": program, "tests.json": json.dumps({"tests": tests, "entry_point": entry_point})}
        return TestPlan("assert", [Job(HARNESS, nonce + "\n", files, limits)], nonce=nonce, total=len(tests))
    if example.get("tests"):
        cases = _stdio_cases(example["tests"])
        return TestPlan("stdio", [Job(program, stdin, None, limits) for stdin, _ in cases],
                        expected=[out for _, out in cases], total=len(cases))
    raise ValueError("the example has no tests: it needs 'test' (assert style) or 'tests' (stdin/stdout)")


_shared_pool: SandboxPool | None = None
_shared_pool_lock = threading.Lock()


def shared_pool() -> SandboxPool:
    """The process-wide pool used when no pool is given (one worker per CPU)."""
    global _shared_pool
    with _shared_pool_lock:
        if _shared_pool is None:
            _shared_pool = SandboxPool()
        return _shared_pool


def run_tests(program: str, example: dict, limits: SandboxLimits | None = None, mode: str | None = None,
              pool: SandboxPool | None = None) -> TestReport:
    """Run ``program`` against the tests of ``example`` in the sandbox (see the module docstring).

    ``limits``: per run (default: ``example["limits"]`` or :data:`DEFAULT_LIMITS`). ``mode``: only
    checked here (the report holds the counts; :meth:`TestReport.reward` applies the mode).
    ``pool``: runs the stdin/stdout cases in parallel (default: :func:`shared_pool`).
    """
    if mode is not None and mode not in MODES:
        raise ValueError(f"unknown code reward mode {mode!r}; use one of {MODES}")
    plan = plan_tests(program, example, limits)
    return plan.judge((pool or shared_pool()).map(plan.jobs))


@register("code")
def code_reward(completion: str, example: dict) -> float:
    """Reward for the program in ``completion`` on the tests of ``example``: fraction passed or 1/0
    (``example["code_reward_mode"]``, else :data:`DEFAULT_MODE`); 0 without a program or on a
    timeout, crash or limit violation. Raises on a problem without tests or a sandbox failure."""
    mode = example.get("code_reward_mode") or DEFAULT_MODE
    if mode not in MODES:
        raise ValueError(f"unknown code_reward_mode {mode!r}; use one of {MODES}")
    program = extract_program(completion)
    if program is None:
        CODE_OUTCOMES["no_program"] += 1
        return 0.0
    report = run_tests(program, example, mode=mode)
    CODE_OUTCOMES[report.outcome] += 1
    if report.outcome == "sandbox_error":
        raise SandboxError(f"sandbox failed: {report.reason}")
    return report.reward(mode)
