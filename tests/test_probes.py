"""The phenomenon probes (r1kit.eval.probes) on hand-written responses."""
import pytest

from r1kit.eval.evaluate import DEFAULT_REFLECTION_PHRASES as PHRASES
from r1kit.eval.probes import has_correction, phenomena, rollout_phenomena

FIXED = " <think> 3 + 4 = 6. wait, let me check: 3 + 4 = 7. 7 + 2 = 9. </think> <answer> 9 </answer>"
ECHO = " <think> 3 + 4 = 7. wait, let me check: 3 + 4 = 7. 7 + 2 = 9. </think> <answer> 9 </answer>"
PLAIN = " <think> 3 + 4 = 7. 7 + 2 = 9. </think> <answer> 9 </answer>"
GUESS = " <think> This is easy. </think> <answer> 8 </answer>"
MIXED = " <think> Prëmo 3 + 4 = 7. Dåna 7 + 2 = 9. </think> <answer> 9 </answer>"


def test_a_correction_needs_a_changed_value_after_a_phrase():
    assert has_correction(FIXED, PHRASES)
    assert not has_correction(ECHO, PHRASES)  # the phrase re-derived the same value
    assert not has_correction("3 + 4 = 6. 3 + 4 = 7. wait", PHRASES)  # changed, but before any phrase
    assert not has_correction("3 + 4 = 6. wait. 5 + 4 = 9.", PHRASES)  # a different equation
    assert has_correction("12 - 5 = 6, hmm, let me check: 12-5 = 7", PHRASES)  # spacing is ignored


def test_phenomena_on_hand_written_responses():
    texts = [FIXED, ECHO, PLAIN, GUESS]
    correct = [True, False, True, False]
    out = phenomena(texts, correct, [20, 20, 10, 6], PHRASES, [1.0, 1.0, 0.5, None])
    assert out["accuracy_reflective"] == 0.5 and out["accuracy_non_reflective"] == 0.5
    assert out["reflection_fixes"] == 0.5  # FIXED is a fix; ECHO is a phrase only
    assert out["length_correct"] == 15 and out["length_incorrect"] == 13
    assert out["language_mixing_rate"] == pytest.approx(1 / 3)  # the None is left out


def test_an_empty_side_is_none():
    out = phenomena([PLAIN, GUESS], [True, True], [10, 6], PHRASES)
    assert out["accuracy_reflective"] is None and out["reflection_fixes"] is None
    assert out["length_incorrect"] is None and out["language_mixing_rate"] is None
    assert out["accuracy_non_reflective"] == 1.0


def test_a_wrong_fix_is_no_fix():
    assert phenomena([FIXED], [False], [20], PHRASES)["reflection_fixes"] == 0.0


def _rollout(text):
    """A rollout of ``text`` with one token per word."""
    from r1kit.rollout import Rollout

    n = len(text.split())
    return Rollout(0, [0] * n, [0.0] * n, text, "eos")


class _G:
    def __init__(self, texts, parts, example):
        self.rollouts, self.parts, self.example = [_rollout(t) for t in texts], parts, example


def test_rollout_phenomena_grades_by_the_accuracy_reward_and_measures_mixing():
    groups = [_G([FIXED, MIXED], [{"accuracy_math": 1.0}, {"accuracy_math": 0.0}], {"answer": "9"}),
              _G([GUESS], [{"helpfulness": 0.3}], {"kind": "general"})]
    out = rollout_phenomena(groups, "accuracy_math", PHRASES)
    assert out["accuracy_reflective"] == 1.0 and out["accuracy_non_reflective"] == 0.0
    assert out["reflection_fixes"] == 1.0
    assert out["length_correct"] == len(FIXED.split()) and out["length_incorrect"] == len(MIXED.split())
    assert out["language_mixing_rate"] == pytest.approx(1 / 3)  # MIXED: its two words are foreign
    assert out["language_consistency"] == pytest.approx((1 + 0 + 1) / 3)


# Search (issue 26): checks of a candidate against the target; with their verdict they are self-verification.
SEARCH = (" <think> try x = 6: 7 * 6 = 42, 42 + 3 = 45. compare 45 with 59: 45 < 59, too small, so x > 6."
          " wait, try x = 8: 7 * 8 = 56, 56 + 3 = 59. compare 59 with 59: 59 = 59, yes, so x = 8. </think>"
          " <answer> 8 </answer>")
ONE_TRY = " <think> try x = 8: 7 * 8 = 56, 56 + 3 = 59. 59 = 59, yes. </think> <answer> 8 </answer>"
GAVE_UP = " <think> try x = 6: 7 * 6 = 42, 42 + 3 = 45. 45 < 59, too small. </think> <answer> 6 </answer>"
CHAIN = " <think> 3 + 4 = 7. 7 + 2 = 9. 12 - 3 + 8 = 9 + 8. </think> <answer> 17 </answer>"
COUNTDOWN = (" <think> numbers 7 3 5. try (7 + 3) - 5: 7 + 3 = 10, 10 - 5 = 5. reach 16? 5 != 16, no. wait, try (7 * 3) - 5:"
             " 7 * 3 = 21, 21 - 5 = 16. reach 16? 16 = 16, yes, so (7 * 3) - 5. </think> <answer> (7 * 3) - 5 </answer>")


def test_candidate_checks_are_comparisons_not_equations():
    from r1kit.eval.probes import attempts, candidate_checks

    assert candidate_checks(SEARCH) == [(45, "<", 59), (59, "=", 59)]
    assert candidate_checks(CHAIN) == [] and candidate_checks(FIXED) == []  # equations, not checks
    assert candidate_checks(COUNTDOWN) == [(5, "!=", 16), (16, "=", 16)]
    assert attempts(GUESS) == 0 and attempts(ONE_TRY) == 1 and attempts(SEARCH) == 2


def test_a_rejected_then_changed_candidate_is_a_search_fix_and_a_check_with_its_verdict_is_reflection():
    from r1kit.eval.probes import has_reflection, has_search_fix, has_verified_check

    # a check with its verdict is self-verification; a restated value without one is not (arithmetic: "12 = 12")
    assert has_reflection(ONE_TRY, PHRASES) and has_reflection(GAVE_UP, PHRASES) and has_verified_check(COUNTDOWN)
    assert not has_reflection("12 = 12. 12 + 3 = 15.", PHRASES) and not has_verified_check(CHAIN)
    assert not has_reflection(" <think> 7 + 8 = 15, no more. </think>", [])  # "= 15, no": an equation's value
    assert has_search_fix(SEARCH) and not has_correction(ONE_TRY, PHRASES)
    assert not has_search_fix(ONE_TRY) and not has_search_fix(GAVE_UP)  # no rejection / no new candidate
    assert not has_search_fix("45 < 59, too small. 45 < 59, too small.")  # the same value again
    assert has_search_fix(COUNTDOWN)


def test_attempt_figures_on_hand_written_responses():
    out = phenomena([SEARCH, ONE_TRY, GAVE_UP, GUESS, GUESS], [True, True, False, False, True],
                    [40, 20, 20, 5, 5], PHRASES)
    assert out["attempts_mean"] == pytest.approx((2 + 1 + 1) / 5)
    assert out["accuracy_attempts_0"] == 0.5 and out["accuracy_attempts_1"] == 0.5
    assert out["accuracy_attempts_2"] == 1.0 and out["accuracy_attempts_3plus"] is None
    assert out["accuracy_reflective"] == pytest.approx(2 / 3) and out["accuracy_non_reflective"] == 0.5  # checks
    assert out["reflection_fixes"] == pytest.approx(1 / 3)  # SEARCH: rejected 6, then 8, right
    assert out["search_fix_rate"] == pytest.approx(1 / 5)  # SEARCH only: ONE_TRY has no rejection


def test_arithmetic_figures_are_unchanged_by_the_search_probes():
    out = phenomena([FIXED, ECHO, PLAIN, GUESS], [True, False, True, False], [20, 20, 10, 6], PHRASES)
    assert out["attempts_mean"] == 0 and out["accuracy_attempts_0"] == 0.5 and out["search_fix_rate"] == 0
    assert out["accuracy_reflective"] == 0.5 and out["reflection_fixes"] == 0.5


def test_report_draws_attempts_and_accuracy_by_attempts(tmp_path):
    from r1kit.report.data import RunData
    from r1kit.report.plots import plot_attempts, plot_attempts_accuracy

    rows = [{"step": s, "attempts_mean": 0.1 * s, "accuracy_attempts_0": 0.1, "accuracy_attempts_1": None,
             "accuracy_attempts_2": 0.5, "accuracy_attempts_3plus": 0.6} for s in range(1, 6)]
    run = RunData(run_dir=tmp_path, metrics=rows)
    assert plot_attempts(run, tmp_path / "a.png") is None and (tmp_path / "a.png").stat().st_size > 1000
    assert plot_attempts_accuracy(run, tmp_path / "b.png") is None and (tmp_path / "b.png").exists()
    for flat in ([{"step": 1}], [{"step": s, "attempts_mean": 0.0} for s in range(1, 6)]):  # no search: no plot
        assert "not a search task" in plot_attempts(RunData(run_dir=tmp_path, metrics=flat), tmp_path / "c.png")
        assert "not a search task" in plot_attempts_accuracy(RunData(run_dir=tmp_path, metrics=flat), tmp_path / "c.png")
    assert not (tmp_path / "c.png").exists()


def test_no_arithmetic_or_calculator_corpus_document_holds_a_verified_check():
    """The verdict rule leaves the arithmetic tasks' reflection figures phrase-based: none of their
    corpus documents (every style, worded and mixed-language chains, calculator answers) has one."""
    from r1kit.eval.probes import has_verified_check
    from r1kit.models.tiny import corpus_documents, tiny_config

    for size in ("base", "mixed", "calc"):
        docs = corpus_documents(tiny_config(size, corpus_size=3000))
        assert not [d for d in docs if has_verified_check(d)], size
