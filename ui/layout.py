"""A tidy layered tree layout without graphviz: depth gives the row, leaf order gives the column."""
from __future__ import annotations

from collections.abc import Mapping, Sequence


def tidy_layout(children: Mapping[str, Sequence[str]], root: str) -> dict[str, tuple[float, int]]:
    """Positions `{node: (x, depth)}` for the tree under `root`.

    Leaves take consecutive columns in depth-first order, and each parent sits midway between its first and
    last child, so subtrees never overlap and edges never cross. Linear time, iterative (no recursion limit).
    `children` maps a node to its children in display order; nodes missing from it are leaves.
    """
    pos: dict[str, tuple[float, int]] = {}
    next_leaf = 0.0
    # Post-order walk with an explicit stack of (node, depth, expanded?).
    stack: list[tuple[str, int, bool]] = [(root, 0, False)]
    while stack:
        nid, depth, expanded = stack.pop()
        kids = children.get(nid) or ()
        if not kids:
            pos[nid] = (next_leaf, depth)
            next_leaf += 1.0
        elif expanded:
            pos[nid] = ((pos[kids[0]][0] + pos[kids[-1]][0]) / 2.0, depth)
        else:
            stack.append((nid, depth, True))
            stack.extend((k, depth + 1, False) for k in reversed(kids))
    return pos


def children_by_creation(graph) -> dict[str, list[str]]:
    """`{node: [children in creation order]}` of a reasoning tree's graph, pruned children included."""
    nodes = graph.nodes
    out: dict[str, list[str]] = {}
    for parent, kids in graph.adj.items():
        if kids:
            out[parent] = sorted(kids, key=lambda c: nodes[c]["created"])
    return out
