"""A tidy layered tree layout without graphviz (depth gives the row, leaf order the column), and the choice of which
nodes a big tree draws so that every drawn node keeps a column of its own (`fit_columns`, `fold`)."""
from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any


def tidy_layout(children: Mapping[str, Sequence[str]], root: str,
                widths: Mapping[str, float] | None = None) -> dict[str, tuple[float, int]]:
    """Positions `{node: (x, depth)}` for the tree under `root`.

    Leaves take consecutive columns in depth-first order, and each parent sits midway between its first and
    last child, so subtrees never overlap and edges never cross. Linear time, iterative (no recursion limit).
    `children` maps a node to its children in display order; nodes missing from it are leaves. A leaf named in
    `widths` takes that many columns (a fold marker's label is wider than a node), centred in them.
    """
    widths = widths or {}
    pos: dict[str, tuple[float, int]] = {}
    next_leaf = 0.0
    # Post-order walk with an explicit stack of (node, depth, expanded?).
    stack: list[tuple[str, int, bool]] = [(root, 0, False)]
    while stack:
        nid, depth, expanded = stack.pop()
        kids = children.get(nid) or ()
        if not kids:
            w = widths.get(nid, 1.0)
            pos[nid] = (next_leaf + (w - 1.0) / 2.0, depth)
            next_leaf += w
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


def _depths(children: Mapping[str, Sequence[str]], root: str) -> tuple[dict[str, int], dict[str, str]]:
    """Depth below `root` and parent of every node under it."""
    depth, parent = {root: 0}, {}
    stack = [root]
    while stack:
        n = stack.pop()
        for c in children.get(n, ()):
            depth[c], parent[c] = depth[n] + 1, n
            stack.append(c)
    return depth, parent


def fit_columns(children: Mapping[str, Sequence[str]], root: str, columns: float, *, rows: int | None = None,
                keep: Iterable[str] = (), opened: Iterable[str] = (), key: Callable[[str], Any] = str,
                fold_width: float = 1.0) -> set[str]:
    """The nodes under `root` that a drawing of at most `columns` leaf columns shows (fewer than `rows` levels
    deep), each drawn node in a column of its own: the paths to `keep` (the selection, the best path), the paths to
    and the children of each `opened` node (a fold the user clicked), then the other nodes in `key` order (most
    visited first) while they fit. A shown node whose children are not all shown gets one fold marker, which takes
    `fold_width` columns (its `+N` label); so a node costs a column (a marker's width when it has children), less
    its parent's marker when it is the last hidden child. `keep` and `opened` are shown even past the budget (the
    drawing then grows wider)."""
    depth, parent = _depths(children, root)
    shown = _must_show(children, root, depth, parent, keep, opened)
    hidden = {s: sum(c not in shown for c in children.get(s, ())) for s in shown}
    used = sum((hidden[s] > 0) * fold_width + (not children.get(s)) for s in shown)
    heap: list[tuple[Any, str]] = []
    for s in shown:
        heap.extend((key(c), c) for c in children.get(s, ()) if c not in shown)
    heapq.heapify(heap)
    while heap:
        _, c = heapq.heappop(heap)
        if c in shown or (rows is not None and depth[c] >= rows):
            continue
        cost = (fold_width if children.get(c) else 1.0) - (fold_width if hidden[parent[c]] == 1 else 0.0)
        if used + cost > columns:
            continue
        shown.add(c)
        used += cost
        hidden[parent[c]] -= 1
        hidden[c] = len(children.get(c, ()))
        for k in children.get(c, ()):
            heapq.heappush(heap, (key(k), k))
    return shown


def _must_show(children: Mapping[str, Sequence[str]], root: str, depth: Mapping[str, int],
               parent: Mapping[str, str], keep: Iterable[str], opened: Iterable[str]) -> set[str]:
    """The root, the paths to `keep` and to `opened`, and the children of `opened` (those under `root`)."""
    shown = {root}

    def add_path(n: str) -> None:
        path = []
        while n in depth and n not in shown:
            path.append(n)
            n = parent[n]
        if n in shown:
            shown.update(path)

    for n in keep:
        add_path(n)
    for n in opened:
        if n in depth:
            add_path(n)
            shown.update(children.get(n, ()))
    return shown


def fold(children: Mapping[str, Sequence[str]], shown: set[str], root: str) -> tuple[dict[str, list[str]],
                                                                                      dict[str, list[str]]]:
    """The children lists cut down to the shown nodes, and `{shown node: [its hidden children]}`."""
    cut = {p: [c for c in cs if c in shown] for p, cs in children.items() if p in shown}
    hidden = {p: [c for c in cs if c not in shown] for p, cs in children.items() if p in shown}
    return cut, {p: cs for p, cs in hidden.items() if cs}


def subtree_sizes(children: Mapping[str, Sequence[str]], root: str) -> dict[str, int]:
    """`{node: nodes in its subtree}` under `root` (the node itself included)."""
    order, stack = [], [root]
    while stack:  # pre-order, then sizes bottom-up
        n = stack.pop()
        order.append(n)
        stack.extend(children.get(n, ()))
    size: dict[str, int] = {}
    for n in reversed(order):
        size[n] = 1 + sum(size[c] for c in children.get(n, ()))
    return size
