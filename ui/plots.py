"""The tree figure of a session as the pages show it: stored human labels in the hover and, when colour is by
human label, in the colours; the selection highlighted; a focused subtree; one `uirevision` per session so zoom
and pan survive every redraw."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from .figure import COLOR_BY, FigureOptions, empty_figure, tree_figure
from .services.views import auto_marks, label_summary


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


def figure_options(session_id: Any, color_by: str | None, selected: str | None = None,
                   focus: str | None = None) -> FigureOptions:
    color = color_by if color_by in COLOR_BY else "value"
    return FigureOptions(color_by=color, selected=selected, focus=focus or None, uirevision=f"session-{session_id}")


def session_figure(engine: FigureEngine, session_id: Any, color_by: str | None = "value",
                   selected: str | None = None, focus: str | None = None):
    """The figure of a session (live or stored), or a blank plot when none is open."""
    if not session_id:
        return empty_figure()
    tree = engine.tree(session_id)
    running = engine.running(session_id)
    notes = [] if running else engine.store.annotations(int(session_id))
    autos = {} if running else auto_marks(engine.store.auto_labels(int(session_id)))
    return tree_figure(tree, figure_options(session_id, color_by, selected, focus), labels=label_summary(notes),
                       ratings=mean_ratings(notes), autos=autos)
