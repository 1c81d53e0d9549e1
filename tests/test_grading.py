"""The grader against the real benchmark files: reference solutions must grade correct, swapped
solutions must not, and the answer forms of the extraction rules grade as documented."""
from __future__ import annotations

import json

import pytest

from r1kit.rewards.time_limit import with_alarm as _with_alarm

from r1kit.data.benchmarks import load_problems
from r1kit.data.jsonl import DataError, read_jsonl, write_jsonl
from r1kit.eval.grade import grade, run_grade
from r1kit.rewards.math import _verify_now, accuracy_math, answers_equivalent


def _responses(rows, solutions):
    return [{"id": row["id"], "response": text} for row, text in zip(rows, solutions)]


def _derangement(rows):
    """Row i gets the solution of the next row (cyclically) whose reference answer differs from
    row i's as a string, so a hit is a grader false positive, not two problems sharing an answer."""
    out = []
    for i, row in enumerate(rows):
        j = (i + 1) % len(rows)
        while rows[j]["answer"].strip() == row["answer"].strip():
            j = (j + 1) % len(rows)
        out.append(rows[j]["solution"])
    return out


@pytest.mark.parametrize("name", ["math500", "gsm8k"])
def test_reference_solutions_grade_correct_and_swapped_ones_do_not(name, record_property):
    rows = load_problems(name)
    graded, results = grade(rows, _responses(rows, [r["solution"] for r in rows]))
    agreement = results["accuracy"]
    misses = [(g["id"], g["extracted"]) for g in graded if not g["correct"]]

    _, deranged = grade(rows, _responses(rows, _derangement(rows)))

    # plain rotation by one: every hit must be a pair whose reference answers really are equivalent
    rotated, rot_results = grade(rows, _responses(rows, [rows[(i + 1) % len(rows)]["solution"]
                                                          for i in range(len(rows))]))
    hits = [i for i, g in enumerate(rotated) if g["correct"]]
    false_hits = [rows[i]["id"] for i in hits
                  if not answers_equivalent(rows[(i + 1) % len(rows)]["answer"], rows[i]["answer"])]

    summary = (f"{name}: reference solutions {agreement:.2%} correct ({len(rows)} rows); derangement "
               f"{deranged['accuracy']:.2%}; rotation by one {rot_results['accuracy']:.2%} "
               f"({len(hits)} hits, all between equal answers: {not false_hits})")
    print(summary)
    record_property("grader_agreement", summary)
    assert agreement >= 0.995, misses[:20]
    assert deranged["accuracy"] <= 0.005
    assert not false_hits
    assert results["verify_failures"] == 0 and deranged["verify_failures"] == 0


@pytest.mark.parametrize("name", ["math500", "aime2024", "gsm8k"])
def test_math_verify_accepts_every_reference_answer(name):
    """Grading shortcuts identical strings; here every reference answer goes through math-verify
    itself (parse + verify against itself), so no answer of the benchmark is unparseable junk."""
    rows = load_problems(name)
    rejected = [r["id"] for r in rows if not _with_alarm(lambda: _verify_now(r["answer"], r["answer"]), 5)]
    assert rejected == []


def test_aime_answer_forms_all_30():
    rows = load_problems("aime2024")
    assert len(rows) == 30
    forms = {
        "boxed_padded": lambda a: f"So the total is $\\boxed{{{int(a):03d}}}$.",
        "answer_tag": lambda a: f"<think>work</think> <answer>{a}</answer>",
        "answer_is": lambda a: f"Adding up, the answer is ${a}$.",
        "wrong_boxed": lambda a: f"\\boxed{{{int(a) + 1}}}",
        "wrong_tag_right_text": lambda a: f"The answer is ${a}$. <answer>{int(a) + 1}</answer>",
    }
    # form -> (correct under lenient grading, accuracy_math reward)
    expected = {
        "boxed_padded": (True, 1.0), "answer_tag": (True, 1.0), "answer_is": (True, 0.0),
        "wrong_boxed": (False, 0.0), "wrong_tag_right_text": (False, 0.0),
    }
    for form, make in forms.items():
        texts = [make(r["answer"]) for r in rows]
        graded, _ = grade(rows, _responses(rows, texts))
        assert [g["correct"] for g in graded] == [expected[form][0]] * 30, form
        assert [accuracy_math(t, r) for t, r in zip(texts, rows)] == [expected[form][1]] * 30, form
        strict, _ = grade(rows, _responses(rows, texts), lenient=False)
        assert [g["correct"] for g in strict] == [bool(expected[form][1])] * 30, form


def test_cons_groups_equivalent_answers():
    rows = [{"id": "half", "problem": "?", "answer": "\\frac{1}{2}"},
            {"id": "two", "problem": "?", "answer": "2"}]
    votes = ["\\boxed{\\frac12}", "\\boxed{0.5}", "\\boxed{1/2}", "\\boxed{2}", "\\boxed{2}"]
    responses = [{"id": pid, "response": v} for pid in ("half", "two") for v in votes]
    graded, results = grade(rows, responses)
    assert results["cons@5"] == 0.5  # "half" wins 3 to 2, "two" loses 2 to 3
    assert results["pass@1"] == pytest.approx((3 / 5 + 2 / 5) / 2)
    assert results["pass@4"] == 1.0 and results["n_responses"] == 10 and results["n_problems"] == 2


def test_unknown_response_id_is_named():
    rows = [{"id": "a", "problem": "?", "answer": "1"}]
    with pytest.raises(DataError, match="'zz'"):
        grade(rows, [{"id": "a", "response": "\\boxed{1}"}, {"id": "zz", "response": "1"}])


def test_run_grade_writes_results(tmp_path):
    rows = load_problems("aime2024")
    responses = []
    for i, r in enumerate(rows):
        samples = [f"\\boxed{{{r['answer']}}}", f"The answer is {r['answer']}.", "\\boxed{0}", "no idea"]
        responses += [{"id": r["id"], "response": s} for s in samples[: 4 if i else 3]]  # one id has 3
    write_jsonl(tmp_path / "responses.jsonl", responses)
    results = run_grade("aime2024", tmp_path / "responses.jsonl", tmp_path / "out")
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved == json.loads(json.dumps(results))
    assert saved["accuracy"] == pytest.approx(60 / 119)
    assert saved["pass@1"] == pytest.approx((2 / 3 + 29 * 0.5) / 30)
    assert saved["samples_per_problem"] == 3 and "cons@3" in saved and "note" in saved
    assert saved["cons@3"] == 1.0  # 2 of the first 3 samples agree on the right answer
    graded = read_jsonl(tmp_path / "out" / "graded.jsonl")
    assert len(graded) == 119 and set(graded[0]) == {"id", "response", "extracted", "correct"}
    assert graded[1]["extracted"] == rows[0]["answer"] and graded[6]["extracted"] is None  # "no idea"
