"""The batch interface's fallbacks: generators without propose_batch and scorers without score_last still work."""
from __future__ import annotations

import pytest

from fakes import FakeGenerator, FakeScorer
from reasoning.factors import load_catalog
from reasoning.protocols import propose_batch, score_last
from reasoning.types import ExpansionRequest, Problem, State

CATALOG = load_catalog()
STATE = State(Problem("p", "What is 2+2?"))


def test_propose_batch_falls_back_to_one_propose_per_request_in_order():
    gen = FakeGenerator()
    requests = [ExpansionRequest(STATE, CATALOG.get("compute"), 2, seed=1),
                ExpansionRequest(STATE, CATALOG.get("verify"), 1, seed=2)]
    out = propose_batch(gen, requests)
    assert gen.calls == 2
    assert [len(steps) for steps in out] == [2, 1]
    assert out[0] == gen.propose(STATE, CATALOG.get("compute"), 2, seed=1)
    assert out[1][0].factor == "verify"


def test_propose_batch_uses_the_generators_own_batch_and_checks_its_length():
    class Batched(FakeGenerator):
        def propose_batch(self, requests):
            return [[]]

    with pytest.raises(ValueError, match="answered 1 of 2"):
        propose_batch(Batched(), [ExpansionRequest(STATE, CATALOG.get("compute"), 1)] * 2)


def test_score_last_falls_back_to_the_last_entry_of_score():
    scorer = FakeScorer()
    paths = [["a", "b"], ["c"]]
    assert score_last(scorer, STATE.problem, paths) == [s[-1] for s in scorer.score(STATE.problem, paths)]
    with pytest.raises(ValueError, match="non-empty path"):
        score_last(scorer, STATE.problem, [[]])
