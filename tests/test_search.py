"""Unit tests of the pure search algorithms: PUCT, backup, aggregation, budgets, resume, re-entrancy."""
from __future__ import annotations

import math
import random
import threading
from dataclasses import replace

import pytest

from fakes import FakeGenerator, FakeScorer
from reasoning.aggregation import aggregate
from reasoning.factors import load_catalog
from reasoning.search import SearchConfig, iterate, puct, search
from reasoning.search.context import SearchContext
from reasoning.search.mcts import _Tracker, select
from reasoning.tree import ROOT, ReasoningTree
from reasoning.types import Problem, Step

ALGOS = ["greedy", "best_of_n", "beam", "mcts"]
PROBLEM = Problem("p1", "What is 6 * 7?", "42")


def test_aggregation_on_literal_numbers():
    scores = [0.9, 0.5, 0.8]
    assert aggregate(scores, "min") == 0.5
    assert aggregate(scores, "prod") == pytest.approx(0.36)
    assert aggregate(scores, "last") == 0.8
    assert aggregate(scores, "mean") == pytest.approx(2.2 / 3)
    assert aggregate([], "min") == 0.0
    with pytest.raises(ValueError, match="unknown aggregation 'max'"):
        aggregate(scores, "max")


def test_puct_formula_on_literal_numbers():
    # Q + c * P * sqrt(N + 1) / (1 + n)
    assert puct(0.5, 0.2, 3, 1, 1.5) == pytest.approx(0.5 + 1.5 * 0.2 * 2 / 2)
    assert puct(0.0, 1.0, 0, 0, 2.0) == pytest.approx(2.0)
    # more visits to an action lower its exploration bonus
    assert puct(0.5, 0.3, 10, 0, 1.0) > puct(0.5, 0.3, 10, 5, 1.0)


def test_backup_adds_one_visit_to_every_ancestor():
    tree = ReasoningTree(PROBLEM)
    a = tree.add_child(ROOT, Step("a", "propose"))
    b = tree.add_child(a, Step("b", "compute"))
    tree.backup(b, 0.25)
    tree.backup(a, 0.75)
    assert [tree.node(n)["visits"] for n in (ROOT, a, b)] == [2, 2, 1]
    assert tree.q(ROOT) == pytest.approx(0.5)
    assert tree.q(b) == pytest.approx(0.25)
    assert (a, b) == ("0.0", "0.0.0")


def test_ids_are_never_reused_after_pruning():
    tree = ReasoningTree(PROBLEM)
    first = tree.add_child(ROOT, Step("x", "propose"))
    tree.set_pruned(first)
    second = tree.add_child(ROOT, Step("y", "propose"))
    assert second == "0.1" and tree.children(ROOT) == [second]
    assert tree.children(ROOT, include_pruned=True) == [first, second]
    with pytest.raises(ValueError):
        tree.set_pruned(ROOT)


def _ctx(tree, **cfg):
    config = SearchConfig(algorithm="mcts", **cfg)
    return SearchContext(tree, FakeGenerator(), FakeScorer(), _domain(), load_catalog(), config)


def _domain():
    from reasoning.domains import get_domain

    return get_domain("math")


def test_puct_selection_prefers_the_factor_with_the_higher_score():
    catalog = load_catalog().with_enabled(["propose", "verify"])
    tree = ReasoningTree(PROBLEM)
    tree.node(ROOT)["factor_prior"] = {"propose": 0.5, "verify": 0.5}
    good = tree.add_child(ROOT, Step("g", "propose"))
    bad = tree.add_child(ROOT, Step("b", "verify"))
    for nid, value in ((good, 0.9), (bad, 0.1)):
        tree.node(nid)["value"] = value
        tree.backup(nid, value)
    config = SearchConfig(c_puct=1.0, widen=0.0)
    ctx = SearchContext(tree, FakeGenerator(), FakeScorer(), _domain(), catalog, config)
    path, factor, n = select(ctx, ROOT, _Tracker())
    # propose: 0.9 + 0.5*sqrt(3)/2 = 1.33 > verify: 0.1 + 0.433 = 0.53; so we descend into `good`
    assert path[:2] == [ROOT, good]
    assert factor is not None and n == 3  # `good` is unexpanded, so a factor is chosen for it
    # with progressive widening, the well-scored factor first gets more candidates at the root:
    # (1 + N(S,a)) ** 0.5 * 3 = sqrt(2) * 3 -> 5 children allowed, 1 there, so up to 3 more
    config = SearchConfig(c_puct=1.0, widen=0.5)
    ctx = SearchContext(tree, FakeGenerator(), FakeScorer(), _domain(), catalog, config)
    assert select(ctx, ROOT, _Tracker()) == ([ROOT], "propose", 3)


def test_puct_selection_tries_an_unexpanded_factor_with_a_strong_prior():
    catalog = load_catalog().with_enabled(["propose", "verify"])
    tree = ReasoningTree(PROBLEM)
    tree.node(ROOT)["factor_prior"] = {"propose": 0.05, "verify": 0.95}
    weak = tree.add_child(ROOT, Step("w", "propose"))
    tree.node(weak)["value"] = 0.2
    tree.backup(weak, 0.2)
    ctx = SearchContext(tree, FakeGenerator(), FakeScorer(), _domain(), catalog, SearchConfig(c_puct=2.0))
    # verify: fpu Q(root)=0.2 + 2*0.95*sqrt(2)/1 = 2.89 beats propose: 0.2 + 2*0.05*sqrt(2)/2 = 0.27
    assert select(ctx, ROOT, _Tracker()) == ([ROOT], "verify", 3)


def test_widening_room_grows_with_visits():
    from reasoning.search.mcts import FactorStats, widen_room

    tree = ReasoningTree(PROBLEM)
    a, b, c, d, e = (tree.add_child(ROOT, Step(f"step {i}", "compute")) for i in range(5))
    ctx = _ctx(tree, candidates=2, widen=0.5)
    # limit = ceil(2 * (1 + N) ** 0.5): N=0 -> 2, N=3 -> 4, N=8 -> 6; room is capped at `candidates` per batch
    assert widen_room(ctx, FactorStats(0.5, 0, 0.0, [a, b])) == 0
    assert widen_room(ctx, FactorStats(0.5, 3, 1.0, [a, b])) == 2
    assert widen_room(ctx, FactorStats(0.5, 8, 1.0, [a, b, c, d, e])) == 1
    assert widen_room(_ctx(ReasoningTree(PROBLEM), widen=0.0), FactorStats(0.5, 99, 1.0, [a])) == 0
    tree.node(a)["meta"] = {"samples": 3}  # two duplicate draws merged into `a` use up room as children would
    assert widen_room(ctx, FactorStats(0.5, 3, 1.0, [a, b])) == 0


@pytest.mark.parametrize("algorithm", ALGOS)
@pytest.mark.parametrize("budget", [1, 7, 40])
def test_every_algorithm_honours_the_budget_and_scores_every_node(algorithm, budget):
    tree, result = search(PROBLEM, FakeGenerator(answer_depth=4), FakeScorer(),
                          SearchConfig(algorithm=algorithm, budget=budget, candidates=3))
    created = len(tree) - 1
    assert 1 <= created <= budget
    assert result.nodes_created == created
    assert all(tree.node(n)["score"] is not None for n in tree.nodes() if n != ROOT)
    for n in tree.nodes():
        if n != ROOT:
            assert tree.node(n)["depth"] == len(tree.path(n)) - 1


def test_events_stream_in_order_and_finish_with_the_result():
    events = list(iterate(PROBLEM, FakeGenerator(), FakeScorer(), SearchConfig(budget=12)))
    kinds = [e.kind for e in events]
    assert kinds[-1] == "finished" and kinds.count("finished") == 1
    assert {"expanded", "scored", "backed_up"} <= set(kinds)
    assert kinds.index("expanded") < kinds.index("scored") < kinds.index("backed_up")
    created = [e.created for e in events]
    assert created == sorted(created) and created[-1] <= 12
    assert events[-1].result.nodes_created == created[-1]


def test_mcts_visits_are_consistent_after_search():
    tree, _ = search(PROBLEM, FakeGenerator(answer_depth=4), FakeScorer(), SearchConfig(budget=40, parallel_leaves=3))
    for n in tree.nodes():
        kids = tree.children(n)
        if kids and n != ROOT:
            # a node's visits come from its own backups plus those that passed through it to its children
            assert tree.node(n)["visits"] >= sum(tree.node(k)["visits"] for k in kids)
    assert tree.node(ROOT)["visits"] == sum(tree.node(k)["visits"] for k in tree.children(ROOT))


def test_answer_is_chosen_by_model_value_not_by_gold():
    tree, result = search(PROBLEM, FakeGenerator(answer_depth=2), FakeScorer(), SearchConfig(budget=30))
    finals = [n for n in tree.terminals() if tree.node(n)["answer"] is not None]
    best = max(tree.node(n)["value"] for n in finals)
    assert result.value == pytest.approx(best)
    assert tree.node(result.node)["answer"] == result.answer


def test_resume_keeps_nodes_and_statistics():
    config = SearchConfig(budget=10)
    tree, _ = search(PROBLEM, FakeGenerator(answer_depth=5), FakeScorer(), config)
    before = {n: dict(tree.node(n)) for n in tree.nodes()}
    root_visits = tree.node(ROOT)["visits"]
    tree.set_pruned(tree.children(ROOT)[0])
    tree, result = search(tree, FakeGenerator(answer_depth=5), FakeScorer(), SearchConfig(budget=10, seed=1))
    assert set(before) <= set(tree.nodes())
    assert len(tree) == len(before) + result.nodes_created
    assert tree.node(ROOT)["visits"] > root_visits
    for n, attrs in before.items():
        assert tree.node(n)["text"] == attrs["text"] and tree.node(n)["visits"] >= attrs["visits"]


def test_resume_from_a_node_only_grows_its_subtree():
    tree, _ = search(PROBLEM, FakeGenerator(answer_depth=6), FakeScorer(), SearchConfig(budget=6))
    start = tree.children(ROOT)[0]
    before = set(tree.nodes())
    tree, _ = search(tree, FakeGenerator(answer_depth=6), FakeScorer(), SearchConfig(budget=6), start=start)
    new = set(tree.nodes()) - before
    assert new and all(tree.path(n)[1] == start for n in new)


def test_searching_from_a_pruned_node_is_refused():
    tree, _ = search(PROBLEM, FakeGenerator(), FakeScorer(), SearchConfig(budget=4))
    child = tree.children(ROOT)[0]
    tree.set_pruned(child)
    with pytest.raises(ValueError, match="pruned"):
        search(tree, FakeGenerator(), FakeScorer(), SearchConfig(budget=4), start=child)


def test_same_seed_gives_the_same_tree_and_two_threads_do_not_interfere():
    def run(seed, out):
        tree, result = search(PROBLEM, FakeGenerator(answer_depth=4), FakeScorer(),
                              SearchConfig(budget=30, seed=seed, parallel_leaves=2))
        out[seed] = (sorted((n, tree.node(n)["text"]) for n in tree.nodes()), result.answer)

    alone: dict = {}
    run(1, alone)
    run(2, alone)
    together: dict = {}
    threads = [threading.Thread(target=run, args=(s, together)) for s in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert together == alone
    assert alone[1] != alone[2]


def test_stop_event_ends_the_search_early_with_a_result():
    stop = threading.Event()
    events = []
    for event in iterate(PROBLEM, FakeGenerator(answer_depth=8), FakeScorer(), SearchConfig(budget=200), stop=stop):
        events.append(event)
        if len(events) == 5:
            stop.set()
    assert events[-1].kind == "finished" and events[-1].result.stopped
    assert events[-1].result.nodes_created < 200


@pytest.mark.parametrize("field,value,message", [
    ("budget", 0, "budget must be between 1"),
    ("budget", 10**6, "budget must be between 1"),
    ("algorithm", "dfs", "algorithm must be one of"),
    ("aggregation", "max", "aggregation must be one of"),
    ("temperatures", (9.0,), "temperatures must be between"),
])
def test_config_rejects_bad_values_with_a_clear_message(field, value, message):
    with pytest.raises(ValueError, match=message):
        SearchConfig(**{field: value})


def test_greedy_follows_the_most_likely_factor():
    gen = FakeGenerator(answer_depth=3, prior={"verify": 5.0})
    tree, result = search(PROBLEM, gen, FakeScorer(), SearchConfig(algorithm="greedy", budget=10))
    assert [tree.node(n)["factor"] for n in tree.path(result.node)[1:]] == ["verify"] * 3
    assert math.isclose(sum(tree.node(ROOT)["factor_prior"].values()), 1.0)


@pytest.mark.parametrize("candidates,widen", [(1, 0.5), (3, 0.5), (2, 1.0)])
def test_mcts_with_progressive_widening_honours_the_budget_and_reaches_answers(candidates, widen):
    config = SearchConfig(budget=40, candidates=candidates, widen=widen, fpu_reduction=0.3, answer_selection="vote")
    tree, result = search(PROBLEM, FakeGenerator(answer_depth=3), FakeScorer(), config)
    assert len(tree) - 1 == result.nodes_created == 40
    widest = max(len(tree.children(n)) for n in tree.nodes())
    assert widest > candidates  # some factor was widened past its first batch
    assert result.answer is not None and tree.node(result.node)["terminal"]


class _FewSteps(FakeGenerator):
    """Writes only `variety` different steps at each depth, so samples repeat."""

    def __init__(self, variety: int, answer_depth: int = 3):
        super().__init__(answer_depth=answer_depth)
        self.variety = variety

    def propose(self, state, factor, n, *, temperature=None, seed=None):
        steps = super().propose(state, factor, n, temperature=temperature, seed=seed)
        rng = random.Random(seed)
        out = []
        for s in steps:
            label = f"{factor.name}:{len(state.steps) + 1}:{rng.randrange(self.variety)}"
            out.append(s.with_(text=f"step {label}", answer=label if s.terminal else None))
        return out


def _siblings_are_distinct(tree) -> bool:
    for n in tree.nodes():
        kids = [(tree.node(k)["factor"], tree.node(k)["text"]) for k in tree.children(n, include_pruned=True)]
        if len(kids) != len(set(kids)):
            return False
    return True


@pytest.mark.parametrize("algorithm", ALGOS)
def test_repeated_samples_merge_into_one_node_and_cost_no_budget(algorithm):
    config = SearchConfig(algorithm=algorithm, budget=40, candidates=3, widen=0.5)
    tree, result = search(PROBLEM, _FewSteps(variety=2), FakeScorer(), config)
    assert _siblings_are_distinct(tree)
    assert result.nodes_created == len(tree) - 1 <= 40
    if algorithm != "greedy":  # greedy never samples the same node twice
        assert max(tree.node(n)["meta"].get("samples", 1) for n in tree.nodes() if n != ROOT) > 1
    kept, _ = search(PROBLEM, _FewSteps(variety=2), FakeScorer(), replace(config, merge_duplicates=False))
    if algorithm in ("best_of_n", "mcts"):
        assert not _siblings_are_distinct(kept)


@pytest.mark.parametrize("algorithm", ["best_of_n", "mcts"])
def test_search_ends_when_every_sample_repeats_a_node(algorithm):
    """With one possible step per depth the tree is a single chain; the search stops instead of spinning."""
    tree, result = search(PROBLEM, _FewSteps(variety=1), FakeScorer(),
                          SearchConfig(algorithm=algorithm, budget=64, widen=0.5, factors=("compute", "conclude")))
    assert result.nodes_created == len(tree) - 1 < 64
    assert result.answer is not None


def test_best_of_n_goes_on_from_a_merged_step():
    """A solution whose first step repeats an earlier one continues under that node: the paths form a tree."""
    tree, _ = search(PROBLEM, _FewSteps(variety=2, answer_depth=4), FakeScorer(),
                     SearchConfig(algorithm="best_of_n", budget=20, factors=("compute",)))
    first = tree.children(ROOT)
    assert len(first) <= 2
    assert sum(len(tree.children(n)) for n in first) > len(first)  # some first step was continued twice


def test_greedy_resumed_follows_its_own_earlier_steps():
    gen = _FewSteps(variety=1, answer_depth=6)
    config = SearchConfig(algorithm="greedy", budget=2, factors=("compute",))
    tree, _ = search(PROBLEM, gen, FakeScorer(), config)
    tree, result = search(tree, gen, FakeScorer(), config)
    assert len(tree) - 1 == 4 and max(tree.node(n)["depth"] for n in tree.nodes()) == 4
    assert result.nodes_created == 2


def test_vote_counts_merged_samples():
    ctx = _ctx(ReasoningTree(PROBLEM), answer_selection="vote")
    low = ctx.tree.add_child(ROOT, Step("x", "conclude", terminal=True, answer="41"))
    high = ctx.tree.add_child(ROOT, Step("y", "conclude", terminal=True, answer="42"))
    ctx.tree.node(low)["value"], ctx.tree.node(high)["value"] = 0.5, 0.8
    assert ctx.choose_answer()[0] == high
    ctx.tree.node(low)["meta"] = {"samples": 2}  # sampled twice: 2 * 0.5 outvotes 0.8
    assert ctx.choose_answer()[0] == low


def test_best_of_n_samples_on_when_a_first_step_repeats_a_pruned_one():
    gen = _FewSteps(variety=2, answer_depth=2)
    config = SearchConfig(algorithm="best_of_n", budget=4, factors=("compute",))
    tree, _ = search(PROBLEM, gen, FakeScorer(), replace(config, budget=1))
    tree.set_pruned(tree.children(ROOT)[0])
    tree, result = search(tree, gen, FakeScorer(), config)
    assert tree.children(ROOT) and result.nodes_created >= 2  # the other first step was found and continued


class _SlipGenerator(FakeGenerator):
    """Countdown steps for `Use 2 3 4 1 to make 24.`: the first step is the slip `2+3=6` (5, not 6: the calculator
    rejects it) and `2*3=6` in turn, the slip first; the path then goes on `6*4=24`, `24*1=24` whatever came first."""

    def __init__(self):
        super().__init__()
        self.firsts = 0

    def propose(self, state, factor, n, *, temperature=None, seed=None):
        self.calls += 1
        out = []
        for _ in range(n):
            depth = len(state.steps) + 1
            if depth == 1:
                self.firsts += 1
            text = ("2+3=6", "2*3=6")[(self.firsts - 1) % 2] if depth == 1 else {2: "6*4=24"}.get(depth, "24*1=24")
            out.append(Step(text, factor.name, tokens=3))
        return out


class _FondOfSlips(FakeScorer):
    """A PRM that likes every step of a path that starts with the slip better than the right path's steps."""

    def score(self, problem, paths):
        return [[0.99 if path and path[0].startswith("2+3") else 0.6 for _ in path] for path in paths]


@pytest.mark.parametrize("algorithm", ALGOS)
def test_a_step_the_calculator_rejects_ends_its_path_and_its_answer_is_never_chosen(algorithm):
    """Countdown's calculator flags `2+3=6` invalid. By default (`invalid_steps` 'dead') nothing grows below it, it is
    valued 0 and the answer reached through it is never chosen, however the PRM likes it; 'open' leaves it to the PRM,
    which then picks the wrong answer."""
    from reasoning.domains import get_domain
    from reasoning.problems import countdown_problem

    problem, domain = countdown_problem([2, 3, 4, 1]), get_domain("countdown")
    assert SearchConfig().invalid_steps == "dead"
    outcomes = {}
    for mode in ("dead", "open"):
        config = SearchConfig(algorithm=algorithm, budget=16, factors=("compute",), candidates=2, widen=0.5,
                              invalid_steps=mode, answer_selection="vote", seed=3)
        tree, result = search(problem, _SlipGenerator(), _FondOfSlips(), config)
        slips = [n for n in tree.nodes() if tree.invalid(n)]
        assert slips, "the generator wrote no slip: the test shows nothing"
        below = [k for n in slips for k in tree.children(n)]
        outcomes[mode] = (result.answer, below, [tree.node(n)["value"] for n in slips])
    answer, below, values = outcomes["dead"]
    assert below == [] and set(values) == {0.0}
    assert answer is None or domain.check(problem, answer)
    if algorithm != "greedy":  # a sampling search finds the right path beside the slip
        assert answer is not None and domain.check(problem, answer)
        answer, below, values = outcomes["open"]
        assert below and min(values) > 0.9
        assert not domain.check(problem, answer)  # the PRM's favourite: (2+3)*4*1 = 20


def test_a_search_from_a_rejected_step_is_refused_in_one_line_unless_invalid_steps_is_open():
    from reasoning.problems import countdown_problem

    problem = countdown_problem([2, 3, 4, 1])
    tree, _ = search(problem, _SlipGenerator(), _FondOfSlips(),
                     SearchConfig(algorithm="greedy", budget=1, factors=("compute",), invalid_steps="open"))
    (slip,) = tree.children(ROOT)
    assert tree.node(slip)["text"].startswith("2+3=6")
    config = SearchConfig(algorithm="mcts", budget=4, factors=("compute",))
    with pytest.raises(ValueError, match=r"^node '0\.0' is a step the calculator rejected \(2\+3 is 5, not 6\); "
                                         r"search from a node above it$"):
        search(tree, _SlipGenerator(), _FondOfSlips(), config, start=slip)
    tree, result = search(tree, _SlipGenerator(), _FondOfSlips(), replace(config, invalid_steps="open"), start=slip)
    assert tree.children(slip) and result.nodes_created > 0


def test_the_best_path_the_tree_draws_never_runs_through_a_step_the_calculator_rejected():
    from reasoning.problems import countdown_problem

    tree, _ = search(countdown_problem([2, 3, 4, 1]), _SlipGenerator(), _FondOfSlips(),
                     SearchConfig(algorithm="best_of_n", budget=16, factors=("compute",), invalid_steps="open"))
    slip, right = tree.children(ROOT)
    assert tree.invalid(slip) and not tree.invalid(right)

    def final(nid):
        return next(m for m in tree.subtree(nid) if tree.node(m)["terminal"])

    assert tree.path_scores(final(slip)) > tree.path_scores(final(right))  # the PRM's favourite
    assert tree.best_path()[1] == right


def test_mcts_draws_at_every_temperature_while_it_widens_one_candidate_at_a_time():
    """Temperatures cycle over the samples drawn under a (node, factor), not within one call: MCTS asks for one
    candidate per expansion, so counting within the call alone used the first temperature only."""
    config = SearchConfig(algorithm="mcts", budget=30, candidates=1, widen=1.0, temperatures=(0.5, 1.5), seed=3,
                          factors=("compute", "conclude"))
    tree, _ = search(PROBLEM, FakeGenerator(answer_depth=4), FakeScorer(), config)
    groups: dict[tuple[str, str], list[float]] = {}
    for nid in tree.nodes():
        if nid != ROOT:
            a = tree.node(nid)
            groups.setdefault((tree.parent(nid), a["factor"]), []).append((a["created"], a["meta"]["temperature"]))
    widened = [[t for _, t in sorted(g)] for g in groups.values() if len(g) >= 2]
    assert widened, "no factor was widened"
    for temps in widened:  # in the order drawn: 0.5, 1.5, 0.5, ... (no merged copies with these fakes' draws)
        assert temps == [(0.5, 1.5)[i % 2] for i in range(len(temps))]
