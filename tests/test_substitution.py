"""The substitution task (r1kit.data.substitution), its rule reward and the search probes."""
import random
import re

import pytest

from r1kit.data import substitution as sub
from r1kit.eval.evaluate import DEFAULT_REFLECTION_PHRASES as PHRASES
from r1kit.eval.probes import (attempts, candidate_checks, has_correction, has_reflection, has_search_fix,
                               phenomena)
from r1kit.rewards import score_batch
from r1kit.rewards.substitution import accuracy_substitution

SEARCH = (" <think> try x = 6: 7 * 6 = 42, 42 + 3 = 45. wait, 45 < 59, too small. try x = 8: 7 * 8 = 56,"
          " 56 + 3 = 59. 59 = 59, yes. </think> <answer> 8 </answer>")
ONE_TRY = " <think> try x = 8: 7 * 8 = 56, 56 + 3 = 59. 59 = 59, yes. </think> <answer> 8 </answer>"
GAVE_UP = " <think> try x = 6: 7 * 6 = 42, 42 + 3 = 45. wait, 45 < 59, too small. </think> <answer> 6 </answer>"
GUESS = " <think> I know this one. </think> <answer> 5 </answer>"
CHAIN = " <think> 3 + 4 = 7. 7 + 2 = 9. 12 - 3 + 8 = 9 + 8. </think> <answer> 17 </answer>"
COUNTDOWN = " <think> try 7 + 5 = 12, 12 * 3 = 36. wait, 36 != 16. try 7 * 3 = 21, 21 - 5 = 16. 16 = 16, yes."


def test_reward_checks_the_equation_by_rule():
    ex = {"problem": "find x: 7 * x + 3 = 59", "answer": "8"}
    assert accuracy_substitution(SEARCH, ex) == 1.0
    assert accuracy_substitution(GAVE_UP, ex) == 0.0
    assert accuracy_substitution(" <answer> 08 </answer>", ex) == 1.0  # a number, not a string match
    assert accuracy_substitution(" <answer> 4 * 2 </answer>", ex) == 0.0  # never evaluated
    assert accuracy_substitution(" <answer> 8", ex) == 0.0  # no closed answer block
    assert accuracy_substitution(SEARCH, {"problem": "Compute 3 + 4", "answer": "7"}) is None
    total, parts = score_batch([SEARCH], [ex], [{"accuracy_substitution": 1.0}])[0]
    assert total == 1.0 and parts == {"accuracy_substitution": 1.0}


def test_held_out_set_is_disjoint_and_every_answer_solves_its_equation():
    train, test = sub.train_set(), sub.test_set()
    assert len(test) == sub.TEST_SIZE and len(train) + len(test) == len(sub.all_equations())
    assert not {p["problem"] for p in train} & {p["problem"] for p in test}
    for p in train + test:
        a, b, c = sub.parse_problem(p["problem"])
        assert sub.satisfies(a, b, c, int(p["answer"])) and 1 <= int(p["answer"]) <= sub.MAX_X
    assert sub.test_set(5) == test[:5]
    with pytest.raises(ValueError):
        sub.test_set(sub.TEST_SIZE + 1)


def test_search_traces_are_right_narrow_the_range_and_end_on_yes():
    rng = random.Random(0)
    counts = []
    for a, b, c in sub.all_equations()[::7]:
        x = (c - b) // a
        tries = sub.search_attempts(x, rng)
        assert tries[-1] == x and 1 <= len(tries) <= sub.MAX_ATTEMPTS and len(set(tries)) == len(tries)
        for g, later in zip(tries, tries[1:]):
            assert (later > g) == (g < x)  # each new candidate moves towards x
        text = sub.search_text(a, b, c, tries)
        assert attempts(text) == len(tries) and text.endswith(f"{c} = {c}, yes, so x = {x}.")
        counts.append(len(tries))
    assert 2.5 < sum(counts) / len(counts) < 4.5


def test_corpus_mixes_rare_template_search_with_drills_and_no_held_out_problem():
    docs = sub.corpus_documents(4000, 0.3, 0.4, 0.04, 0.3, seed=0)
    held_out = {p["problem"] for p in sub.test_set()}
    template = [d for d in docs if "<think> reasoning process here </think>" in d]
    searched = [d for d in template if "try x =" in d]
    assert 0.02 < len(searched) / len(template) < 0.06
    drills = [d for d in docs if d.startswith("User: evaluate") or " vs " in d]
    assert 0.35 < len(drills) / len(docs) < 0.45
    problems = set(re.findall(r"find x: \d+ \* x \+ \d+ = \d+", " ".join(docs)))
    assert problems and not problems & held_out
    assert docs == sub.corpus_documents(4000, 0.3, 0.4, 0.04, 0.3, seed=0)  # deterministic


def test_candidate_checks_are_comparisons_not_equations():
    assert candidate_checks(SEARCH) == [(45, "<", 59), (59, "=", 59)]
    assert candidate_checks(CHAIN) == []  # 3 + 4 = 7, 9 + 8: equations, not checks
    assert candidate_checks(COUNTDOWN) == [(36, "!=", 16), (16, "=", 16)]
    assert attempts(GUESS) == 0 and attempts(ONE_TRY) == 1


def test_a_candidate_check_is_reflection_and_a_rejected_then_changed_candidate_a_fix():
    assert has_reflection(ONE_TRY, PHRASES) and not has_reflection(CHAIN, PHRASES)
    assert has_search_fix(SEARCH) and has_correction(SEARCH, PHRASES)
    assert not has_search_fix(ONE_TRY) and not has_search_fix(GAVE_UP)  # no rejection / no new candidate
    assert not has_search_fix("45 < 59, too small. 45 < 59, too small.")  # the same value again
    assert has_search_fix(COUNTDOWN)


def test_attempt_figures_on_hand_written_responses():
    out = phenomena([SEARCH, ONE_TRY, GAVE_UP, GUESS, GUESS], [True, True, False, False, True],
                    [40, 20, 20, 5, 5], PHRASES)
    assert out["attempts_mean"] == pytest.approx((2 + 1 + 1) / 5)
    assert out["accuracy_attempts_0"] == 0.5 and out["accuracy_attempts_1"] == 0.5
    assert out["accuracy_attempts_2"] == 1.0 and out["accuracy_attempts_3plus"] is None
    assert out["accuracy_reflective"] == pytest.approx(2 / 3) and out["accuracy_non_reflective"] == 0.5
    assert out["reflection_fixes"] == pytest.approx(1 / 3)  # SEARCH only: ONE_TRY has no rejection


def test_report_draws_attempts_and_accuracy_by_attempts(tmp_path):
    from r1kit.report.data import RunData
    from r1kit.report.plots import plot_attempts, plot_attempts_accuracy

    rows = [{"step": s, "attempts_mean": 0.1 * s, "accuracy_attempts_0": 0.1, "accuracy_attempts_1": None,
             "accuracy_attempts_2": 0.5, "accuracy_attempts_3plus": 0.6} for s in range(1, 6)]
    run = RunData(run_dir=tmp_path, metrics=rows)
    assert plot_attempts(run, tmp_path / "a.png") is None and (tmp_path / "a.png").stat().st_size > 1000
    assert plot_attempts_accuracy(run, tmp_path / "b.png") is None and (tmp_path / "b.png").exists()
    assert "attempts_mean" in plot_attempts(RunData(run_dir=tmp_path, metrics=[{"step": 1}]), tmp_path / "c.png")
