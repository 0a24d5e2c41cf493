"""Rollout estimates and OmegaPRM first-error search, on literal paths with a scripted generator (pure algorithm)."""
from __future__ import annotations

import math
import threading

import pytest

from reasoning.factors import load_catalog
from reasoning.labeling import RolloutConfig, Stopped, complete, estimate, find_first_error
from reasoning.problems import countdown_problem
from reasoning.types import Problem, State, Step

PROBLEM = Problem("p1", "What is 6 * 7?", answer="42")
FACTORS = tuple(f for f in load_catalog() if f.name in ("compute", "conclude"))


class ScriptedGenerator:
    """Continues a path towards 42 unless one of its steps is a planted error ("oops"), then towards 41.

    `propose_batch` records every request, so the test sees how rollouts were batched."""

    name = "scripted"

    def __init__(self):
        self.requests = []

    def factor_prior(self, state, factors):
        return [1.0 if f.name == "compute" else 0.0 for f in factors] if len(state.steps) < 6 else \
            [0.0 if f.name == "compute" else 1.0 for f in factors]

    def _step(self, state, factor):
        lost = any("oops" in s.text for s in state.steps)
        if factor.name == "conclude":
            return Step(f"The answer is {41 if lost else 42}.", factor.name)
        return Step(f"work {len(state.steps)}", factor.name)

    def propose(self, state, factor, n, *, temperature=None, seed=None):
        return [self._step(state, factor) for _ in range(n)]

    def propose_batch(self, requests):
        self.requests.append(list(requests))
        return [self.propose(r.state, r.factor, r.n) for r in requests]

    def provenance(self):
        return {"name": self.name}


def literal_path(n: int, error_at: int, *, final: bool) -> State:
    """n steps; step `error_at` (0-based, -1 none) is the planted error; with `final` the last step answers."""
    steps = [Step(f"oops {i}" if i == error_at else f"fine {i}", "compute") for i in range(n)]
    if final:
        lost = 0 <= error_at < n
        steps[-1] = Step(f"{'oops ' if error_at == n - 1 else ''}The answer is {41 if lost else 42}.", "conclude",
                         terminal=True, answer="41" if lost else "42")
    return State(PROBLEM, tuple(steps))


@pytest.mark.parametrize("final", [False, True])
@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 13, 16])
def test_first_error_found_within_log2_rounds(n, final):
    for error_at in [-1, *range(n)]:
        if final and error_at == -1:
            continue
        gen = ScriptedGenerator()
        config = RolloutConfig(FACTORS, n=3, max_steps=10)
        found = find_first_error(gen, literal_path(n, error_at, final=final), config)
        assert found.index == error_at, (n, error_at, found)
        assert found.rounds <= math.ceil(math.log2(n)) + 1, (n, error_at, found.rounds)
        assert [found.verdict(i) for i in range(n)][: error_at + 1 if error_at >= 0 else n] == \
            ([True] * error_at + [False] if error_at >= 0 else [True] * n)


def test_a_right_final_answer_needs_no_rollouts():
    gen = ScriptedGenerator()
    found = find_first_error(gen, literal_path(6, -1, final=True), RolloutConfig(FACTORS, n=4))
    assert found.index == -1 and found.rounds == 1 and gen.requests == []


def test_estimate_counts_rollouts_that_reach_the_gold_answer_and_batches_copies():
    gen = ScriptedGenerator()
    good, bad = literal_path(3, -1, final=False), literal_path(3, 1, final=False)
    config = RolloutConfig(FACTORS, n=5, max_steps=10)
    got = estimate(gen, [good, bad], config)
    assert [(e.rollouts, e.successes, e.hard) for e in got] == [(5, 5, True), (5, 0, False)]
    assert got[0].value == 1.0 and got[1].value == 0.0
    first_round = gen.requests[0]
    assert sorted(r.n for r in first_round) == [5, 5]  # the five copies of each node share one request


def test_a_terminal_node_is_checked_not_rolled_out():
    gen = ScriptedGenerator()
    (got,) = estimate(gen, [literal_path(2, 0, final=True)], RolloutConfig(FACTORS, n=4))
    assert got.terminal and (got.rollouts, got.successes) == (1, 0) and gen.requests == []


def test_stop_event_ends_the_rollouts_without_a_result():
    stop = threading.Event()
    stop.set()
    with pytest.raises(Stopped):
        estimate(ScriptedGenerator(), [literal_path(2, -1, final=False)], RolloutConfig(FACTORS, n=2), stop=stop)


def test_rollouts_that_never_answer_count_as_failures():
    class Rambler(ScriptedGenerator):
        def factor_prior(self, state, factors):
            return [1.0 if f.name == "compute" else 0.0 for f in factors]

    (got,) = estimate(Rambler(), [literal_path(1, -1, final=False)], RolloutConfig(FACTORS, n=3, max_steps=4))
    assert (got.rollouts, got.successes) == (3, 0) and got.answers == (None, None, None)


class CarriesPriors(ScriptedGenerator):
    """Writes `2*3=6` and carries a child prior that says `conclude`, while its own `factor_prior` says `compute`."""

    def __init__(self):
        super().__init__()
        self.asked = []

    def factor_prior(self, state, factors):
        self.asked.append(len(state.steps))
        return [1.0 if f.name == "compute" else 0.0 for f in factors]

    def propose_batch(self, requests):
        self.requests.append(list(requests))
        carried = {"next_prior": [0.0 if f.name == "compute" else 1.0 for f in FACTORS]}
        return [[Step("2*3=6", r.factor.name, meta=dict(carried)) for _ in range(r.n)] for r in requests]


@pytest.mark.parametrize(("problem", "rewritten"), [(PROBLEM, False), (countdown_problem([2, 3, 4]), True)])
def test_a_carried_prior_is_used_only_where_the_domain_left_the_step_as_written(problem, rewritten):
    """Countdown's calculator appends `(left: 4 6)`: the child is not the state the generator read its prior at, so
    the prior is asked again (as a search does); a step left as written keeps the prior from the same pass."""
    gen = CarriesPriors()
    complete(gen, [State(problem)], RolloutConfig(FACTORS, n=1, max_steps=2, seed=0))
    assert gen.asked == ([0, 1] if rewritten else [0])
    assert gen.requests[1][0].factor.name == ("compute" if rewritten else "conclude")


def test_bad_rollout_settings_are_refused_with_one_line():
    with pytest.raises(ValueError, match="rollouts per node"):
        RolloutConfig(FACTORS, n=0)
    with pytest.raises(ValueError, match="enabled thought factor"):
        RolloutConfig((), n=2)
