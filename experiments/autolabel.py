"""Automatic labels for stored trees: rollout estimates and first-error search run with a generator, then stored.

The application glue between the algorithms (`reasoning.labeling`) and the stored labels (`storage.autolabel`),
shared by `python app.py label`, the UI's automatic-label service (`ui/services/autolabel.py`) and the loop demo.
Labels are stored chunk by chunk, each chunk one transaction, so an interrupted run keeps what it finished and a
second run skips it (`skip_labeled`).
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from reasoning.labeling import Estimate, FirstError, RolloutConfig, estimate, find_first_error
from reasoning.protocols import Generator
from reasoning.tree import ROOT, ReasoningTree
from storage.autolabel import labeled_nodes, store_estimates, store_first_error
from storage.labels import leaf_paths
from storage.store import Store

NodeProgress = Callable[[int, int], None]  # (nodes done, nodes to do)


@dataclass
class LabelReport:
    """What one labeling call did: nodes labeled, skipped (already labeled) and the rollouts it ran."""

    labeled: list[str] = field(default_factory=list)  # demo/loop.py reads this name
    skipped: int = 0
    rollouts: int = 0
    first_errors: dict[str, int] = field(default_factory=dict)  # leaf node id -> index of the first wrong step


def provenance(generator: Generator, config: RolloutConfig) -> dict[str, Any]:
    """Who rolled out and how: a label is only comparable with labels of the same generator and settings."""
    return {"generator": generator.provenance(), "rollouts": config.provenance()}


def live_steps(tree: ReasoningTree) -> list[str]:
    """Every live node below the root, in creation order."""
    return sorted((n for n in tree.nodes(include_pruned=False) if n != ROOT and tree.is_live(n)),
                  key=lambda n: tree.node(n)["created"])


def label_rollouts(store: Store, session_id: int, generator: Generator, config: RolloutConfig, *,
                   node_ids: Iterable[str] | None = None, skip_labeled: bool = True, chunk: int = 8,
                   progress: NodeProgress | None = None, stop: threading.Event | None = None) -> LabelReport:
    """Rollout-estimate `node_ids` (default: every live step of the session) and store each chunk as it finishes.

    `stop` is checked between rollout rounds: the chunk in flight is dropped, earlier chunks stay stored."""
    if chunk < 1:  # a chunk of 0 took no node at a time and labeled nothing
        raise ValueError(f"chunk must be at least 1 node, got {chunk}")
    tree = store.load_tree(session_id)
    wanted = live_steps(tree) if node_ids is None else _known(tree, list(node_ids))
    done = labeled_nodes(store, session_id, "rollout") if skip_labeled else set()
    todo = [n for n in wanted if n not in done]
    report = LabelReport(skipped=len(wanted) - len(todo))
    prov = provenance(generator, config)
    for k in range(0, len(todo), chunk):
        part = todo[k : k + chunk]
        got = estimate(generator, [tree.state(n) for n in part], config, stop=stop)
        store_estimates(store, session_id, part, got, prov)
        report.labeled += part
        report.rollouts += sum(0 if e.terminal else e.rollouts for e in got)
        if progress is not None:
            progress(len(report.labeled), len(todo))
    return report


def label_first_error(store: Store, session_id: int, node_id: str, generator: Generator, config: RolloutConfig, *,
                      progress: NodeProgress | None = None, stop: threading.Event | None = None) -> FirstError:
    """First-error search on the root-to-`node_id` path; every step of it gets a `first_error` label."""
    tree = store.load_tree(session_id)
    (node_id,) = _known(tree, [node_id])
    path = tree.path(node_id)[1:]

    def on_round(r: int, _i: int, _got: Estimate) -> None:
        if progress is not None:
            progress(r, max(r, _bound(len(path))))

    found = find_first_error(generator, tree.state(node_id), config, on_round=on_round, stop=stop)
    store_first_error(store, session_id, path, found, provenance(generator, config))
    return found


def label_first_errors(store: Store, session_id: int, generator: Generator, config: RolloutConfig, *,
                       skip_labeled: bool = True, progress: NodeProgress | None = None,
                       stop: threading.Event | None = None) -> LabelReport:
    """First-error search on every live root-to-leaf path of the session (each path stored when it finishes)."""
    tree = store.load_tree(session_id)
    paths = leaf_paths(tree)
    done = labeled_nodes(store, session_id, "first_error") if skip_labeled else set()
    todo = [p for p in paths if not set(p) <= done]
    report = LabelReport(skipped=len(paths) - len(todo))
    for k, path in enumerate(todo):
        found = label_first_error(store, session_id, path[-1], generator, config, stop=stop)
        report.labeled += path
        report.rollouts += sum(0 if e.terminal else e.rollouts for e in found.measured.values())
        report.first_errors[path[-1]] = found.index
        if progress is not None:
            progress(k + 1, len(todo))
    return report


def _bound(n: int) -> int:
    """The bisection's rounds on a path of n steps, for a progress total."""
    return max(1, (n - 1).bit_length() + 1) if n > 1 else 1


def _known(tree: ReasoningTree, node_ids: list[str]) -> list[str]:
    """The ids, checked: each must be a node below the root of this tree."""
    for nid in node_ids:
        if nid == ROOT or nid not in tree:
            raise ValueError(f"no step {nid!r} in session tree of problem {tree.problem.id!r} (the root has no label)")
    return node_ids
