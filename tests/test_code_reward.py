"""The code-execution reward: program extraction, assert-style and stdin/stdout tests, scoring
modes, fatal outcomes, cheap reward hacks, and the reward registry."""
import pytest

import r1kit.rewards.code as code_module
from r1kit.rewards import RewardStats, get_reward, score
from r1kit.rewards.code import CODE_OUTCOMES, code_reward, extract_program, run_tests
from r1kit.sandbox import SandboxError

FENCE = "```"


def fenced(program: str, tag: str = "python") -> str:
    return f"{FENCE}{tag}\n{program}\n{FENCE}"


ADD_EXAMPLE = {"test": "assert add(1, 2) == 3\nassert add(-1, 1) == 0\n"}
ECHO_SUM = {"tests": [{"input": "1 2\n", "output": "3"}, {"input": "5 5\n", "output": "10\n"},
                      {"input": "0 7", "output": "7"}]}
HUMANEVAL_STYLE = {
    "entry_point": "mean",
    "test": ("def check(candidate):\n"
             "    assert candidate([1, 2, 3]) == 2\n"
             "    assert abs(candidate([1.0, 2.0]) - 1.5) < 1e-9\n"),
}


# ---------------------------------------------------------------------------------------------
# extraction


def test_extract_last_python_block():
    completion = f"<think>draft\n{fenced('x = 1')}\n</think>\nfinal:\n{fenced('x = 2')}\nand some text"
    assert extract_program(completion) == "x = 2"


def test_extract_untagged_block_and_skip_other_languages():
    completion = f"{fenced('print(1)', '')}\n{fenced('echo hi', 'bash')}"
    assert extract_program(completion) == "print(1)"
    assert extract_program(fenced("print(2)", "py")) == "print(2)"


def test_unclosed_fence_does_not_count():
    completion = f"{fenced('good = 1')}\n{FENCE}python\nbad = (1,"
    assert extract_program(completion) == "good = 1"


def test_answer_block_fallback_and_nothing():
    assert extract_program("<think>hmm</think> <answer>\nprint(3)\n</answer>") == "print(3)"
    assert extract_program("no code here") is None
    assert extract_program(fenced("   ")) is None
    assert extract_program("<answer> </answer>") is None


# ---------------------------------------------------------------------------------------------
# running tests and scoring


def test_assert_tests_pass_and_fail():
    assert code_reward(fenced("def add(a, b):\n    return a + b"), ADD_EXAMPLE) == 1.0
    assert code_reward(fenced("def add(a, b):\n    return a - b"), ADD_EXAMPLE) == 0.0


def test_assert_list_gives_fraction_or_all():
    example = {"test": ["assert add(1, 2) == 3", "assert add(2, 2) == 4", "assert add(0, 5) == 6"]}
    program = fenced("def add(a, b):\n    return a + b")
    assert code_reward(program, example) == pytest.approx(2 / 3)
    assert code_reward(program, {**example, "code_reward_mode": "all"}) == 0.0
    report = run_tests(extract_program(program), example)
    assert (report.passed, report.total, report.outcome) == (2, 3, "partial")
    assert "AssertionError" in report.reason


def test_humaneval_check_convention():
    good = fenced("def mean(xs):\n    return sum(xs) / len(xs)")
    assert code_reward(good, HUMANEVAL_STYLE) == 1.0
    assert code_reward(fenced("def mean(xs):\n    return xs[0]"), HUMANEVAL_STYLE) == 0.0
    assert code_reward(fenced("def average(xs):\n    return 2"), HUMANEVAL_STYLE) == 0.0  # wrong name


def test_main_block_of_the_program_does_not_run_in_assert_mode():
    program = "def add(a, b):\n    return a + b\n\nif __name__ == '__main__':\n    add(int(input()), 1)\n"
    assert code_reward(fenced(program), ADD_EXAMPLE) == 1.0


def test_stdio_tests_fraction_and_all():
    right = fenced("a, b = map(int, input().split())\nprint(a + b)")
    assert code_reward(right, ECHO_SUM) == 1.0
    wrong_on_one = fenced("a, b = map(int, input().split())\nprint(a + b if a else 0)")
    assert code_reward(wrong_on_one, ECHO_SUM) == pytest.approx(2 / 3)
    assert code_reward(wrong_on_one, {**ECHO_SUM, "code_reward_mode": "all"}) == 0.0
    dict_form = {"tests": {"inputs": ["2 3"], "outputs": ["5  \n\n"]}}
    assert code_reward(right, dict_form) == 1.0  # trailing spaces and blank lines ignored


def test_fatal_outcomes_score_zero():
    quick = {"limits": {"wall_s": 1.0, "cpu_s": 1}}
    before = CODE_OUTCOMES.copy()
    hang = fenced("a, b = map(int, input().split())\nif a == 0:\n    while True:\n        pass\nprint(a + b)")
    assert code_reward(hang, {**ECHO_SUM, **quick}) == 0.0  # right on 2 of 3 cases, but it hung
    crash = fenced("a, b = map(int, input().split())\nprint(a + b if a else 1 // a)")
    assert code_reward(crash, ECHO_SUM) == 0.0  # crashed on one case
    hog = fenced("def add(a, b):\n    x = bytearray(10 * 2**30)\n    return a + b")
    assert code_reward(hog, ADD_EXAMPLE) == 0.0
    spam = fenced("def add(a, b):\n    return a + b\nwhile True:\n    print('x' * 10000)")
    assert code_reward(spam, {**ADD_EXAMPLE, **quick}) == 0.0
    assert code_reward("I cannot solve this.", ADD_EXAMPLE) == 0.0
    delta = CODE_OUTCOMES - before
    assert delta["timeout"] == 1 and delta["error"] == 1 and delta["memory"] == 1
    assert delta["output_limit"] == 1 and delta["no_program"] == 1


def test_run_tests_report_for_timeout():
    report = run_tests("while True:\n    pass", ADD_EXAMPLE, mode="all",
                       limits=code_module.SandboxLimits(wall_s=1, cpu_s=1))
    assert report.outcome == "timeout" and report.reward("fraction") == 0.0 and report.reward("all") == 0.0


# ---------------------------------------------------------------------------------------------
# cheap reward hacks


@pytest.mark.parametrize("hack", [
    "import sys\nsys.exit(0)",
    "import os\nos._exit(0)",
    "print('0 2 2')\nprint('deadbeef 2 2')\nimport os\nos._exit(0)",
    "raise SystemExit",
])
def test_early_exit_and_fake_results_score_zero(hack):
    assert code_reward(fenced(hack), ADD_EXAMPLE) == 0.0


def test_always_equal_object_scores_zero():
    hack = ("class Anything:\n    def __eq__(self, other):\n        return True\n    __hash__ = object.__hash__\n"
            "def mean(xs):\n    return Anything()\ndef add(a, b):\n    return Anything()")
    assert code_reward(fenced(hack), HUMANEVAL_STYLE) == 0.0
    assert code_reward(fenced(hack), {**ADD_EXAMPLE, "entry_point": "add"}) == 0.0


def test_patching_builtins_does_not_fool_the_tests():
    hack = "import builtins\nbuiltins.abs = lambda x: 0\ndef mean(xs):\n    return 2"
    report = run_tests(extract_program(fenced(hack)), HUMANEVAL_STYLE)
    assert report.outcome == "failed"


# ---------------------------------------------------------------------------------------------
# registry


def test_registered_and_failures_are_counted():
    assert get_reward("code").fn is code_reward and not get_reward("code").batched
    stats = RewardStats()
    total, values = score(fenced("def add(a, b):\n    return a + b"), ADD_EXAMPLE, {"code": 1.0}, stats)
    assert total == 1.0 and values == {"code": 1.0} and stats.total() == 0
    total, _ = score(fenced("print(1)"), {"answer": "1"}, {"code": 1.0}, stats)  # a problem without tests
    assert total == 0.0 and stats.total("code") == 1
    assert any("has no tests" in reason for _, reason in stats.failures)
    broken = {**ADD_EXAMPLE, "limits": {"namespaces": False, "require_isolation": True}}
    with pytest.raises(SandboxError, match="isolation required"):
        code_reward(fenced("def add(a, b):\n    return a + b"), broken)
    score(fenced("def add(a, b):\n    return a + b"), broken, {"code": 1.0}, stats)
    assert stats.total("code") == 2
    with pytest.raises(ValueError, match="code_reward_mode"):
        code_reward(fenced("x = 1"), {**ADD_EXAMPLE, "code_reward_mode": "most"})


def test_answer_block_with_spaces_around_the_program_runs():
    from r1kit.rewards.code import code_reward, extract_program
    completion = " <think> Python can compute it. </think> <answer> print(7 + 5 - 3) </answer>"
    assert extract_program(completion) == "print(7 + 5 - 3)"
    example = {"id": "a", "problem": "p", "answer": "9", "tests": [{"input": "", "output": "9"}]}
    assert code_reward(completion, example) == 1.0
    assert code_reward(completion.replace("- 3", "- 4"), example) == 0.0
