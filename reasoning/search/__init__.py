"""Search algorithms (a registry of plain functions) and the one entry point that runs them."""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

from ..factors import Catalog, load_catalog
from ..protocols import Domain, Generator, OutcomeScorer, Scorer
from ..tree import ROOT, ReasoningTree
from ..types import Problem
from .config import ALGORITHMS, HELP, SearchConfig, SearchEvent, SearchResult
from .context import SearchContext, rejection, search_factors
from .mcts import mcts, puct
from .simple import beam, best_of_n, greedy

STRATEGIES: dict[str, Callable[[SearchContext, str], Iterator[SearchEvent]]] = {
    "greedy": greedy,
    "best_of_n": best_of_n,
    "beam": beam,
    "mcts": mcts,
}

__all__ = [
    "ALGORITHMS", "HELP", "STRATEGIES", "SearchConfig", "SearchEvent", "SearchResult", "SearchContext",
    "iterate", "rejection", "search", "search_factors", "puct",
]


def iterate(
    tree_or_problem: ReasoningTree | Problem,
    generator: Generator,
    scorer: Scorer,
    config: SearchConfig,
    *,
    domain: Domain | None = None,
    catalog: Catalog | None = None,
    start: str = ROOT,
    stop: threading.Event | None = None,
    orm: OutcomeScorer | None = None,
) -> Iterator[SearchEvent]:
    """Run one search, yielding its events; the last is `finished` with the result.

    Pass a tree to resume: its nodes and statistics are kept, and the budget counts new nodes only.
    `start` limits expansion to the subtree under one node ("resume from here").
    """
    from ..domains import get_domain

    tree = tree_or_problem if isinstance(tree_or_problem, ReasoningTree) else ReasoningTree(tree_or_problem)
    if start not in tree:
        raise ValueError(f"no node {start!r} to start the search from")
    if not tree.is_live(start):
        raise ValueError(f"node {start!r} is pruned; restore it before searching from it")
    if (why := rejection(tree, start, config)) is not None:
        raise ValueError(f"node {start!r} is a step the calculator rejected ({why}); search from a node above it")
    domain = domain or get_domain(tree.problem.domain)
    ctx = SearchContext(tree, generator, scorer, domain, catalog or load_catalog(), config, stop, orm)
    if tree.node(ROOT)["value"] is None:
        tree.node(ROOT)["value"] = 0.0
    yield from STRATEGIES[config.algorithm](ctx, start)
    yield ctx.finish()


def search(tree_or_problem, generator, scorer, config, **kwargs) -> tuple[ReasoningTree, SearchResult]:
    """Run a search to the end and return its tree and result."""
    tree = tree_or_problem if isinstance(tree_or_problem, ReasoningTree) else ReasoningTree(tree_or_problem)
    result: SearchResult | None = None
    for event in iterate(tree, generator, scorer, config, **kwargs):
        result = event.result or result
    if result is None:  # iterate() always ends with a `finished` event that carries the result
        raise RuntimeError("the search ended without a result")
    return tree, result
