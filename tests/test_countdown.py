"""Tests of the Countdown domain: exact checker, solver, calculator bookkeeping, problem sets and training traces."""
from __future__ import annotations

import random

import pytest

from demo.problemsets import make_splits, records
from demo.traces import TraceRecipe, make_trace, render
from reasoning.domains import get_domain
from reasoning.domains.countdown import (
    CountdownDomain,
    check_expression,
    parse_operation,
    replay,
    solvable,
    solve,
    strip_bookkeeping,
)
from reasoning.problems import countdown_problem, parse_problem_text, problem_from_record
from reasoning.prompting import PromptFormat
from reasoning.types import State, Step

DOMAIN = CountdownDomain()


@pytest.mark.parametrize(
    ("expression", "numbers", "ok"),
    [
        ("(4-(8-7))*8", [4, 7, 8, 8], True),
        ("8/(3-8/3)", [3, 3, 8, 8], True),  # needs exact fractions: 3-8/3 = 1/3
        ("8 × (3 − 8 ÷ 3)", [3, 3, 8, 8], False),  # right numbers, wrong value (8/3)
        ("(4+8)*(8-7)", [4, 7, 8, 8], False),  # 12
        ("4*6", [4, 6, 6], False),  # a given number unused
        ("6*4*1*1", [1, 4, 6], False),  # a number used twice
        ("8*3", [8, 3, 3], False),
        ("2**3*3", [2, 3, 3], False),  # powers are not allowed
        ("8/(1-1)+24", [1, 1, 8, 24], False),  # division by zero
        ("import os", [1, 2], False),
        ("", [1, 2], False),
        (None, [1, 2], False),
    ],
)
def test_checker_is_exact_and_uses_each_number_once(expression, numbers, ok):
    assert check_expression(expression, numbers) is ok


def test_domain_check_reads_numbers_and_target_from_the_problem():
    problem = countdown_problem([2, 5, 10], target=20)
    assert DOMAIN.check(problem, "2*(5+10)-10") is False
    assert DOMAIN.check(problem, "2*10") is False
    assert DOMAIN.check(problem, "(10/5)*10") is False
    assert DOMAIN.check(problem, "(10-5)*2*2") is False
    assert DOMAIN.check(countdown_problem([2, 5, 10], 30), "(5-2)*10") is True


def test_solver_knows_hard_and_impossible_multisets():
    assert solvable([3, 3, 8, 8]) and solvable([1, 5, 5, 5]) and solvable([4, 7, 8, 8])
    assert not solvable([1, 1, 1, 1]) and not solvable([1, 1, 2, 3])
    assert solvable([24]) and not solvable([23])
    for numbers in ([3, 3, 8, 8], [1, 5, 5, 5], [6, 9, 9, 10]):
        assert check_expression(solve(numbers), numbers)
    assert solve([1, 1, 1, 1]) is None


@pytest.mark.parametrize(
    ("text", "numbers", "target"),
    [("Use 4 7 8 8 to make 24.", [4, 7, 8, 8], 24), ("4 7 8 8", [4, 7, 8, 8], 24), ("use 2, 5, 10 to make 30", [2, 5, 10], 30)],
)
def test_free_text_is_recognised_as_countdown(text, numbers, target):
    problem = parse_problem_text(text)
    assert problem.domain == "countdown"
    assert problem.meta == {"numbers": numbers, "target": target}
    assert get_domain(problem.domain).prompt(problem) == f"Use {' '.join(map(str, numbers))} to make {target}."


def test_operations_parse_with_aliases_and_fractions():
    op = parse_operation("3-(8/3)=1/3 (left: 1/3 8)")
    assert (str(op.a), op.op, str(op.b), str(op.claimed)) == ("3", "-", "8/3", "1/3")
    assert parse_operation("8 x 3 = 24").op == "*"
    assert parse_operation("let me think") is None
    assert strip_bookkeeping("8-7=1 (left: 1 4 8)") == "8-7=1"


def _walk(numbers, steps):
    state = State(countdown_problem(numbers))
    for factor, text in steps:
        state = state.extend(DOMAIN.observe(state, Step(text, factor)))
    return state


def test_observe_books_operations_and_rebuilds_the_answer():
    state = _walk([4, 7, 8, 8], [("compute", "8-7=1"), ("compute", "4-1=3 (left: 9 9)"), ("conclude", "3*8=24")])
    texts = state.step_texts
    assert texts[0] == "8-7=1 (left: 1 4 8)"
    assert texts[1] == "4-1=3 (left: 3 8)"  # the model's imitation of the bookkeeping is replaced
    assert texts[2] == "3*8=24 (answer: (4-(8-7))*8)"
    last = state.steps[-1]
    assert last.terminal and last.answer == "(4-(8-7))*8" and DOMAIN.check(state.problem, last.answer)
    assert not any(s.terminal for s in state.steps[:-1])


def test_a_slip_is_booked_as_claimed_and_fixed_by_correct():
    state = _walk([4, 7, 8, 8], [("compute", "8-7=2"), ("verify", "8-7=2 is wrong, it is 1"), ("correct", "8-7=1")])
    slip, check, fix = state.steps
    assert slip.text == "8-7=2 (left: 2 4 8)" and slip.meta["valid"] is False
    assert check.text == "8-7=2 is wrong, it is 1" and not check.terminal
    assert fix.text == "8-7=1 (left: 1 4 8)" and fix.meta["valid"] is True
    assert replay(state.problem, state.steps).errors == 0


def test_an_uncorrected_slip_or_a_missing_operand_fails_the_checker():
    slipped = _walk([2, 3, 9], [("compute", "3*9=22"), ("conclude", "22+2=24")])
    assert slipped.steps[-1].text == "22+2=24 (answer: (3*9)+2)"  # the claim is 24, the expression is the truth
    assert not DOMAIN.check(slipped.problem, slipped.steps[-1].answer)
    missing = _walk([1, 2, 3, 4], [("compute", "6*4=24"), ("compute", "1+2=3"), ("conclude", "3*3=9")])
    assert missing.steps[0].meta["valid"] is False and missing.steps[0].text == "6*4=24 (left: 1 2 3 24)"
    assert not DOMAIN.check(missing.problem, missing.steps[-1].answer)


def test_an_operand_used_twice_is_flagged_invalid_as_a_wrong_result_is():
    state = _walk([4, 7, 8, 8], [("compute", "7+7=14")])
    twice = state.steps[0]
    assert twice.text == "7+7=14 (left: 4 8 8 14)" and twice.meta["valid"] is False  # booked as claimed
    assert twice.meta["invalid"] == "7 is used twice but the numbers left (4 7 8 8) hold one 7"
    missing = _walk([4, 7, 8, 8], [("compute", "9-1=8")]).steps[0]
    assert missing.meta["invalid"] == ("9 is not among the numbers left (4 7 8 8); "
                                       "1 is not among the numbers left (4 7 8 8)")
    slip = _walk([4, 7, 8, 8], [("compute", "8-7=2")]).steps[0]
    assert slip.meta["invalid"] == "8-7 is 1, not 2"
    garbage = _walk([4, 7, 8, 8], [("compute", "hmm")]).steps[0]
    assert garbage.meta["invalid"].startswith("no operation the calculator can book")
    good = _walk([4, 7, 8, 8], [("compute", "8-7=1"), ("verify", "8-7 is 1, right")]).steps
    assert all("invalid" not in s.meta for s in good)


def test_the_search_copies_the_flag_onto_the_node_and_only_there():
    from fakes import FakeScorer, ScriptedGenerator
    from reasoning.search import SearchConfig, search

    generator = ScriptedGenerator(["8-7=1", "7+7=14"])
    tree, _ = search(countdown_problem([4, 7, 8, 8]), generator, FakeScorer(),
                     SearchConfig(algorithm="greedy", budget=2, candidates=1, factors=("compute",)))
    first, second = tree.children("0")[0], tree.children(tree.children("0")[0])[0]
    assert "invalid" not in tree.node(first)["meta"]  # a valid step's node is as before
    assert tree.node(second)["meta"]["invalid"].startswith("7 is not among the numbers left (1 4 8)")
    assert tree.node(second)["text"] == "7+7=14 (left: 1 4 8 14)"  # booked as claimed


def test_one_number_left_ends_the_path_and_garbage_does_not_book():
    state = _walk([3, 8], [("compute", "hmm"), ("compute", "3*8=24")])
    assert state.steps[0].text == "hmm" and not state.steps[0].terminal
    assert state.steps[1].terminal and state.steps[1].answer == "3*8"


@pytest.mark.slow  # solves every problem of both splits
def test_problem_splits_are_deterministic_disjoint_and_solvable():
    a, b = make_splits(seed=3, n_eval=50, n_dev=20), make_splits(seed=3, n_eval=50, n_dev=20)
    assert a == b and make_splits(seed=4, n_eval=50, n_dev=20)["eval"] != a["eval"]
    sets = {k: set(v) for k, v in a.items()}
    assert not (sets["train"] & sets["eval"]) and not (sets["train"] & sets["dev"]) and not (sets["dev"] & sets["eval"])
    assert len(a["eval"]) == 50 and all(solvable(m) for m in a["eval"])
    rec = records("eval", a["eval"][:1])[0]
    assert problem_from_record(rec).meta["numbers"] == list(a["eval"][0])


def test_committed_eval_split_holds_200_solvable_problems_apart_from_training():
    from demo.problemsets import load_split

    evals, train = load_split("eval"), load_split("train")
    assert len(evals) >= 200 and all(solvable(m) for m in evals)
    assert not set(evals) & set(train)


def test_traces_are_valid_solutions_rendered_as_the_backends_render():
    rng = random.Random(0)
    problem = countdown_problem([3, 3, 8, 8])
    for _ in range(20):
        trace = make_trace(problem, rng, TraceRecipe(dead_end=0.5, slip=0.5, check_good=0.5))
        last = trace[-1].step
        assert last.terminal and last.factor == "conclude" and DOMAIN.check(problem, last.answer)
        state = State(problem, tuple(t.step for t in trace))
        assert replay(problem, state.steps).errors == 0
    rendered = render(problem, trace)
    from reasoning.factors import load_catalog

    catalog = load_catalog()
    expected = PromptFormat(mode="tags").prefix(state, {f.name: f for f in catalog})
    assert rendered.text == expected
    for pos, tag in rendered.close_at:  # the model learns to close right where its own words end
        assert rendered.text[pos:].startswith((" (left:", " (answer:", tag))


def test_traces_that_check_their_first_move_say_the_truth_and_correct_every_dead_one():
    """`TraceRecipe.check_first`: each try of the first operation is followed by a verdict on the numbers it leaves,
    true by the solver; a dead try's words are context (never learned) and a `correct` replaces it; the trace still
    ends in a checked answer. With the default (0) the traces are what the committed generator was trained on."""
    from reasoning.domains.countdown import keeps_solvable

    rng, recipe = random.Random(1), TraceRecipe(check_first=1.0, first_dead=0.6)
    seen = {"can": 0, "cannot": 0}
    most_dead = 0
    for numbers in ([1, 2, 3, 4], [4, 7, 8, 8], [3, 3, 8, 8], [1, 5, 5, 5]):
        problem = countdown_problem(numbers)
        for _ in range(15):
            trace = make_trace(problem, rng, recipe)
            steps = [t.step for t in trace]
            k, boards = 0, []
            while True:  # the first operation's tries, each with its verdict
                op, verdict = trace[k], steps[k + 1]
                assert op.step.factor == ("compute" if k == 0 else "correct") and verdict.factor == "verify"
                alive = keeps_solvable(problem, steps[: k + 1])
                left = " ".join(str(v) for v in replay(problem, steps[: k + 1]).values)
                assert verdict.text == f"{left} {'can' if alive else 'cannot'} make 24"
                assert op.learn == alive
                seen["can" if alive else "cannot"] += 1
                boards.append(sorted(replay(problem, steps[: k + 1]).values))
                if alive:
                    break
                k += 2
            assert DOMAIN.check(problem, steps[-1].answer) and replay(problem, steps).errors == 0
            assert all(b not in boards[:i] for i, b in enumerate(boards))  # no try repeats numbers left before
            most_dead = max(most_dead, len(boards) - 1)
    assert seen["can"] == 60 and seen["cannot"] > 30
    assert most_dead == recipe.first_dead_max == 4  # a try count up to the cap, which a verdict cannot be read from
    plain = [make_trace(countdown_problem([4, 7, 8, 8]), random.Random(s)) for s in range(20)]
    assert not any("can make" in t.step.text for trace in plain for t in trace)


def test_every_dead_first_move_gets_one_trace_that_tries_it_first_and_calls_it_dead():
    """`dead_first_traces`: for each puzzle, one checked trace per dead first operation, tried first with a true
    "cannot" verdict (never learned itself), then corrected into a checked answer; a live one cannot be forced."""
    from demo.traces import _candidates, dead_first_traces
    from reasoning.domains.countdown import keeps_solvable

    recipe = TraceRecipe(check_first=1.0, first_dead=0.5)
    numbers = (4, 7, 8, 8)
    problem = countdown_problem(list(numbers))
    good, bad, _ = _candidates(replay(problem, ()), 24, recipe)
    rendered = dead_first_traces([numbers], seed=3, recipe=recipe)
    assert len(rendered) == len(bad) > 5
    again = dead_first_traces([numbers], seed=3, recipe=recipe)
    assert [r.text for r in again] == [r.text for r in rendered]  # reproducible from the seed
    rng = random.Random(3)
    firsts = set()
    for op in bad:
        trace = make_trace(problem, rng, recipe, first_try=op)
        steps = [t.step for t in trace]
        assert steps[0].text.startswith(op.text) and not trace[0].learn and not keeps_solvable(problem, steps[:1])
        assert steps[1].factor == "verify" and steps[1].text.endswith("cannot make 24")
        assert steps[2].factor == "correct" and DOMAIN.check(problem, steps[-1].answer)
        firsts.add(op.text)
    assert len(firsts) == len(bad)
    with pytest.raises(ValueError, match="is not a dead first operation"):
        make_trace(problem, random.Random(0), recipe, first_try=good[0])


def test_wide_boards_never_hold_a_held_out_or_training_multiset():
    from demo.problemsets import load_split, wide_multisets
    from reasoning.domains.countdown import solvable

    held = {tuple(sorted(m)) for split in ("dev", "eval") for m in load_split(split)}
    train = {tuple(sorted(m)) for m in load_split("train")}
    wide = wide_multisets(16)
    assert len(wide) == len(set(wide)) > 1000
    assert not set(wide) & (held | train)
    assert all(max(m) <= 16 and solvable(m) for m in wide)
    assert any(max(m) > 13 for m in wide) and all(max(m) > 13 for m in wide)  # every 1-13 board is in a split


def test_a_first_move_keeps_the_puzzle_solvable_or_not():
    from reasoning.domains.countdown import keeps_solvable
    from reasoning.problems import countdown_problem

    p = countdown_problem([4, 7, 8, 8])
    assert keeps_solvable(p, [Step("8/8=1 (left: 1 4 7)", "compute")])  # (7-1)*4
    assert not keeps_solvable(p, [Step("8*8=64 (left: 4 7 64)", "compute")])  # 4 7 64 make no 24
    assert not keeps_solvable(p, [Step("8*9=72 (left: 4 7 72)", "compute")])  # a 9 it does not have: a mistake


def test_the_first_move_a_path_keeps_is_the_try_it_goes_on_from():
    """A policy that checks its first try and corrects a dead one is measured on the try it keeps, not the one it
    threw away: `committed_first_move` is the path up to its second operation."""
    from reasoning.domains.countdown import committed_first_move, keeps_solvable
    from reasoning.problems import countdown_problem

    p = countdown_problem([4, 7, 8, 8])
    dead, live = Step("8*8=64", "compute"), Step("8/8=1", "correct")
    path = [dead, Step("4 7 64 cannot make 24", "verify"), live, Step("1 4 7 can make 24", "verify"),
            Step("7-1=6", "compute"), Step("6*4=24", "conclude")]
    assert not keeps_solvable(p, path[:1])  # the first move written is dead
    kept = committed_first_move(p, path)
    assert kept == path[:4] and keeps_solvable(p, kept)  # the one the path keeps is not
    wrong_verdict = [dead, Step("4 7 64 can make 24", "verify"), Step("64-7=57", "compute")]
    assert committed_first_move(p, wrong_verdict) == wrong_verdict[:2]
    assert not keeps_solvable(p, committed_first_move(p, wrong_verdict))
    assert committed_first_move(p, path[:3]) == path[:3]  # no second operation yet: all of it
    assert committed_first_move(p, [Step("4 7 8 8 can make 24", "verify")]) is None  # no operation at all
