"""Reasoning tree -> plotly figure: one edge trace, one node trace, the best path, and a legend of factor symbols.

A plain function with no Gradio inside. Every piece of model or user text is HTML-escaped before it reaches
plotly's hover labels (plotly renders a subset of HTML there).
"""
from __future__ import annotations

import html
import textwrap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import plotly.graph_objects as go

from reasoning.tree import ROOT, ReasoningTree, samples

from .layout import children_by_creation, tidy_layout

EDGE_GAP = 0.1  # vertical gap (in depth units) between an edge's ends and its nodes
WEBGL_THRESHOLD = 1000  # past this many nodes, traces switch to WebGL (Scattergl)
COLOR_BY = ("value", "score", "q")
# Symbols that both SVG and WebGL scatter draw.
SYMBOLS = (
    "circle", "square", "diamond", "triangle-up", "triangle-down", "star", "hexagon", "pentagon",
    "cross", "x", "triangle-left", "triangle-right",
)
ROOT_SYMBOL = "circle-open"
# Colour scale: two grey bands below zero (unscored, pruned) and Viridis over [0, 1] for scores and values.
UNSCORED, PRUNED = -0.15, -0.05
CMIN, CMAX = -0.2, 1.0
_VIRIDIS = ("#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58", "#b5de2b",
            "#fde725")


def _colorscale() -> list[list]:
    span = CMAX - CMIN
    at = lambda v: (v - CMIN) / span  # noqa: E731
    scale = [[0.0, "#8a8a8a"], [at(-0.1), "#8a8a8a"], [at(-0.1), "#d4d4d4"], [at(0.0), "#d4d4d4"]]
    for i, c in enumerate(_VIRIDIS):
        scale.append([at(i / (len(_VIRIDIS) - 1)), c])
    return scale


COLORSCALE = _colorscale()
BEST_COLOR = "#e4572e"
SELECTED_COLOR = "#ff1f8f"


@dataclass(frozen=True)
class FigureOptions:
    color_by: str = "value"
    selected: str | None = None
    max_iteration: int | None = None  # replay: only nodes created at or before this search iteration
    show_best: bool = True
    height: int = 620
    uirevision: str = "tree"

    def __post_init__(self) -> None:
        if self.color_by not in COLOR_BY:
            raise ValueError(f"color_by must be one of {COLOR_BY}, not {self.color_by!r}")


def _esc(text: object) -> str:
    """Escape &, < and > (plotly's hover labels would otherwise read tags); quotes stay, since plotly shows
    `&quot;` literally and a quote cannot start a tag."""
    return html.escape(str(text), quote=False)


def escape_hover(text: object, width: int = 72, max_chars: int = 420) -> str:
    """Model text made safe and readable for a plotly hover label: cut, wrapped, HTML-escaped, joined by <br>."""
    s = "" if text is None else str(text)
    if len(s) > max_chars:
        s = s[: max_chars - 1] + "…"
    lines: list[str] = []
    for para in s.splitlines() or [""]:
        lines.extend(textwrap.wrap(para, width, replace_whitespace=False, drop_whitespace=True) or [""])
    return "<br>".join(_esc(line) for line in lines)


def factor_symbols(factors: Iterable[str | None]) -> dict[str, str]:
    """A stable symbol per factor name, in first-seen order; None (the root) gets no entry."""
    out: dict[str, str] = {}
    for f in factors:
        if f is not None and f not in out:
            out[f] = SYMBOLS[len(out) % len(SYMBOLS)]
    return out


def _fmt(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _node_hover(nid: str, a: Mapping, q: float, labels: Mapping[str, str]) -> str:
    head = f"<b>{_esc(nid)}</b> · {_esc(str(a['factor'] or a['origin']))}"
    if a["origin"] not in ("generated", "root"):
        head += f" ({_esc(str(a['origin']))})"
    if a["pruned"]:
        head += " · pruned"
    nums = (f"PRM {_fmt(a['score'])} · value {_fmt(a['value'])} · Q {q:.3f} · visits {a['visits']}"
            f" · prior {_fmt(a['prior'])}")
    sampled = samples(a)
    if sampled > 1:
        nums += f" · sampled {sampled}×"
    parts = [head, escape_hover(a["text"]), nums]
    if a["terminal"]:
        parts.append("answer: " + escape_hover(a["answer"], max_chars=80))
    if nid in labels:
        parts.append("human: " + _esc(labels[nid]))
    return "<br>".join(parts)


def _visible_nodes(tree: ReasoningTree, max_iteration: int | None) -> set[str] | None:
    if max_iteration is None:
        return None
    nodes = tree.graph.nodes
    return {n for n, a in nodes.items() if n == ROOT or a["iteration"] <= max_iteration}


def _color_value(a: Mapping, q: float, color_by: str, live: bool) -> float:
    if not live:
        return PRUNED
    v = q if color_by == "q" and a["visits"] else a[color_by if color_by != "q" else "value"]
    return UNSCORED if v is None else min(max(float(v), 0.0), 1.0)


def tree_figure(
    tree: ReasoningTree,
    options: FigureOptions | None = None,
    *,
    labels: Mapping[str, str] | None = None,
    best_path: list[str] | None = None,
    validate: bool = False,
) -> go.Figure:
    """The figure of a reasoning tree. `labels` maps node ids to a short human-label summary for the hover."""
    opt = options or FigureOptions()
    labels = labels or {}
    g = tree.graph
    nodes = g.nodes
    with tree.lock:
        keep = _visible_nodes(tree, opt.max_iteration)
        kids = children_by_creation(g)
        if keep is not None:
            kids = {p: [c for c in cs if c in keep] for p, cs in kids.items() if p in keep}
        pos = tidy_layout(kids, ROOT)
        order = sorted(pos, key=lambda n: nodes[n]["created"])
        dead = _pruned_below(kids, nodes)
        symbols = factor_symbols(nodes[n]["factor"] for n in order)
        base = 9.0 if len(order) <= 300 else 6.0 if len(order) <= 1500 else 4.0  # big trees: smaller markers
        xs, ys, colors, sizes, syms, hover, line_w, line_c = [], [], [], [], [], [], [], []
        ex: list[float | None] = []
        ey: list[float | None] = []
        ehover: list[str] = []
        for n in order:
            a = nodes[n]
            x, depth = pos[n]
            q = a["value_sum"] / a["visits"] if a["visits"] else 0.0
            xs.append(x)
            ys.append(-depth)
            colors.append(_color_value(a, q, opt.color_by, n not in dead))
            sizes.append(min(base + 3.0 * a["visits"] ** 0.5, 30.0))
            syms.append(ROOT_SYMBOL if n == ROOT else symbols.get(a["factor"], "circle"))
            hover.append(_node_hover(n, a, q, labels))
            selected = n == opt.selected
            line_w.append(3.0 if selected else 0.5)
            line_c.append(SELECTED_COLOR if selected else "#333333")
            p = a["parent"]
            if p is not None and p in pos:
                # Edges fan out from just below the parent and end just above the child: they never touch a
                # node, so hovering or clicking a node never picks its edge instead.
                px, pd = pos[p]
                ex.extend((px, (px + x) / 2, x, None))
                ey.extend((-pd - EDGE_GAP, -(pd + depth) / 2, -depth + EDGE_GAP, None))
                ehover.append(f"{_esc(p)} → {_esc(n)}<br>factor: {_esc(str(a['factor']))}")
        path = best_path if best_path is not None else (tree.best_path() if opt.show_best else [])
    kind = "scattergl" if len(order) > WEBGL_THRESHOLD else "scatter"
    scatter = lambda **kw: {"type": kind, **kw}  # noqa: E731
    edge_text, edge_info, edge_size = _edge_hover_arrays(ehover)
    traces = [
        scatter(
            x=ex, y=ey, mode="lines+markers", name="edges", showlegend=False,
            line={"color": "#b0b0b0", "width": 1},
            marker={"size": edge_size, "color": "rgba(0,0,0,0)", "line": {"width": 0}},
            hovertext=edge_text, hoverinfo=edge_info,
        ),
    ]
    best = [n for n in path if n in pos]
    if opt.show_best and len(best) > 1:
        traces.append(scatter(
            x=[pos[n][0] for n in best], y=[-pos[n][1] for n in best], mode="lines", name="best path",
            line={"color": BEST_COLOR, "width": 4}, hoverinfo="skip",
        ))
    traces.append(scatter(
        x=xs, y=ys, mode="markers", name="nodes", showlegend=False,
        customdata=order, hovertext=hover, hoverinfo="text",
        marker={
            "color": colors, "size": sizes, "symbol": syms, "colorscale": COLORSCALE, "cmin": CMIN, "cmax": CMAX,
            "line": {"width": line_w, "color": line_c},
            "colorbar": {
                "title": {"text": opt.color_by}, "thickness": 14, "len": 0.8,
                "tickvals": [UNSCORED, PRUNED, 0, 0.25, 0.5, 0.75, 1.0],
                "ticktext": ["unscored", "pruned", "0", "0.25", "0.5", "0.75", "1"],
            },
        },
    ))
    for name, sym in symbols.items():  # legend entries only: empty traces, one per factor symbol
        traces.append(scatter(
            x=[None], y=[None], mode="markers", name=_esc(name), showlegend=True,
            marker={"symbol": sym, "size": 10, "color": "#555555"}, hoverinfo="skip",
        ))
    layout = dict(
        height=opt.height, margin={"l": 10, "r": 10, "t": 30, "b": 10}, hovermode="closest", dragmode="pan",
        uirevision=opt.uirevision, plot_bgcolor="white", paper_bgcolor="white",
        legend={"orientation": "h", "y": 1.02, "x": 0, "yanchor": "bottom", "title": {"text": "factor"}},
        xaxis={"visible": False}, yaxis={"visible": False},
        hoverlabel={"align": "left"},
    )
    # The spec is built here and checked by the tests with validation on; skipping plotly's per-element
    # validation keeps a 20,000-node figure inside its time budget.
    return go.Figure({"data": traces, "layout": layout}, _validate=validate)


def _edge_hover_arrays(ehover: list[str]) -> tuple[list[str], list[str], list[float]]:
    """Per-point hover for the edge trace: only each edge's midpoint carries the factor label."""
    text: list[str] = []
    info: list[str] = []
    size: list[float] = []
    for h in ehover:
        text.extend(("", h, "", ""))
        info.extend(("skip", "text", "skip", "skip"))
        size.extend((0.0, 6.0, 0.0, 0.0))
    return text, info, size


def _pruned_below(kids: Mapping[str, list[str]], nodes) -> set[str]:
    """Nodes that are pruned or have a pruned ancestor (greyed in the figure)."""
    dead: set[str] = set()
    stack = [(ROOT, False)]
    while stack:
        nid, parent_dead = stack.pop()
        d = parent_dead or bool(nodes[nid]["pruned"])
        if d:
            dead.add(nid)
        stack.extend((k, d) for k in kids.get(nid, ()))
    return dead


def empty_figure(message: str = "Run a search to grow a tree") -> go.Figure:
    """A blank plot carrying a short (plain, escaped) message."""
    fig = go.Figure()
    fig.update_layout(
        height=620, xaxis={"visible": False}, yaxis={"visible": False}, plot_bgcolor="white",
        annotations=[{"text": _esc(message), "showarrow": False, "font": {"size": 16, "color": "#888"}}],
    )
    return fig
