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


class _R:
    def __init__(self, text):
        self.text, self.token_ids = text, [0] * len(text.split())


class _G:
    def __init__(self, texts, parts, example):
        self.rollouts, self.parts, self.example = [_R(t) for t in texts], parts, example


def test_rollout_phenomena_grades_by_the_accuracy_reward_and_measures_mixing():
    groups = [_G([FIXED, MIXED], [{"accuracy_math": 1.0}, {"accuracy_math": 0.0}], {"answer": "9"}),
              _G([GUESS], [{"helpfulness": 0.3}], {"kind": "general"})]
    out = rollout_phenomena(groups, "accuracy_math", PHRASES)
    assert out["accuracy_reflective"] == 1.0 and out["accuracy_non_reflective"] == 0.0
    assert out["reflection_fixes"] == 1.0
    assert out["length_correct"] == len(FIXED.split()) and out["length_incorrect"] == len(MIXED.split())
    assert out["language_mixing_rate"] == pytest.approx(1 / 3)  # MIXED: its two words are foreign
    assert out["language_consistency"] == pytest.approx((1 + 0 + 1) / 3)
