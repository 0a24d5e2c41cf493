"""Views: pure functions from a tree (and stored labels) to the rows and lines the pages and the API show.

No database and no models here, so each view is tested on a tree built in memory.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from reasoning.domains import get_domain
from reasoning.tree import ROOT, ReasoningTree

TRACE_HEADERS = ["#", "node", "factor", "origin", "step", "PRM", "value", "Q", "visits", "prior", "human", "gold"]
SIBLING_HEADERS = ["node", "factor", "step", "PRM", "value", "visits", "rating"]
SESSION_HEADERS = ["id", "name", "problem", "nodes", "labels", "updated", "deleted"]


def rounded(x: float | None, digits: int = 3) -> float | None:
    return None if x is None else round(float(x), digits)


def label_summary(annotations: Iterable[Any]) -> dict[str, str]:
    """`{node: "alice +1, bob -1?"}` from stored human annotations (`?` marks unsure)."""
    out: dict[str, list[str]] = {}
    for ann in annotations:
        mark = f"{ann.annotator} {ann.rating:+d}" if ann.rating else f"{ann.annotator} 0"
        out.setdefault(ann.node_id, []).append(mark + ("?" if ann.unsure else ""))
    return {k: ", ".join(vs) for k, vs in out.items()}


def trace_rows(tree: ReasoningTree, nid: str, labels: dict[str, str]) -> list[list[Any]]:
    """One row per step of the root-to-node trace (TRACE_HEADERS)."""
    rows = []
    for i, n in enumerate(tree.path(nid)):
        a = tree.node(n)
        rows.append([
            i, n, a["factor"] or "(problem)", a["origin"], a["text"], rounded(a["score"]), rounded(a["value"]),
            rounded(tree.q(n)), a["visits"], rounded(a["prior"]), labels.get(n, ""), check_mark(tree, n),
        ])
    return rows


def gold_mark(tree: ReasoningTree, nid: str) -> str:
    """A tick or a cross for a final answer, so a researcher sees at once whether a path is right: the imported
    `correct` flag when the trace came with one, else the domain's own checker against the problem's gold (Countdown's
    exact expression checker, math-verify for word problems); "" for a step, or when there is no gold to check."""
    a = tree.node(nid)
    if not a["terminal"]:
        return ""
    flag = (a.get("meta") or {}).get("correct")
    if isinstance(flag, bool):
        return "✓ correct (imported)" if flag else "✗ wrong (imported)"
    p = tree.problem
    if a["answer"] is None or (p.answer is None and "numbers" not in (p.meta or {})):
        return ""
    try:
        ok = get_domain(p.domain).check(p, a["answer"])
    except (KeyError, TypeError, ValueError):  # no usable gold (an unknown domain, a malformed problem)
        return ""
    return "✓ correct" if ok else "✗ wrong"


def invalid_mark(tree: ReasoningTree, nid: str) -> str:
    """`⚠ invalid: <why>` for a step its domain flagged (Countdown: an operand not among the numbers left, a wrong
    result), else ""."""
    why = (tree.node(nid).get("meta") or {}).get("invalid")
    return f"⚠ invalid: {why}" if why else ""


def check_mark(tree: ReasoningTree, nid: str) -> str:
    """The trace's `gold` cell: the domain's flag on the step, then the gold check of a final answer."""
    return " · ".join(m for m in (invalid_mark(tree, nid), gold_mark(tree, nid)) if m)


def node_info(tree: ReasoningTree, nid: str) -> str:
    """The inspector's one-line description of a node."""
    a = tree.node(nid)
    return (f"node {nid} · depth {a['depth']} · factor {a['factor'] or '(root)'} · {a['origin']}"
            f"{' · pruned' if not tree.is_live(nid) else ''}"
            f"{' · answer ' + str(a['answer']) if a['terminal'] else ''}"
            f"{' · ' + mark if (mark := check_mark(tree, nid)) else ''}")


def human_step_factor(tree: ReasoningTree, nid: str, names: list[str]) -> str:
    """The factor a step written by hand under `nid` starts with (the user may pick another from `names`): the one
    most of the node's live children have (what the search did next here), else the node's own factor, else
    `compute`, else the catalog's first. The catalog's first factor (`restate`) used to be the silent default, which
    booked every hand-written Countdown operation as a restatement."""
    kids = [tree.node(c)["factor"] for c in tree.children(nid, include_pruned=False)]
    counts = {f: kids.count(f) for f in kids if f in names}
    if counts:
        return max(counts, key=lambda f: (counts[f], -kids.index(f)))
    own = tree.node(nid)["factor"]
    if own in names and not tree.node(nid)["terminal"]:
        return own
    return "compute" if "compute" in names else names[0]


def children_rows(tree: ReasoningTree, nid: str, ratings: dict[str, Any] | None = None) -> list[list[Any]]:
    """The live children of a node (SIBLING_HEADERS), with the rating each already has in `ratings` (else blank)."""
    ratings = ratings or {}
    rows = []
    for c in tree.children(nid, include_pruned=False):
        a = tree.node(c)
        rows.append([c, a["factor"], a["text"], rounded(a["score"]), rounded(a["value"]), a["visits"],
                     ratings.get(c, "")])
    return rows


def session_rows(sessions: Iterable[Any]) -> list[list[Any]]:
    """Rows of the sessions table (SESSION_HEADERS)."""
    return [[s.id, s.name, s.problem_text[:120], s.nodes, s.annotations,
             s.updated.strftime("%Y-%m-%d %H:%M") if s.updated else "", "yes" if s.deleted else ""]
            for s in sessions]


def result_line(sid: int, tree: ReasoningTree, result: Any) -> str:
    """The status line of a finished (or stopped) search."""
    if result is None:
        return f"session {sid}: {len(tree)} nodes"
    answer = "no answer" if result.answer is None else f"answer {result.answer} (value {result.value:.3f})"
    how = "stopped" if result.stopped else "finished"
    node = getattr(result, "node", None)
    mark = gold_mark(tree, node) if node in tree else ""
    return (f"session {sid}: {how} · {len(tree)} nodes · {result.nodes_created} created · {answer}"
            f"{' ' + mark if mark else ''} · {result.seconds:.1f} s")


def undo_line(done: Any) -> str:
    """The status line of an undo (`done`: the undone storage Action): what was undone on which node, and for a
    step-adding action which nodes it removed (or only hid, when someone else had rated them or grown them)."""
    if done is None:
        return "nothing of yours to undo"
    what = {"expand": "expansion", "human_step": "human step", "rate_many": "ratings"}.get(done.kind, done.kind)
    where = {"human_step": "under node", "rate_many": "of the children of node"}.get(done.kind, "of node")
    line = f"undid your {what} {where} {done.node_id}" if done.node_id else f"undid your {what}"
    payload = done.payload or {}
    if payload.get("removed"):
        line += f": removed {', '.join(payload['removed'])}"
    if payload.get("hidden"):
        line += (f"; {', '.join(payload['hidden'])} only hidden (pruned): rated by someone else or grown since")
    return line


def next_iteration(tree: ReasoningTree) -> int:
    """The iteration number a hand-made change is recorded under (after every search iteration so far)."""
    return 1 + max(a["iteration"] for _, a in tree.graph.nodes(data=True))


__all__ = ["ROOT", "SESSION_HEADERS", "SIBLING_HEADERS", "TRACE_HEADERS", "check_mark", "children_rows", "gold_mark",
           "human_step_factor", "invalid_mark", "label_summary", "next_iteration", "node_info", "result_line", "rounded", "session_rows", "trace_rows", "undo_line"]
