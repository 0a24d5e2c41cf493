"""Batched expansion in the search core, and the interface's fallbacks for generators and scorers without it."""
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


class _BatchCounting(FakeGenerator):
    """A fake with `propose_batch` that records each call's size and writes a next-step prior (the interface)."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.batches: list[int] = []
        self.prior_calls = 0

    def propose_batch(self, requests):
        self.batches.append(len(requests))
        out = []
        for r in requests:
            steps = FakeGenerator.propose(self, r.state, r.factor, r.n, temperature=r.temperature, seed=r.seed)
            prior = [1.0 / len(r.prior_over)] * len(r.prior_over) if r.prior_over else None
            out.append([s.with_(meta={"next_prior": prior}) if prior else s for s in steps])
        return out

    def factor_prior(self, state, factors):
        self.prior_calls += 1
        return super().factor_prior(state, factors)


def _shape(tree):
    return sorted((n, tree.node(n)["text"], tree.node(n)["visits"]) for n in tree.nodes())


@pytest.mark.parametrize("leaves", [1, 4, 8])
def test_mcts_makes_one_generator_call_per_round_and_reproduces_for_a_seed(leaves):
    from reasoning.search import SearchConfig, search

    config = SearchConfig(budget=48, candidates=1, widen=0.85, fpu_reduction=0.3, parallel_leaves=leaves, seed=5)
    gen = _BatchCounting(answer_depth=3)
    tree, result = search(STATE.problem, gen, FakeScorer(), config)
    assert result.nodes_created == len(tree) - 1 == 48
    assert len(gen.batches) == result.iterations  # one call per round
    assert max(gen.batches) == leaves and sum(gen.batches) >= 48 // 1
    assert gen.prior_calls == 1  # only the root's prior is asked for: every child's came with its step
    again, _ = search(STATE.problem, _BatchCounting(answer_depth=3), FakeScorer(), config)
    assert _shape(again) == _shape(tree)


def test_best_of_n_samples_solutions_side_by_side_and_beam_one_call_per_depth():
    from reasoning.search import SearchConfig, search

    gen = _BatchCounting(answer_depth=3)
    tree, result = search(STATE.problem, gen, FakeScorer(), SearchConfig(algorithm="best_of_n", budget=30,
                                                                           parallel_leaves=4))
    assert result.nodes_created == 30 and max(gen.batches) == 4
    assert len(gen.batches) < 30 / 2  # four solutions per call, not one step per call
    assert result.answer is not None
    gen = _BatchCounting(answer_depth=3)
    tree, result = search(STATE.problem, gen, FakeScorer(), SearchConfig(algorithm="beam", budget=30, beam_width=3))
    assert len(gen.batches) == max(tree.node(n)["depth"] for n in tree.nodes())  # one call per depth


def test_the_search_stores_the_prior_written_with_a_step_on_its_child():
    from reasoning.search import SearchConfig, search

    tree, _ = search(STATE.problem, _BatchCounting(answer_depth=3), FakeScorer(), SearchConfig(budget=6))
    child = tree.children("0")[0]
    prior = tree.node(child)["factor_prior"]
    assert prior is not None and sum(prior.values()) == pytest.approx(1.0) and len(prior) == len(CATALOG.enabled)
