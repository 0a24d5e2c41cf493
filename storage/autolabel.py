"""Automatic labels as stored: the rows built from the labeling algorithms' results, and which nodes have them.

Storage stores and reads auto labels and drives no model: `experiments/autolabel.py` runs the algorithms
(`reasoning.labeling`) with a generator and hands each finished chunk here, one transaction per chunk, so an
interrupted run keeps what it finished. Auto labels never touch the human annotations table.
"""
from __future__ import annotations

from typing import Any

from reasoning.labeling import Estimate, FirstError

from .records import AutoLabel
from .store import Store


def rollout_label(node_id: str, got: Estimate, prov: dict[str, Any], method: str = "rollout") -> AutoLabel:
    return AutoLabel(node_id, method, got.rollouts, got.successes, got.value, got.hard, prov)


def first_error_labels(path: list[str], found: FirstError, prov: dict[str, Any]) -> list[AutoLabel]:
    """Labels of every step of a searched path: measured steps keep their counts; the others are inferred (0
    rollouts) from the bisection: right before the first error, wrong from it on."""
    out = []
    for i, nid in enumerate(path):
        if i in found.measured:
            out.append(rollout_label(nid, found.measured[i], prov, "first_error"))
        else:
            good = found.index < 0 or i < found.index
            out.append(AutoLabel(nid, "first_error", 0, 0, None, good, prov))
    return out


def store_estimates(store: Store, session_id: int, node_ids: list[str], estimates: list[Estimate],
                    prov: dict[str, Any]) -> None:
    """One chunk of rollout estimates stored as `rollout` labels, in one transaction (replacing older ones)."""
    store.set_auto_labels(session_id, [rollout_label(n, e, prov) for n, e in zip(node_ids, estimates, strict=True)])


def store_first_error(store: Store, session_id: int, path: list[str], found: FirstError, prov: dict[str, Any]) -> None:
    """A searched path's `first_error` labels, every step of it, in one transaction."""
    store.set_auto_labels(session_id, first_error_labels(path, found, prov))


def labeled_nodes(store: Store, session_id: int, method: str) -> set[str]:
    """The session's nodes that have an auto label of `method`."""
    return {a.node_id for a in store.auto_labels(session_id) if a.method == method}
