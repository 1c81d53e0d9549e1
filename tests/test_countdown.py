"""The Countdown task in order (issue 26): generator, rule reward, held-out split, corpus, crux audit."""
import random
from collections import Counter

from r1kit.data import countdown as cd
from r1kit.eval.probes import attempts, candidate_checks
from r1kit.rewards.countdown import accuracy_countdown, parse_expression, solves


def test_parser_follows_precedence_and_parentheses_and_refuses_anything_else():
    assert parse_expression("(7 * 3) - 5") == (16, [7, 3, 5])
    assert parse_expression("7 + 5 * 3") == (22, [7, 5, 3])
    assert parse_expression("(7 + 5) * 3") == (36, [7, 5, 3])
    assert parse_expression("9 - (2 + 3)") == (4, [9, 2, 3])
    assert parse_expression("9 - 2 - 3") == (4, [9, 2, 3])  # left to right
    for bad in ("(7 + 5", "7 / 3", "7 ** 3", "__import__('os')", "", "7 5", "2 +"):
        assert parse_expression(bad) is None, bad


def test_reward_needs_each_number_once_and_the_target():
    ex = {"problem": "reach 16 with 7 3 5"}
    assert accuracy_countdown(" <think> t </think> <answer> (7 * 3) - 5 </answer>", ex) == 1.0
    assert accuracy_countdown("<answer> 7 * 3 - 5 </answer>", ex) == 1.0
    assert accuracy_countdown("<answer> (7 + 5) * 3 </answer>", ex) == 0.0   # 36
    assert accuracy_countdown("<answer> 7 + 7 + 2 </answer>", ex) == 0.0     # 16, other numbers
    assert accuracy_countdown("<answer> 7 * 3 - 5 + 0 </answer>", ex) == 0.0  # an extra number
    assert accuracy_countdown("<answer> 16 </answer>", ex) == 0.0
    assert accuracy_countdown("no answer", ex) == 0.0
    assert accuracy_countdown("<answer> 1 </answer>", {"problem": "find x: 2 * x + 1 = 3"}) is None
    four = {"problem": "reach 18 with 7 3 5 2"}
    assert accuracy_countdown("<answer> ((7 * 3) - 5) + 2 </answer>", four) == 1.0
    assert accuracy_countdown("<answer> (7 * 3) - 5 </answer>", four) == 0.0  # 2 unused


def test_candidates_keep_the_order_and_the_range_and_are_what_their_text_says():
    for numbers in [(7, 3, 5), (1, 1, 1), (9, 9, 9), (2, 8, 4), (7, 3, 5, 2), (9, 1, 9, 1)]:
        cands = cd.candidates(numbers)
        assert cands and len({c.text() for c in cands}) == len(cands) <= 3 ** (len(numbers) - 1)
        for c in cands:
            assert c.numbers == numbers and all(0 <= v <= cd.MAX_VALUE for v in c.partials)
            assert solves(c.text(), numbers, c.value) and parse_expression(c.text())[1] == list(numbers)
    assert cd.Candidate((7, 3, 5, 2), "*-+").text() == "((7 * 3) - 5) + 2"
    assert cd.Candidate((7, 3, 5, 2), "*-+").evaluation() == "7 * 3 = 21, 21 - 5 = 16, 16 + 2 = 18"
    assert not cd.Candidate((3, 7, 5), "-+").in_range()  # 3 - 7 < 0
    assert cd.parse_problem("reach 18 with 7 3 5 2") == ((7, 3, 5, 2), 18)


def test_held_out_set_is_fixed_mixed_and_disjoint_from_training():
    test, train = cd.test_set(), cd.train_set()
    assert len(test) == cd.TEST_SIZE and test == cd.test_set()
    sizes = [len(cd.parse_problem(ex["problem"])[0]) for ex in test]
    assert sizes[:4] == [3, 4, 3, 4] and sizes.count(3) == sizes.count(4)
    key = lambda ex: (tuple(sorted(cd.parse_problem(ex["problem"])[0])), cd.parse_problem(ex["problem"])[1])
    assert not {key(e) for e in test} & {key(e) for e in train}
    assert sum(len(cd.parse_problem(ex["problem"])[0]) == 4 for ex in train) == cd.TRAIN_FOUR
    for ex in test + train[:200] + train[-200:]:
        assert accuracy_countdown(f"<answer> {ex['answer']} </answer>", ex) == 1.0


def test_search_traces_check_honestly_and_pay_over_direct_guesses():
    rng = random.Random(0)
    problems = cd._train_problems()[::30]
    direct = [accuracy_countdown(cd.solution(n, t, "direct", rng), {"problem": cd.problem_text(n, t)})
              for n, t in problems]
    assert 0.08 < sum(direct) / len(direct) < 0.25
    tries, right = Counter(), 0
    for n, t in problems:
        text = cd.solution(n, t, "search", rng)
        checks = candidate_checks(text)
        thought = text.split("</think>")[0]
        assert thought.startswith(f" <think> numbers {' '.join(map(str, n))}. try ")
        tries[thought.count("try ")] += 1
        assert len(checks) == thought.count("try ") <= cd.MAX_ATTEMPTS
        assert all((rel == "=") == (v == t) and target == t for v, rel, target in checks)
        assert all(rel == "!=" for _, rel, _ in checks[:-1])
        ok = accuracy_countdown(text, {"problem": cd.problem_text(n, t)}) == 1.0
        if checks[-1][1] == "=":  # an accepting verdict restates its candidate, and the answer is it
            accepted = thought.rsplit("try ", 1)[1].split(":")[0]
            assert f"yes, so {accepted}. " in thought and f"<answer> {accepted} </answer>" in text and ok
        right += ok
    assert right / len(problems) > 3 * sum(direct) / len(direct)
    assert tries[1] and tries[cd.MAX_ATTEMPTS]
    assert attempts(cd.solution(*problems[0], "direct", rng)) == 0


def test_corpus_is_deterministic_with_rare_checks_under_the_template():
    docs = cd.corpus_documents(3000, 0.3, 0.3, (0.03, 0.01), (0.5, 0.1), seed=5)
    assert docs == cd.corpus_documents(3000, 0.3, 0.3, (0.03, 0.01), (0.5, 0.1), seed=5)
    template = [d for d in docs if "<think> reasoning process here" in d]
    checked = [d for d in template if attempts(d.split("Assistant:")[-1])]
    assert 0.01 < len(checked) / len(template) < 0.08
    drills = [d for d in docs if "reach" not in d]
    assert abs(len(drills) / len(docs) - 0.3) < 0.01
    kinds = Counter("evaluate" if "evaluate" in d else "vs" for d in drills)
    assert abs(kinds["evaluate"] / len(drills) - 0.5) < 0.05
    assert not any("numbers" in d or "try" in d for d in drills)  # the words after which a trace copies
    assert {len(cd.parse_problem(d.split("User: ")[-1].split(".")[0])[0]) for d in docs if d.startswith("User: reach")} == {3, 4}


def _crux():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "countdown_crux.py"
    spec = importlib.util.spec_from_file_location("countdown_crux", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_crux_audit_finds_no_fault_in_honest_traces_and_names_each_false_yes():
    audit, rng, totals = _crux().audit, random.Random(1), Counter()
    for n, t in cd._train_problems()[::90]:
        audit(cd.solution(n, t, "search", rng), cd.problem_text(n, t), totals)
    assert totals["evals"] and totals["evals_right"] == totals["relation_right"] == totals["follows"] == totals["evals"]
    assert totals["evals_in_range"] == totals["evals_in_range_right"] == totals["evals"]  # the corpus stays in 0..30
    assert totals["false_yes"] == totals["foreign_tries"] == 0
    assert totals["yes"] == totals["restated"] == totals["true_last_yes"] == totals["true_last_yes_answered"]
    bent = (" <think> numbers 7 3 5. try (7 + 3) + 5: 7 + 3 = 10, 10 + 5 = 16. reach 16? 16 = 16, yes, "
            "so (7 + 3) + 5. </think> <answer> (7 + 3) + 5 </answer>")
    foreign = bent.replace("(7 + 3) + 5", "(7 * 3) - 6").replace("7 + 3 = 10, 10 + 5", "7 * 3 = 21, 21 - 6")
    got = Counter()
    audit(bent, "reach 16 with 7 3 5", got)
    audit(foreign, "reach 16 with 7 3 5", got)
    assert got["false_yes"] == 2 and got["false_yes_eval_wrong_onto_target"] == got["false_yes_foreign_numbers"] == 1
    assert got["evals_right"] == 0 and got["foreign_tries"] == 1 and got["true_last_yes"] == 0
    assert got["evals_in_range"] == 2 and got["evals_out_of_range"] == 0
    clamped = " <think> numbers 6 6 5. try (6 * 6) - 5: 6 * 6 = 30, 30 - 5 = 25. reach 29? 25 != 29, no."
    audit(clamped, "reach 29 with 6 6 5", got)  # 6 * 6 leaves 0..30: the base writes the nearest value it knows
    assert got["evals_out_of_range"] == 1 and got["evals_out_of_range_right"] == 0


def test_ramp_stream_raises_the_harder_share_linearly_and_resumes_from_its_position():
    import pytest

    from r1kit.config import ConfigError
    from r1kit.data.benchmarks import load_problems
    from r1kit.grpo.config import ZeroConfig
    from r1kit.grpo.sources import RampStream, prompt_stream
    from r1kit.grpo.trainer import train_problems

    cfg = ZeroConfig(data="countdown", curriculum="ramp", steps=100)  # 800 prompts
    problems = train_problems(cfg)
    assert len(problems) == len(cd.train_set()) and load_problems("countdown") == cd.test_set()
    stream = prompt_stream(cfg, problems)
    assert isinstance(stream, RampStream)
    drawn = stream.take(800)
    shares = [sum(p["level"] == 4 for p in drawn[q * 200:(q + 1) * 200]) / 200 for q in range(4)]
    for share, expected in zip(shares, (0.125, 0.375, 0.625, 0.875)):
        assert abs(share - expected) < 0.08, shares
    resumed = prompt_stream(cfg, problems)
    resumed.position = 500
    assert resumed.take(20) == drawn[500:520]  # the order is a function of the position alone
    assert type(prompt_stream(ZeroConfig(data="countdown", curriculum="shuffle"), problems)).__name__ == "PromptStream"
    assert ZeroConfig().resolved().curriculum == "ramp"  # the default run's
    assert ZeroConfig(data="synthetic").resolved().curriculum == "shuffle"
    with pytest.raises(ConfigError, match=r"problem 2 \(b\) has level=None"):
        RampStream([{"id": "a", "level": 3}, {"id": "b"}], 0, 10)


def test_evaluation_grades_countdown_by_its_rule_and_votes_by_identical_answers():
    """A value equal to the target is not a solution: ``16``, or other numbers worth 16, are wrong
    (graded by math equivalence they would be right); cons@k groups identical answers only."""
    from r1kit.eval.evaluate import grade_countdown, grader_for, summarize_samples

    problems = [{"id": "a", "problem": "reach 16 with 7 3 5", "answer": "(7 * 3) - 5", "task": "countdown"}]
    responses = ["<answer> 16 </answer>", "<answer> (7 + 9) * 1 </answer>", "<answer> (7 * 3) - 5 </answer>",
                 "<answer> (7 * 3)  - 5 </answer>", "<answer> 16 </answer>"]
    samples = [{"id": "a", "response": r, "num_tokens": 3, "finish_reason": "stop", "reflection": False,
                "format": 1.0, "language_consistency": None} for r in responses]
    assert grader_for(problems) is grade_countdown and grader_for(cd.test_set(2)) is grade_countdown
    grade_countdown(samples, problems, 5)
    assert [s["correct"] for s in samples] == [False, False, True, True, False]
    results = summarize_samples(samples, problems, 5, votes="same")
    assert results["pass@1"] == 0.4 and results["cons@5"] == 0.0  # "16" x2 ties the two spacings of one answer
    samples[4]["extracted"] = "(7 * 3) - 5"
    assert summarize_samples(samples, problems, 5, votes="same")["cons@5"] == 1.0


def test_grade_command_refuses_countdown_problems_instead_of_grading_them_by_value():
    import pytest

    from r1kit.data.jsonl import DataError
    from r1kit.eval.grade import grade

    with pytest.raises(DataError, match="graded by their rule in r1kit eval"):
        grade(cd.test_set(2), [{"id": cd.test_set(1)[0]["id"], "response": "<answer> 16 </answer>"}])
