"""Where a search's budget went, read from its tree: was a correct final answer anywhere in it, how deep it went, how
many samples were merged duplicates, and how each thought factor fared (steps, and steps on a path to a correct
answer). The answer check is the domain's gold checker, never the PRM's opinion."""
from __future__ import annotations

import time
from typing import Any

from reasoning.domains import get_domain
from reasoning.search import SearchConfig, iterate
from reasoning.tree import ROOT, ReasoningTree, samples
from reasoning.types import Problem


def tree_facts(tree: ReasoningTree) -> dict[str, Any]:
    """found, depth, duplicates and per-factor [steps, steps leading to a correct answer] of a searched tree."""
    domain = get_domain(tree.problem.domain)
    live = [n for n in tree.nodes(include_pruned=False) if n != ROOT and tree.is_live(n)]
    correct_leaves = [n for n in live if tree.node(n)["terminal"] and tree.node(n)["answer"] is not None
                      and domain.check(tree.problem, tree.node(n)["answer"])]
    on_correct = {m for n in correct_leaves for m in tree.path(n)}
    factors: dict[str, list[int]] = {}
    for n in live:
        f = factors.setdefault(str(tree.node(n)["factor"] or "-"), [0, 0])
        f[0] += 1
        f[1] += n in on_correct
    return {"found": bool(correct_leaves), "depth": max((len(tree.path(n)) - 1 for n in live), default=0),
            "duplicates": sum(samples(tree.node(n)) - 1 for n in live), "factors": factors}


def solve(problem: Problem, generator, scorer, config: SearchConfig, catalog, orm=None,
          stop=None) -> tuple[dict[str, Any], ReasoningTree]:
    """Search one problem; its result record (answer checked by the domain) and its tree."""
    start = time.perf_counter()
    tree = ReasoningTree(problem)
    result = None
    for event in iterate(tree, generator, scorer, config, catalog=catalog, orm=orm, stop=stop):
        result = event.result or result
    assert result is not None  # a search always ends with `finished`
    record = {
        "answer": result.answer,
        "correct": bool(get_domain(problem.domain).check(problem, result.answer)),
        "nodes": result.nodes_created, "tokens": result.generated_tokens,
        "seconds": round(time.perf_counter() - start, 4), "value": result.value,
        "stopped": bool(result.stopped),
        **tree_facts(tree),
    }
    return record, tree
