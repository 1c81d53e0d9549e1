"""pass@k, majority vote and the result summary."""
from __future__ import annotations

from math import comb

import pytest

from r1kit.eval.metrics import majority_vote, pass_at_k, summarize


@pytest.mark.parametrize("n,c,k,expected", [
    (4, 1, 2, 0.5), (5, 2, 2, 0.7), (4, 0, 1, 0.0), (10, 0, 4, 0.0),
    (4, 3, 2, 1.0), (3, 1, 3, 1.0), (8, 8, 1, 1.0), (4, 1, 1, 0.25), (4, 2, 1, 0.5),
])
def test_pass_at_k_hand_computed(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected)


def test_pass_at_k_matches_binomials_and_is_stable():
    for n in range(1, 13):
        for c in range(n + 1):
            for k in range(1, n + 1):
                exact = 1 - comb(n - c, k) / comb(n, k)
                assert pass_at_k(n, c, k) == pytest.approx(exact, abs=1e-12)
    assert 0 < pass_at_k(2000, 3, 1000) < 1  # C(2000, 1000) would overflow a float


def test_pass_at_k_rejects_bad_arguments():
    for n, c, k in [(4, 5, 1), (4, 1, 0), (4, 1, 5), (4, -1, 1)]:
        with pytest.raises(ValueError):
            pass_at_k(n, c, k)


def test_majority_groups_equivalent_answers():
    assert majority_vote(["2", "\\frac12", "0.5", "2", "1/2"]) == "\\frac12"
    assert majority_vote([None, None, "3"]) == "3"
    assert majority_vote([None, None]) is None
    assert majority_vote([]) is None


def test_majority_tie_goes_to_first_group_and_checks_are_cached():
    calls = []

    def same(a, b):
        calls.append((a, b))
        return a == b

    assert majority_vote(["b", "a", "a", "b"], equivalent=same) == "b"
    assert majority_vote(["a", "b", "b", "a", "a", "b"] * 5, equivalent=same) == "a"
    assert len(calls) == 1 + 1  # one pair per call above, every repeat served from the cache


def test_summarize_keys_and_values():
    correct = [[True, False, False, False], [True, True, True, True], [False, False, False, False]]
    answers = [["1", "2", "2", "2"], ["5", "5.0", "10/2", "5"], ["0", "1", None, None]]
    refs = ["1", "5", "7"]
    r = summarize(correct, answers, refs)
    assert r["n_problems"] == 3 and r["n_responses"] == 12 and r["samples_per_problem"] == 4
    assert r["pass@1"] == pytest.approx((0.25 + 1 + 0) / 3)
    assert r["accuracy"] == pytest.approx(5 / 12)
    assert r["pass@2"] == pytest.approx((0.5 + 1 + 0) / 3)
    assert r["pass@4"] == pytest.approx((1 + 1 + 0) / 3)
    assert r["cons@4"] == pytest.approx(1 / 3)  # problem 1: "2" wins; problem 2: the 5s win
    assert "note" not in r


def test_summarize_uneven_counts_uses_min():
    r = summarize([[True, False, True], [True, False]], [["1", "2", "1"], ["3", "4"]], ["1", "3"])
    assert r["samples_per_problem"] == 2 and "cons@2" in r and "pass@2" in r and "pass@3" not in r
    assert r["samples_min"] == 2 and r["samples_max"] == 3 and "first 2" in r["note"]
    assert r["pass@1"] == pytest.approx((2 / 3 + 1 / 2) / 2)


def test_summarize_single_sample_has_no_cons():
    r = summarize([[True], [False]], [["1"], ["2"]], ["1", "1"])
    assert r["pass@1"] == 0.5 and not any(k.startswith("cons@") for k in r)
