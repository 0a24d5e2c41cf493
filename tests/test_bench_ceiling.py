"""`python -m bench.ceiling`: the solver in the PRM's place scores each step as the solver judges it, from the texts
a search stores (no factor tags), and the benchmark prints both scorers' solve counts side by side."""
from __future__ import annotations

from bench.ceiling import SolverScorer, main
from demo.label import solver_paths
from demo.traces import DOMAIN
from reasoning.domains.countdown import Operation, moves, solvable
from reasoning.problems import countdown_problem
from reasoning.types import State, Step

PROBLEM = countdown_problem([4, 7, 8, 8], pid="p")


def _op(live: bool) -> str:
    for a, op, b, result, rest in moves(tuple(PROBLEM.meta["numbers"])):
        if result >= 0 and solvable(rest) == live:
            return Operation(a, op, b, result).text
    raise AssertionError("no such move")


def _texts(*steps: tuple[str, str]) -> list[str]:
    state = State(PROBLEM)
    for text, factor in steps:
        state = state.extend(DOMAIN.observe(state, Step(text, factor)))
    return state.step_texts


def test_the_solver_scorer_agrees_with_the_solvers_labels_on_operation_paths():
    problems = [PROBLEM, countdown_problem([1, 2, 7, 9], pid="q"), countdown_problem([3, 5, 6, 10], pid="r")]
    records = solver_paths(problems, 8, seed=4)
    by_id = {p.id: p for p in problems}
    for rec in records:
        (scores,) = SolverScorer().score(by_id[rec["id"]], [rec["completions"]])
        assert scores == [float(e) for e in rec["exact"]]
    assert {s for rec in records for s in rec["exact"]} == {True, False}


def test_the_solver_scorer_judges_verdicts_corrections_and_slips():
    dead, live = _op(False), _op(True)
    left = lambda texts: texts[-1].split("(left: ")[1].rstrip(")")  # noqa: E731
    first = _texts((dead, "compute"))
    checked = _texts((dead, "compute"), (f"{left(first)} cannot make 24", "verify"), (live, "correct"))
    assert SolverScorer().score(PROBLEM, [checked]) == [[0.0, 1.0, 1.0]]
    wrong_verdict = [*first, f"{left(first)} can make 24"]
    assert SolverScorer().score_last(PROBLEM, [wrong_verdict]) == [0.0]
    slip = _texts(("8-4=5", "compute"), ("8-4=5 is wrong, it is 4", "verify"))
    assert SolverScorer().score(PROBLEM, [slip]) == [[0.0, 1.0]]


def test_the_benchmark_prints_both_scorers_side_by_side(capsys):
    main(["--limit", "2", "--algorithms", "mcts", "--budgets", "4", "--workers", "1"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("solved of 2 ") and lines[1] == "| scorer | mcts@4 |"
    rows = {line.split("|")[1].strip(): int(line.split("|")[2]) for line in lines[2:]}
    assert set(rows) == {"solver", "demo PRM"} and all(0 <= n <= 2 for n in rows.values())
