"""Views: pure functions from a tree (and stored labels) to the rows and lines the pages and the API show.

No database and no models here, so each view is tested on a tree built in memory.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from reasoning.domains import get_domain
from reasoning.tree import ROOT, ReasoningTree
from reasoning.types import Problem

from ..mathtext import math_markdown, plain

# Columns are only ever appended: the API's /trace returns one dict per row keyed by these names.
TRACE_HEADERS = ["#", "node", "factor", "origin", "step", "PRM", "value", "Q", "visits", "prior", "human", "gold",
                 "auto"]
SIBLING_HEADERS = ["node", "factor", "step", "PRM", "value", "visits", "rating"]
SESSION_HEADERS = ["id", "name", "problem", "nodes", "labels", "updated", "deleted", "search"]


def rounded(x: float | None, digits: int = 3) -> float | None:
    return None if x is None else round(float(x), digits)


def label_summary(annotations: Iterable[Any]) -> dict[str, str]:
    """`{node: "alice +1, bob -1?"}` from stored human annotations (`?` marks unsure)."""
    out: dict[str, list[str]] = {}
    for ann in annotations:
        mark = f"{ann.annotator} {ann.rating:+d}" if ann.rating else f"{ann.annotator} 0"
        out.setdefault(ann.node_id, []).append(mark + ("?" if ann.unsure else ""))
    return {k: ", ".join(vs) for k, vs in out.items()}


@dataclass(frozen=True)
class AutoMark:
    """A node's automatic labels as the views show them: `value` in [0, 1] (the colour of colour-by-auto; None when
    no label carries one) and `text`, one line per method (`rollouts 3/4 = 0.75 (rollout)`)."""

    value: float | None
    text: str


def _auto_part(label: Any) -> str:
    if label.rollouts:
        return f"rollouts {label.successes}/{label.rollouts} = {label.successes / label.rollouts:.2f} ({label.method})"
    if label.soft_value is not None:
        return f"value {float(label.soft_value):.2f} ({label.method})"
    if label.hard_label is not None:
        return f"{'right' if label.hard_label else 'wrong'}, inferred ({label.method})"
    return f"no estimate ({label.method})"


def _auto_value(labels: list[Any]) -> float | None:
    """The colour value: the soft value of the label with the most rollouts (as the exports read it), else its
    success rate, else an inferred right / wrong as 1 / 0."""
    best = max(labels, key=lambda a: a.rollouts)
    if best.soft_value is not None:
        return min(max(float(best.soft_value), 0.0), 1.0)
    if best.rollouts:
        return best.successes / best.rollouts
    hard = next((a.hard_label for a in labels if a.hard_label is not None), None)
    return None if hard is None else float(hard)


def auto_marks(labels: Iterable[Any]) -> dict[str, AutoMark]:
    """`{node: AutoMark}` from stored automatic labels (storage.records.AutoLabel: rollouts, first-error search)."""
    by_node: dict[str, list[Any]] = {}
    for label in labels:
        by_node.setdefault(label.node_id, []).append(label)
    return {n: AutoMark(_auto_value(ls), " · ".join(_auto_part(a) for a in sorted(ls, key=lambda a: a.method)))
            for n, ls in by_node.items()}


def trace_rows(tree: ReasoningTree, nid: str, labels: dict[str, str],
               autos: Mapping[str, AutoMark] | None = None) -> list[list[Any]]:
    """One row per step of the root-to-node trace (TRACE_HEADERS)."""
    autos = autos or {}
    rows = []
    for i, n in enumerate(tree.path(nid)):
        a = tree.node(n)
        auto = autos.get(n)
        rows.append([
            i, n, a["factor"] or ("(problem)" if n == ROOT else a["origin"]), a["origin"], a["text"], rounded(a["score"]), rounded(a["value"]),
            rounded(tree.q(n)), a["visits"], rounded(a["prior"]), labels.get(n, ""), check_mark(tree, n),
            auto.text if auto else "",
        ])
    return rows


def trace_math(rows: Iterable[Any]) -> str:
    """Markdown source of the rendered view of a trace (rows as trace_rows gives them, or as the page's table holds
    them): the problem, then each step under its node, factor, gold mark and labels (human ratings, auto labels),
    the selected node last. Every text is typeset by ui.mathtext (math rendered, everything else inert); "" for an
    empty trace."""
    col = {h: i for i, h in enumerate(TRACE_HEADERS)}
    rows = [list(r) for r in rows if len(r) > col["step"] and str(r[col["node"]] or "").strip()]
    parts = []
    for k, r in enumerate(rows):
        if k == 0 and r[col["node"]] == ROOT:
            parts.append(f"**Problem**\n\n{math_markdown(r[col['step']])}")
            continue
        marks = [f"{name}: {cell}" if name != "gold" else cell
                 for name in ("gold", "human", "auto") if (cell := _cell(r, col[name]))]
        head = " · ".join([f"step {r[col['#']]}", f"node {r[col['node']]}", str(r[col["factor"]]), *marks])
        head += " (selected)" if k == len(rows) - 1 else ""
        parts.append(f"**{plain(head)}**\n\n{math_markdown(r[col['step']])}")
    return "\n\n".join(parts)


def _cell(row: list[Any], i: int) -> str:
    """A text cell of a trace row as shown ("" for a missing or empty one, as the page's table may hold it)."""
    value = row[i] if len(row) > i else None
    return "" if value is None or (isinstance(value, float) and value != value) else str(value).strip()


def gold_mark(tree: ReasoningTree, nid: str) -> str:
    """A tick or a cross for a final answer, so a researcher sees at once whether a path is right: the imported
    `correct` flag when the trace came with one, else the domain's own checker against the problem's gold (Countdown's
    exact expression checker, math-verify for word problems); "" for a step, or when there is no gold to check."""
    return _gold(tree, nid, True)[0] or ""


GOLD_CHECKS_PER_CALL = 16  # answers not seen before that one gold_marks call checks; the rest wait for a later call


def gold_marks(tree: ReasoningTree, nids: Iterable[str], max_new: int = GOLD_CHECKS_PER_CALL) -> dict[str, str]:
    """The marks of the finished nodes among `nids` (steps are left out), for a figure redrawn often: answers checked
    before cost a lookup, and at most `max_new` new ones are checked per call, so the first redraw of a large tree
    full of distinct answers does not wait on hundreds of math-verify calls (the rest are marked on later redraws)."""
    out: dict[str, str] = {}
    for n in nids:
        if not tree.node(n)["terminal"]:
            continue
        mark, new = _gold(tree, n, max_new > 0)
        max_new -= new
        if mark is not None:
            out[n] = mark
    return out


def _gold(tree: ReasoningTree, nid: str, check: bool) -> tuple[str | None, bool]:
    """(the mark, or None when the answer was never checked and `check` is off; whether a check ran now)."""
    a = tree.node(nid)
    if not a["terminal"]:
        return "", False
    flag = (a.get("meta") or {}).get("correct")
    if isinstance(flag, bool):
        return ("✓ correct (imported)" if flag else "✗ wrong (imported)"), False
    p = tree.problem
    if a["answer"] is None or (p.answer is None and "numbers" not in (p.meta or {})):
        return "", False
    meta = p.meta or {}
    numbers = meta.get("numbers")
    key = (p.domain, p.answer, tuple(numbers) if isinstance(numbers, list) else repr(numbers),
           repr(meta.get("target")), str(a["answer"]))
    with _GOLD_LOCK:
        known = key in _GOLD_CACHE
        if known:
            _GOLD_CACHE.move_to_end(key)
            ok = _GOLD_CACHE[key]
    if not known:
        if not check:
            return None, False
        ok = _check(p, str(a["answer"]))
        with _GOLD_LOCK:
            _GOLD_CACHE[key] = ok
            while len(_GOLD_CACHE) > _GOLD_CACHE_SIZE:
                _GOLD_CACHE.popitem(last=False)
    return ("" if ok is None else "✓ correct" if ok else "✗ wrong"), not known


# The gold checks already made, by (domain, gold, numbers, target, answer): math-verify takes milliseconds per answer
# and the figure marks every finished path on every redraw, so each distinct answer is checked once.
_GOLD_CACHE: OrderedDict[tuple, bool | None] = OrderedDict()
_GOLD_CACHE_SIZE = 8192
_GOLD_LOCK = threading.Lock()


def _check(p: Problem, answer: str) -> bool | None:
    """The domain's verdict on `answer`; None when there is no usable gold."""
    try:
        return bool(get_domain(p.domain).check(p, answer))
    except (KeyError, TypeError, ValueError):  # an unknown domain, a malformed problem
        return None


def invalid_mark(tree: ReasoningTree, nid: str) -> str:
    """`⚠ invalid: <why>` for a step its domain flagged (Countdown: an operand not among the numbers left, a wrong
    result), else ""."""
    why = tree.invalid(nid)
    return f"⚠ invalid: {why}" if why else ""


def check_mark(tree: ReasoningTree, nid: str) -> str:
    """The trace's `gold` cell: the domain's flag on the step, then the gold check of a final answer."""
    return " · ".join(m for m in (invalid_mark(tree, nid), gold_mark(tree, nid)) if m)


def node_info(tree: ReasoningTree, nid: str) -> str:
    """The inspector's one-line description of a node; a step without a factor (an imported one) says so."""
    a = tree.node(nid)
    what = f"factor {a['factor']} · {a['origin']}" if a["factor"] else "the problem" if nid == ROOT \
        else f"{a['origin']} step, no factor"
    return (f"node {nid} · depth {a['depth']} · {what}"
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


def session_rows(sessions: Iterable[Any], search_state: Callable[[Any], str] = lambda s: "") -> list[list[Any]]:
    """Rows of the sessions table (SESSION_HEADERS); `search_state` reads a session's search state."""
    return [[s.id, s.name, s.problem_text[:120], s.nodes, s.annotations,
             s.updated.strftime("%Y-%m-%d %H:%M") if s.updated else "", "yes" if s.deleted else "", search_state(s)]
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


__all__ = ["ROOT", "SESSION_HEADERS", "SIBLING_HEADERS", "TRACE_HEADERS", "AutoMark", "auto_marks", "check_mark",
           "children_rows", "gold_mark", "gold_marks", "human_step_factor", "invalid_mark", "label_summary",
           "next_iteration", "node_info", "result_line", "rounded", "session_rows", "trace_math", "trace_rows"]
