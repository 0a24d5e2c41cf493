"""Synthetic Countdown reasoning traces in factor tags, with dead ends, slips, verify and correct steps.

Every step is passed through `CountdownDomain.observe`, so the bookkeeping the model reads at training time is exactly
what the calculator writes at search time. Each rendered trace comes with character spans the loss is taken on: a
mistake's own words are context only (the model learns to check and fix them, not to make them), and the calculator's
bookkeeping is never a target; instead the model learns to close the step right after its operation.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from fractions import Fraction

from reasoning.domains.countdown import (
    Board,
    CountdownDomain,
    Operation,
    _solvable,
    fmt,
    moves,
    replay,
    strip_bookkeeping,
)
from reasoning.factors import Catalog, load_catalog
from reasoning.problems import countdown_problem
from reasoning.prompting import PromptFormat
from reasoning.training.sft import Demonstration, Rendered
from reasoning.training.sft import render as render_demo
from reasoning.types import Problem, State, Step

DEMO_FACTORS = ("compute", "verify", "correct", "conclude")
FORMAT = PromptFormat(mode="tags")
DOMAIN = CountdownDomain()


@dataclass(frozen=True)
class TraceRecipe:
    """How often each kind of mistake and check appears in the synthetic traces."""

    dead_end: float = 0.2  # an operation whose result cannot make the target, then verify + correct
    slip: float = 0.12  # a wrong result, then verify + correct
    check_good: float = 0.1  # a verify step after a good operation
    max_value: int = 200  # dead-end operations with larger results are not written
    # the first operation checked: it is followed by a verify that says whether the numbers left can make the target,
    # and a dead one is corrected (again and again), so the policy alone can notice a dead first move and recover
    check_first: float = 0.0  # share of traces that check their first operation this way
    first_dead: float = 0.5  # in those, the chance that a first (or corrected) operation is a dead end
    # at most this many dead tries, each leaving numbers no earlier try left. With at most 3 and repeats allowed
    # (the first recipe), a greedy policy learned that a 4th try is always alive and repeated one dead try 3 times
    # before calling it alive; now the try count says little (a 5th is certain only in 1 trace of 16)
    first_dead_max: int = 4


TRACE_RECIPE = TraceRecipe()


@dataclass
class TracedStep:
    step: Step
    learn: bool  # whether the model is trained to write this step's words


def _candidates(board: Board, target: int, recipe: TraceRecipe
                ) -> tuple[list[Operation], list[Operation], dict[Operation, tuple[Fraction, ...]]]:
    """Good and dead-end operations on the board (non-negative results; dead ends integer and not huge), and the
    numbers each leaves (sorted)."""
    good, bad, left = [], [], {}
    for a, op, b, result, rest in moves(tuple(v for v, _ in board.numbers)):
        if result < 0:
            continue
        operation = Operation(a, op, b, result)
        left[operation] = rest
        if _solvable(rest, Fraction(target)):
            good.append(operation)
        elif result.denominator == 1 and result <= recipe.max_value:
            bad.append(operation)
    return good, bad, left


def _slip(op: Operation, rng: random.Random) -> Operation:
    """The same operation with a plausible wrong result."""
    true = op.true_result
    while True:
        wrong = true + rng.choice([-3, -2, -1, 1, 2, 3, 10, -10]) if rng.random() < 0.8 else Fraction(rng.randint(0, 30))
        if wrong != true and wrong >= 0:
            return Operation(op.a, op.op, op.b, wrong)


def _add(state: State, trace: list[TracedStep], factor: str, text: str, learn: bool = True) -> State:
    step = DOMAIN.observe(state, Step(text, factor))
    trace.append(TracedStep(step, learn))
    return state.extend(step)


def make_trace(problem: Problem, rng: random.Random, recipe: TraceRecipe = TRACE_RECIPE,
               first_try: Operation | None = None) -> list[TracedStep]:
    """One solution of `problem`, with mistakes and their checks and corrections drawn by `recipe`; `first_try`, a
    dead first operation, is the checked first try (then the tries go on as the recipe draws them)."""
    target = problem.meta.get("target", 24)
    state, trace = State(problem), []
    checked = recipe.check_first and rng.random() < recipe.check_first
    if checked or first_try is not None:
        state = _checked_first(problem, state, trace, rng, recipe, target, first_try)
    while True:
        board = replay(problem, state.steps)
        good, bad, _ = _candidates(board, target, recipe)
        if not good:
            raise ValueError(f"{problem.text} cannot be solved from {board.left_text()}")
        last = len(board.numbers) == 2
        factor = "conclude" if last else "compute"
        if not last and bad and rng.random() < recipe.dead_end:
            wrong = rng.choice(bad)
            state = _add(state, trace, "compute", wrong.text, learn=False)
            left = replay(problem, state.steps).left_text()
            state = _add(state, trace, "verify", f"{left} cannot make {target}")
            factor = "correct"
        op = rng.choice(good)
        if not last and rng.random() < recipe.slip:
            state = _add(state, trace, factor, _slip(op, rng).text, learn=False)
            true = fmt(op.true_result)
            state = _add(state, trace, "verify", f"{strip_bookkeeping(trace[-1].step.text)} is wrong, it is {true}")
            factor = "correct"
        state = _add(state, trace, factor, op.text)
        if trace[-1].step.terminal:
            return trace
        if rng.random() < recipe.check_good:
            state = _add(state, trace, "verify", f"{op.text} is right")


def _checked_first(problem: Problem, state: State, trace: list[TracedStep], rng: random.Random,
                   recipe: TraceRecipe, target: int, first_try: Operation | None = None) -> State:
    """The first operation, each try followed by a verdict on the numbers it leaves; dead tries are corrected, and
    each leaves numbers no earlier try left (so neither a repeated try nor the number of tries gives the verdict).
    `first_try`, when given, is the first try (a dead operation)."""
    good, bad, left_by = _candidates(replay(problem, state.steps), target, recipe)
    if first_try is not None and first_try not in bad:
        raise ValueError(f"{first_try.text} is not a dead first operation of {problem.text}")
    factor, tried = "compute", set()
    while True:
        if first_try is not None:
            op, dead, first_try = first_try, True, None
        else:
            fresh = [op for op in bad if left_by[op] not in tried]
            dead = bool(fresh) and len(tried) < recipe.first_dead_max and rng.random() < recipe.first_dead
            op = rng.choice(fresh if dead else good)
        tried.add(left_by[op])
        state = _add(state, trace, factor, op.text, learn=not dead)
        left = replay(problem, state.steps).left_text()
        state = _add(state, trace, "verify", f"{left} {'cannot' if dead else 'can'} make {target}")
        if not dead:
            return state
        factor = "correct"


def render(problem: Problem, trace: list[TracedStep], catalog: Catalog | None = None) -> Rendered:
    """Render through `PromptFormat(mode="tags")` and self-play's renderer: the one source of truth for what models
    read; a mistake's words are context, its factor choice is learned."""
    demo = Demonstration(problem, tuple(item.step for item in trace))
    return render_demo(demo, FORMAT, catalog or load_catalog(), learn=[item.learn for item in trace])


def dead_first_traces(multisets: list[tuple[int, ...]], seed: int, recipe: TraceRecipe = TRACE_RECIPE,
                      target: int = 24) -> list[Rendered]:
    """For each multiset (in its sorted order), one checked trace per dead first operation, tried first: every board
    a dead first move of these puzzles leaves gets its verdict once (reproducible from `seed`)."""
    rng = random.Random(seed)
    catalog = load_catalog()
    out = []
    for numbers in multisets:
        problem = countdown_problem(list(numbers), target)
        _, bad, _ = _candidates(replay(problem, ()), target, recipe)
        out += [render(problem, make_trace(problem, rng, recipe, first_try=op), catalog) for op in bad]
    return out


def sample_traces(multisets: list[tuple[int, ...]], per_problem: int, seed: int, recipe: TraceRecipe = TRACE_RECIPE,
                  target: int = 24) -> list[Rendered]:
    """`per_problem` rendered traces for each multiset, reproducible from `seed`."""
    rng = random.Random(seed)
    catalog = load_catalog()
    out = []
    for numbers in multisets:
        for _ in range(per_problem):
            order = list(numbers)
            if rng.random() < 0.5:  # half in the sorted order of the problem sets, half in any order
                rng.shuffle(order)
            problem = countdown_problem(order, target)
            out.append(render(problem, make_trace(problem, rng, recipe), catalog))
    return out
