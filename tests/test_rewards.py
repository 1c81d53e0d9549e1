"""Reward registry, extraction rules, equivalence time limits, format and language rewards."""
from __future__ import annotations

import signal
import threading
import time

import pytest

from r1kit.rewards.time_limit import with_alarm as _with_alarm

import r1kit.rewards as rewards
from r1kit.rewards import MAX_ABS_REWARD, REWARD_FUNCS, RewardStats, get_reward, register, score, score_batch
from r1kit.rewards.format import format_strict, format_think
from r1kit.data.language import LANGUAGES, chain_of_thought, language_consistency, words
from r1kit.rewards.math import (
    _HELPER, VERIFY_FAILURES, accuracy_math, answers_equivalent, extract_answer,
    extract_answer_lenient,
)

# --- registry and score ------------------------------------------------------------------------


def test_builtins_registered():
    assert {"accuracy_math", "accuracy", "format", "format_think", "language_consistency"} <= set(REWARD_FUNCS)
    assert get_reward("accuracy") is get_reward("accuracy_math") and get_reward("accuracy").fn is accuracy_math
    with pytest.raises(ValueError, match="unknown reward 'acuracy'.*accuracy_math"):
        get_reward("acuracy")


def test_score_weighted_sum():
    completion = "<think>2 + 3 = 5</think> <answer>5</answer>"
    total, values = score(completion, {"answer": "5"}, {"accuracy_math": 1.0, "format": 0.5})
    assert values == {"accuracy_math": 1.0, "format": 1.0} and total == 1.5


@pytest.fixture
def broken_reward():
    @register("test_broken")
    def broken(completion, example):
        raise KeyError("solution")

    @register("test_nan")
    def nan(completion, example):
        return float("nan")

    yield
    del REWARD_FUNCS["test_broken"], REWARD_FUNCS["test_nan"]


def test_raising_reward_is_zero_and_counted(broken_reward):
    stats = RewardStats()
    for _ in range(3):
        total, values = score("<think>a</think><answer>1</answer>", {"answer": "1"},
                              {"test_broken": 1.0, "test_nan": 1.0, "accuracy": 2.0}, stats)
        assert values == {"test_broken": 0.0, "test_nan": 0.0, "accuracy": 1.0} and total == 2.0
    assert stats.failures[("test_broken", "KeyError: 'solution'")] == 3
    assert stats.failures[("test_nan", "ValueError: non-finite reward nan")] == 3
    assert stats.total() == 6 and stats.total("test_nan") == 3
    assert stats.calls["accuracy"] == 3
    assert stats.as_dict()["failures"]["test_broken: KeyError: 'solution'"] == 3
    # a reward failing on bad input (unknown language) is also just counted
    _, values = score("hello", {"language": "xx"}, {"language_consistency": 1.0}, stats)
    assert values["language_consistency"] == 0.0
    assert any(name == "language_consistency" and "unknown language" in reason for name, reason in stats.failures)


@pytest.fixture
def batched_reward():
    calls = []

    @register("test_batched", batched=True)
    def batched(completions, examples):
        calls.append(list(completions))
        return [None if ex.get("kind") == "skip" else float(len(c)) for c, ex in zip(completions, examples)]

    yield calls
    del REWARD_FUNCS["test_batched"]


def test_batched_reward_is_called_once_on_the_rows_that_weigh_it(batched_reward):
    stats = RewardStats()
    texts = ["<answer>1</answer>", "ab", "abc", "<answer>2</answer>"]
    examples = [{"answer": "1"}, {"answer": "9"}, {"answer": "9", "kind": "skip"}, {"answer": "2"}]
    weights = [{"accuracy": 1.0}, {"test_batched": 0.5}, {"test_batched": 0.5}, {"accuracy": 1.0, "test_batched": 0.25}]
    scored = score_batch(texts, examples, weights, stats)
    assert batched_reward == [["ab", "abc", "<answer>2</answer>"]]  # one call, only the rows weighing it
    assert scored[0] == (1.0, {"accuracy": 1.0})
    assert scored[1] == (1.0, {"test_batched": 2.0})
    assert scored[2] == (0.0, {}), "None: not applicable, left out of the parts"
    assert scored[3] == (1.0 + 0.25 * 18, {"accuracy": 1.0, "test_batched": 18.0})  # len("<answer>2</answer>") = 18
    assert stats.calls == {"accuracy": 2, "test_batched": 3} and stats.total() == 0
    # the one-completion form goes through the same path
    assert score("abcd", {}, {"test_batched": 1.0}) == (4.0, {"test_batched": 4.0})


def test_batched_reward_with_a_wrong_count_fails_its_whole_batch():
    register("test_short_batch", batched=True)(lambda completions, examples: [1.0])
    try:
        stats = RewardStats()
        scored = score_batch(["a", "b", "c"], [{}] * 3, [{"test_short_batch": 1.0}] * 3, stats)
        assert [total for total, _ in scored] == [0.0, 0.0, 0.0]
        assert stats.failures[("test_short_batch", "ValueError: returned 1 scores for 3 completions")] == 3
    finally:
        del REWARD_FUNCS["test_short_batch"]


def test_out_of_range_and_non_numbers_score_zero_and_are_counted():
    register("test_huge")(lambda c, e: 1e300)
    register("test_text")(lambda c, e: "high")
    try:
        stats = RewardStats()
        total, parts = score("x", {}, {"test_huge": 1.0, "test_text": 1.0, "format": 1.0}, stats)
        assert total == 0.0 and parts == {"test_huge": 0.0, "test_text": 0.0, "format": 0.0}
        assert stats.failures[("test_huge", f"ValueError: reward 1e+300 out of range (|value| > {MAX_ABS_REWARD:g})")] == 1
        assert any(name == "test_text" and reason.startswith("ValueError: could not convert")
                   for name, reason in stats.failures)
    finally:
        del REWARD_FUNCS["test_huge"], REWARD_FUNCS["test_text"]


def test_a_hanging_reward_is_cut_at_its_time_limit():
    register("test_sleeps")(lambda c, e: time.sleep(30) or 1.0)
    try:
        stats = RewardStats()
        started = time.monotonic()
        total, parts = score("<answer>3</answer>", {"answer": "3"}, {"test_sleeps": 1.0, "accuracy": 1.0}, stats,
                             timeout_s=0.5)
        assert time.monotonic() - started < 5
        assert total == 1.0 and parts == {"test_sleeps": 0.0, "accuracy": 1.0}
        assert stats.failures[("test_sleeps", "TimeoutError: no result within 0.5 s")] == 1
    finally:
        del REWARD_FUNCS["test_sleeps"]


def test_register_refuses_duplicates():
    with pytest.raises(ValueError, match="already registered"):
        register("format")(lambda c, e: 0.0)
    assert rewards.REWARD_FUNCS["format"].fn is format_strict


# --- extraction ------------------------------------------------------------------------------

@pytest.mark.parametrize("completion,strict,lenient", [
    ("<answer>3</answer> then <answer> 25 </answer>", "25", "25"),
    ("<think>\\boxed{1}</think><answer>$\\boxed{7}$</answer>", "7", "7"),
    ("<answer>  </answer> \\boxed{4}", None, None),  # the answer block decides, even when empty
    ("so \\boxed{1} and finally \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}", "\\frac{1}{2}"),
    ("\\boxed{\\{1,2\\}}", "\\{1,2\\}", "\\{1,2\\}"),
    ("\\fbox{12}", "12", "12"),
    ("\\boxed 5 is it", "5", "5"),
    ("\\boxed{3} then \\boxed{4", "3", "3"),  # an unclosed box is skipped
    ("<answer>9", None, None),
    ("d = \\boxed{\\textbf{(073)}}.", "(073)", "(073)"),
    ("The answer is $25$.", None, "25"),
    ("So the final answer is: **$\\frac12$**", None, "\\frac12"),
    ("The answer is 18 dollars.", None, "18"),
    ("Answer: x = 4\nDone", None, "x = 4"),
    ("She pays 3*6 = <<3*6=18>>18.\n#### 1,234", None, "1234"),
    ("#### Step 1\nwe get $x = 3$ here.\n", None, "x = 3"),  # a markdown heading is not "#### X"
    ("first $x=1$ and then $y = 2$.", None, "y = 2"),
    ("It costs \\$5 and \\$6, so 11", None, None),
    ("no answer here", None, None),
])
def test_extraction_rules(completion, strict, lenient):
    assert extract_answer(completion) == strict
    assert extract_answer_lenient(completion) == lenient


def test_extraction_is_linear_on_degenerate_text():
    started = time.monotonic()
    assert extract_answer("\\boxed{" * 20000 + "\\boxed{7}") == "7"
    assert extract_answer("\\boxed{1}" + "\\boxed{" * 20000) == "1"
    assert time.monotonic() - started < 2


# --- equivalence -----------------------------------------------------------------------------

@pytest.mark.parametrize("pred,ref,expected", [
    ("25", "25", True), ("025", "25", True), ("\\frac12", "0.5", True), ("1/2", "\\frac{1}{2}", True),
    ("0.5", "\\dfrac{1}{2}", True), ("2,125", "2125", True), ("x = 5", "5", True),
    ("\\sqrt{8}", "2\\sqrt2", True), ("(073)", "73", True),
    ("24", "25", False), ("0.333", "\\frac13", False), ("", "1", False), (None, "1", False),
])
def test_answers_equivalent(pred, ref, expected):
    assert answers_equivalent(pred, ref) is expected


def test_accuracy_needs_answer_tag_or_box():
    example = {"answer": "\\frac{1}{2}"}
    assert accuracy_math("<think>..</think><answer>0.5</answer>", example) == 1.0
    assert accuracy_math("so it is \\boxed{1/2}", example) == 1.0
    assert accuracy_math("The answer is $\\frac12$", example) == 0.0
    assert accuracy_math("<answer>0.4</answer>", example) == 0.0
    assert accuracy_math("<answer>5</answer>", {"answer": 5}) == 1.0  # non-string reference


def test_timeout_main_thread_restores_callers_timer():
    fired = []
    old = signal.signal(signal.SIGALRM, lambda *a: fired.append(1))
    old_timer = signal.getitimer(signal.ITIMER_REAL)  # pytest-timeout may have one running
    try:
        signal.setitimer(signal.ITIMER_REAL, 30.0)
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            _with_alarm(lambda: time.sleep(5), 0.2)
        assert time.monotonic() - started < 2
        before = VERIFY_FAILURES["timeout"]
        assert answers_equivalent("9^{9^{9}}", "1", timeout_s=0.5) is False  # sympy would take ages
        assert VERIFY_FAILURES["timeout"] == before + 1
        remaining, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 25 < remaining < 30  # the caller's timer still runs, minus the elapsed time
        assert fired == []
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        if old_timer[0] > 0:
            signal.setitimer(signal.ITIMER_REAL, *old_timer)


def _in_thread(fn):
    out = []
    t = threading.Thread(target=lambda: out.append(fn()))
    t.start()
    t.join(120)
    return out[0]


def test_equivalence_in_worker_thread_uses_helper_process(monkeypatch):
    assert _in_thread(lambda: answers_equivalent("0.5", "\\frac{1}{2}")) is True
    assert _in_thread(lambda: answers_equivalent("3", "\\frac{1}{2}")) is False
    before = VERIFY_FAILURES["timeout"]
    assert _in_thread(lambda: answers_equivalent("9^{9^{9}}", "1", timeout_s=0.5)) is False
    # a helper that does not answer in time is killed, and a fresh one serves the next call
    monkeypatch.setattr(_HELPER, "GRACE_S", -0.45)
    assert _in_thread(lambda: answers_equivalent("9^{9^{9}}", "2", timeout_s=0.5)) is False
    assert _HELPER.proc is None
    monkeypatch.setattr(_HELPER, "GRACE_S", 2.0)
    assert _in_thread(lambda: answers_equivalent("1/4", "0.25")) is True
    assert VERIFY_FAILURES["timeout"] == before + 2


# --- format ----------------------------------------------------------------------------------

@pytest.mark.parametrize("completion,expected", [
    ("<think>2+3=5</think><answer>5</answer>", 1.0),
    (" <think> a\nb </think>\n <answer> 5 </answer>\n", 1.0),
    ("<think></think><answer>5</answer>", 1.0),
    ("<think>a</think><answer> </answer>", 0.0),  # blank answer
    ("<think>a</think> text <answer>5</answer>", 0.0),  # text between the blocks
    ("hello <think>a</think><answer>5</answer>", 0.0),
    ("<think>a</think><answer>5</answer> bye", 0.0),
    ("<think>a <think>b</think></think><answer>5</answer>", 0.0),  # nested
    ("<think>a</think><answer>5</answer><answer>6</answer>", 0.0),  # duplicate
    ("<answer>5</answer><think>a</think>", 0.0),  # wrong order
    ("<think>a</think>", 0.0),
    ("<think>a <answer>5</answer></think><answer>5</answer>", 0.0),
])
def test_format_strict(completion, expected):
    assert format_strict(completion, {}) == expected


@pytest.mark.parametrize("completion,expected", [
    ("<think>reasoning</think>The answer is 5.", 1.0),
    ("\n<think>\nreasoning\n</think>\n\n**5**", 1.0),
    ("reasoning continues (prompt opened the tag)</think> So 5.", 1.0),
    ("</think>5", 1.0),
    ("<think>reasoning</think>   \n", 0.0),  # no summary
    ("<think>reasoning", 0.0),  # never closed
    ("reasoning</think>a</think>b", 0.0),
    ("<think>a</think><think>b</think>c", 0.0),
    ("intro <think>a</think> c", 0.0),  # an opened tag must come first
    ("just text", 0.0),
])
def test_format_think(completion, expected):
    assert format_think(completion, {}) == expected


# --- language ----------------------------------------------------------------------------------

def test_words_and_chain_of_thought():
    assert words("Let x = 3, so \\frac{x}{2} is 1.5; 我们 wait") == ["Let", "so", "is", "我", "们", "wait"]
    assert chain_of_thought("<think>inside</think>outside") == "inside"
    assert chain_of_thought("opened by prompt</think>summary") == "opened by prompt"
    assert chain_of_thought("<think>truncated") == "truncated"
    assert chain_of_thought("plain") == "plain"


def test_language_consistency():
    assert language_consistency("<think>First add the numbers, then check.</think>答案", {}) == 1.0
    assert language_consistency("<think>First 我们 add 计算</think>", {}) == pytest.approx(2 / 6)
    assert language_consistency("<think>我们计算 sum</think>", {"language": "zh"}) == pytest.approx(4 / 5)
    assert language_consistency("<think>3 + 4 = 7, x = 2</think>", {}) == 1.0  # no words
    assert language_consistency("", {}) == 1.0
    assert language_consistency("so the café is naïve", {}) == pytest.approx(3 / 5)
    mixed = "<think>we add donc the result est 7</think>"
    assert language_consistency(mixed, {"foreign_words": ["donc", "est"]}) == pytest.approx(4 / 6)
    with pytest.raises(ValueError, match="unknown language 'xx'"):
        language_consistency("hi", {"language": "xx"})


def test_language_registry_is_extensible(monkeypatch):
    monkeypatch.setitem(LANGUAGES, "ru", lambda w: all("\u0400" <= ch <= "\u04ff" for ch in w))
    assert language_consistency("<think>сначала add числа</think>", {"language": "ru"}) == pytest.approx(2 / 3)
