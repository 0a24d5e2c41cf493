"""The tree figure of a session as the pages show it: stored human labels in the hover and, when colour is by
human label, in the colours; the selection highlighted; a focused subtree; one `uirevision` per session so zoom
and pan survive every redraw.

Speed: a stored session's figure is kept, as the JSON that gr.Plot sends, until its tree or its labels
change, so opening a session again or switching colours back costs no layout; clicks do not redraw at all (the
page moves the selection ring in the browser), and a rating sends only the hovers and colours it changed
(`label_patch`), not a new 2,000-node figure.
"""
from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from .figure import COLOR_BY, FigureOptions, empty_figure, tree_figure
from .services.views import auto_marks, label_summary

FIGURE_CACHE_SIZE = 16  # figures kept, over all sessions, colours and selections
# The page's plot draws at most PAGE_COLUMNS leaf columns (COLUMN_PX each: the plot column's width at a 1400 px
# wide window) and PAGE_ROWS levels below its top node; the rest is folded into `+N` markers that open on a click.
PAGE_COLUMNS, PAGE_ROWS = 36, 7
MAX_OPENED, MAX_FIND = 8, 200


class FigureEngine(Protocol):
    """What this module needs of the explorer engine (ui.service.Explorer)."""

    store: Any

    def tree(self, session_id: Any) -> Any: ...

    def running(self, session_id: Any) -> bool: ...


def mean_ratings(annotations: Iterable[Any]) -> dict[str, float]:
    """`{node: mean human rating}` over every annotator of each rated node."""
    sums: dict[str, list[float]] = {}
    for ann in annotations:
        s = sums.setdefault(ann.node_id, [0.0, 0.0])
        s[0] += ann.rating
        s[1] += 1
    return {n: total / count for n, (total, count) in sums.items()}


@dataclass(frozen=True)
class View:
    """What part of a tree the page's plot draws: the subtree of `focus` (None: the whole tree), the folds the user
    opened (each node's children drawn; an opened node's ancestors stay opened), and the search text whose matches
    are highlighted. The page keeps it in one state value (`dump`): a plain node id when only focused, as before."""

    focus: str | None = None
    opened: tuple[str, ...] = ()
    find: str = ""

    @classmethod
    def parse(cls, value: Any) -> View:
        text = str(value or "").strip()
        if not text.startswith("{"):
            return cls(focus=text or None)
        try:
            d = json.loads(text)
            return cls(d.get("focus") or None, tuple(str(n) for n in d.get("opened") or ())[-MAX_OPENED:],
                       str(d.get("find") or "")[:MAX_FIND])
        except (ValueError, AttributeError, TypeError):
            return cls()

    def dump(self) -> str:
        if not self.opened and not self.find:
            return self.focus or ""
        return json.dumps({"focus": self.focus, "opened": list(self.opened), "find": self.find})

    def open(self, node: str) -> View:
        """The view with `node`'s children drawn too (the opened folds that are not its ancestors close)."""
        kept = tuple(n for n in self.opened if node.startswith(n + ".") and n != node)
        return replace(self, opened=(*kept, node)[-MAX_OPENED:])


def figure_options(session_id: Any, color_by: str | None, selected: str | None = None,
                   focus: str | None = None) -> FigureOptions:
    """The page's figure options: `focus` is the page's view state (`View.dump`); the tree is folded to the columns
    that fit the page (ui/figure.py COLUMN_PX), and the zoom is kept per session and view."""
    color = color_by if color_by in COLOR_BY else "value"
    view = View.parse(focus)
    key = view.dump()
    return FigureOptions(color_by=color, selected=selected, focus=view.focus, opened=view.opened, find=view.find,
                         max_columns=PAGE_COLUMNS, max_rows=PAGE_ROWS,
                         uirevision=f"session-{session_id}" + (f"/{key}" if key else ""))


def _inputs(engine: FigureEngine, session_id: Any, color_by: str | None, selected: str | None,
            focus: str | None) -> tuple[Any, FigureOptions, dict[str, Any]]:
    """Everything a session's figure is drawn from: the tree, the options and tree_figure's keyword arguments."""
    tree = engine.tree(session_id)
    running = engine.running(session_id)
    notes = [] if running else engine.store.annotations(int(session_id))
    autos = {} if running else auto_marks(engine.store.auto_labels(int(session_id)))
    return (tree, figure_options(session_id, color_by, selected, focus),
            {"labels": label_summary(notes), "ratings": mean_ratings(notes), "autos": autos})


class _FigureCache:
    """Figures as gr.Plot's JSON, by (session, options). An entry is used only while the session's tree is the very
    same object (stored trees are replaced, never changed in place, when a change is saved: ui/services/sessions.py)
    and tree_figure's other inputs (labels, ratings) are equal; a running search's tree is never cached."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.lock = threading.Lock()
        self.entries: OrderedDict[tuple, tuple[Any, dict[str, Any], Any]] = OrderedDict()

    def get(self, key: tuple, tree: Any, kwargs: dict[str, Any]) -> Any:
        with self.lock:
            hit = self.entries.get(key)
            if hit is None or hit[0] is not tree or hit[1] != kwargs:
                return None
            self.entries.move_to_end(key)
            return hit[2]

    def put(self, key: tuple, tree: Any, kwargs: dict[str, Any], value: Any) -> None:
        with self.lock:
            self.entries[key] = (tree, kwargs, value)
            self.entries.move_to_end(key)
            while len(self.entries) > self.size:
                self.entries.popitem(last=False)


_figures = _FigureCache(FIGURE_CACHE_SIZE)


def session_plot(engine: FigureEngine, session_id: Any, color_by: str | None = "value",
                 selected: str | None = None, focus: str | None = None):
    """The figure of a session (live or stored) as the value of a gr.Plot (its JSON; a blank plot when none is
    open), from the cache while nothing it shows has changed."""
    from gradio.components.plot import PlotData

    if not session_id:
        return empty_figure()
    tree, opts, kwargs = _inputs(engine, session_id, color_by, selected, focus)
    if engine.running(session_id):
        return tree_figure(tree, opts, **kwargs)
    key = (id(engine.store), str(session_id), opts)
    plot = _figures.get(key, tree, kwargs)
    if plot is None:
        plot = PlotData(type="plotly", plot=tree_figure(tree, opts, **kwargs).to_json())
        _figures.put(key, tree, kwargs, plot)
    return plot


def label_patch(engine: FigureEngine, session_id: Any, color_by: str | None, selected: str | None,
                focus: str | None, node_ids: Iterable[str]) -> str:
    """What a rating changed on the plot, as JSON for the page's `rtePatch` (ui/static/app.js): the hover text and
    the colour of each of `node_ids` in the session's figure as drawn now. The browser restyles only those points,
    so a rating is acknowledged at once and the hovers still show every current label."""
    if not session_id:
        return ""
    tree, opts, kwargs = _inputs(engine, session_id, color_by, selected, focus)
    fig = tree_figure(tree, opts, **kwargs)
    nodes = next(tr for tr in fig.data if tr.name == "nodes")
    at = {n: i for i, n in enumerate(nodes.customdata)}
    wanted = [n for n in dict.fromkeys(node_ids) if n in at]
    return json.dumps({"uirevision": opts.uirevision, "color_by": opts.color_by, "at": time.time(),
                       "nodes": {n: [nodes.hovertext[at[n]], nodes.marker.color[at[n]]] for n in wanted}})
