"""The children table of the inspector: each child with the rating this annotator already gave it, and the ratings a
user types there turned into stored ratings of those children (never of the selected parent).

No Gradio here: the page calls these with the table's rows, so tests and scripts can call them too.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from . import validate as v

CHILDREN_HEADERS = ["node", "factor", "step", "PRM", "value", "visits", "rating"]
CHILDREN_TYPES = ["str", "str", "str", "number", "number", "number", "str"]
RATING_COLUMN = len(CHILDREN_HEADERS) - 1
# Every spelling the rating column suggests (and the keyboard shortcuts' letters) maps to a PRM800K rating.
SPELLINGS = {
    "+1": 1, "1": 1, "+": 1, "good": 1, "g": 1, "+1 good": 1,
    "0": 0, "+0": 0, "-0": 0, "neutral": 0, "n": 0, "0 neutral": 0,
    "-1": -1, "-": -1, "−1": -1, "bad": -1, "b": -1, "-1 bad": -1,
}


class ChildrenEngine(Protocol):
    """What this module needs of the explorer engine (ui.service.Explorer)."""

    store: Any

    def siblings(self, session_id: Any, node_id: Any) -> list[list[Any]]: ...

    def rate_children(self, session_id: Any, node_id: Any, rows: Any, *, annotator: Any = None) -> int: ...


def show_rating(rating: int | None) -> str:
    """A stored rating as the table shows it: `+1`, `0`, `-1`, or blank when this annotator has none."""
    return "" if rating is None else f"{rating:+d}" if rating else "0"


def parse_rating(cell: Any, child: str) -> int | None:
    """A typed rating cell as -1/0/+1, or None when blank. One clear message for anything else."""
    if cell is None or (isinstance(cell, float) and cell != cell):  # None or NaN: an empty cell
        return None
    if isinstance(cell, int | float) and not isinstance(cell, bool):
        v.need(float(cell) in (-1.0, 0.0, 1.0), f"the rating of child {child} must be -1, 0 or +1, got {cell!r}")
        return int(cell)
    text = str(cell).strip().lower()
    if not text:
        return None
    v.need(text in SPELLINGS, f"the rating of child {child} must be +1/good, 0/neutral or -1/bad, got {str(cell)[:20]!r}")
    return SPELLINGS[text]


def my_ratings(store: Any, session_id: int, annotator: str) -> dict[str, int]:
    """`{node: rating}` of one annotator's current ratings in a session."""
    return {a.node_id: a.rating for a in store.annotations(session_id) if a.annotator == annotator}


def children_rows(engine: ChildrenEngine, session_id: Any, node_id: Any, annotator: str) -> list[list[Any]]:
    """The children of a node, each with the rating `annotator` gave it (the table shows what is stored)."""
    rows = engine.siblings(session_id, node_id)
    mine = my_ratings(engine.store, v.session_id(session_id), annotator)
    return [[*row[:RATING_COLUMN], show_rating(mine.get(row[0]))] for row in rows]


def changed_ratings(rows: Sequence[Sequence[Any]], stored: dict[str, int]) -> list[list[Any]]:
    """Rows `[child, rating]` whose typed rating differs from the stored one (blank cells are left alone)."""
    out = []
    for row in rows:
        v.need(isinstance(row, list | tuple) and len(row) > RATING_COLUMN,
               f"each row of the children table needs {len(CHILDREN_HEADERS)} columns")
        child = str(row[0])
        rating = parse_rating(row[RATING_COLUMN], child)
        if rating is not None and stored.get(child) != rating:
            out.append([child, rating])
    return out


def save_children(engine: ChildrenEngine, session_id: Any, node_id: Any, rows: Any, annotator: str) -> str:
    """Store the ratings typed in the children table (only the changed ones) and say what was saved."""
    rows = rows.values.tolist() if hasattr(rows, "values") else rows
    v.need(isinstance(rows, list) and bool(rows), "the selected node has no children to rate")
    todo = changed_ratings(rows, my_ratings(engine.store, v.session_id(session_id), annotator))
    v.need(bool(todo), "no new ratings to save: type +1/good, 0/neutral or -1/bad in the rating column of a child")
    count = engine.rate_children(session_id, node_id, todo, annotator=annotator)
    what = ", ".join(f"{child} {show_rating(r)}" for child, r in todo)
    return f"saved {count} rating{'s' * (count != 1)} of the children of {node_id} as {annotator}: {what}"
