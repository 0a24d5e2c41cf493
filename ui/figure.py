"""Reasoning tree -> plotly figure: one edge trace, one node trace, the best path, and a legend of factor symbols.

A plain function with no Gradio inside. Every piece of model or user text is HTML-escaped before it reaches
plotly's hover labels (plotly renders a subset of HTML there).
"""
from __future__ import annotations

import html
import textwrap
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

import plotly.graph_objects as go

from reasoning.factors import load_catalog
from reasoning.tree import ROOT, ReasoningTree, samples

from .layout import children_by_creation, tidy_layout
from .services.views import AutoMark, gold_marks

EDGE_GAP = 0.1  # vertical gap (in depth units) between an edge's ends and its nodes
WEBGL_THRESHOLD = 1000  # past this many nodes, traces switch to WebGL (Scattergl)
COLOR_BY = ("value", "score", "q", "factor", "human", "auto")
NUMERIC_COLOR_BY = ("value", "score", "q", "auto")
COLORBAR_TITLES = {"auto": "auto label<br>(rollout value)"}
# Symbols that both SVG and WebGL scatter draw.
SYMBOLS = (
    "circle", "square", "diamond", "triangle-up", "triangle-down", "star", "hexagon", "pentagon",
    "cross", "x", "triangle-left", "triangle-right",
)
ROOT_SYMBOL = "circle-open"
# Factors outside the default catalog (imported traces, custom catalogs) get a symbol and colour from a hash of
# their name: the same name looks the same in every tree.
EXTRA_COLORS = ("#e377c2", "#7f7f7f", "#bcbd22", "#aec7e8", "#ffbb78", "#98df8a", "#c5b0d5", "#c49c94")
HUMAN_COLORS = {"good (+1)": "#2e7d32", "neutral (0)": "#f9a825", "bad (-1)": "#c62828", "unlabeled": "#d4d4d4"}
PRUNED_COLOR = "#8a8a8a"
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
    max_nodes: int | None = 800  # past this many nodes the least visited subtrees are folded into a `+N` count
    focus: str | None = None  # show only this node's subtree (in full)

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


@lru_cache(maxsize=1)
def _catalog_styles() -> dict[str, tuple[str, str]]:
    return {f.name: (f.symbol, f.color) for f in load_catalog() if f.symbol and f.color}


def factor_style(name: str) -> tuple[str, str]:
    """The (symbol, colour) of a factor: the catalog's for its factors, else a stable pick from the name's hash."""
    style = _catalog_styles().get(name)
    if style:
        return style
    h = zlib.crc32(name.encode("utf-8"))
    return SYMBOLS[h % len(SYMBOLS)], EXTRA_COLORS[h % len(EXTRA_COLORS)]


def factor_symbols(factors: Iterable[str | None]) -> dict[str, str]:
    """The symbol of each factor named (in first-seen order); None (the root) gets no entry. Stable across trees."""
    out: dict[str, str] = {}
    for f in factors:
        if f is not None and f not in out:
            out[f] = factor_style(f)[0]
    return out


def human_class(rating: float | None) -> str:
    """The colour class of a node's human rating (the mean over annotators), for colour-by-human."""
    if rating is None:
        return "unlabeled"
    return "good (+1)" if rating > 0 else "bad (-1)" if rating < 0 else "neutral (0)"


def _fmt(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _node_hover(nid: str, a: Mapping, q: float, labels: Mapping[str, str], gold: str = "",
                auto: AutoMark | None = None) -> str:
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
    if why := (a.get("meta") or {}).get("invalid"):  # the domain's flag (Countdown's bookkeeping, arithmetic)
        parts.append("⚠ invalid: " + escape_hover(why, max_chars=160))
    if a["terminal"]:
        parts.append("answer: " + escape_hover(a["answer"], max_chars=80) + (f" · {_esc(gold)}" if gold else ""))
    if nid in labels:
        parts.append("human: " + _esc(labels[nid]))
    if auto is not None:
        parts.append("auto: " + _esc(auto.text))
    return "<br>".join(parts)


def _visible_nodes(tree: ReasoningTree, max_iteration: int | None) -> set[str] | None:
    if max_iteration is None:
        return None
    nodes = tree.graph.nodes
    return {n for n, a in nodes.items() if n == ROOT or a["iteration"] <= max_iteration}


def _color_value(a: Mapping, q: float, color_by: str, live: bool, auto: AutoMark | None = None) -> float:
    if not live:
        return PRUNED
    if color_by == "auto":
        v = auto.value if auto is not None else None
    else:
        v = q if color_by == "q" and a["visits"] else a[color_by if color_by != "q" else "value"]
    return UNSCORED if v is None else min(max(float(v), 0.0), 1.0)


def shown_nodes(kids: Mapping[str, list[str]], nodes, limit: int, keep: Iterable[str]) -> set[str]:
    """Which nodes a large tree shows: the nodes on the paths to `keep` (the best path, the selection), then the
    most visited (then best valued) children first, until `limit`. The rest is folded into its shown ancestor,
    which carries a `+N` count; focusing on a node shows its subtree in full."""
    import heapq

    shown = {ROOT}
    for n in keep:
        while n is not None and n in nodes and n not in shown:
            shown.add(n)
            n = nodes[n]["parent"]
    heap: list[tuple[float, float, str]] = []

    def push(parent: str) -> None:
        for c in kids.get(parent, ()):
            a = nodes[c]
            heapq.heappush(heap, (-float(a["visits"]), -float(a["value"] or 0.0), c))

    for n in list(shown):
        push(n)
    while heap and len(shown) < limit:
        _, _, c = heapq.heappop(heap)
        if c not in shown:
            shown.add(c)
            push(c)
    return shown


def _fold(kids: Mapping[str, list[str]], shown: set[str]) -> tuple[dict[str, list[str]], dict[str, int]]:
    """The children lists cut down to the shown nodes, and `{shown node: hidden descendants}`."""
    hidden: dict[str, int] = {}
    stack = [ROOT]
    order: list[str] = []
    while stack:  # pre-order, then sizes bottom-up
        n = stack.pop()
        order.append(n)
        stack.extend(kids.get(n, ()))
    size = {}
    for n in reversed(order):
        size[n] = 1 + sum(size[c] for c in kids.get(n, ()))
    for n in shown:
        h = sum(size[c] for c in kids.get(n, ()) if c not in shown)
        if h:
            hidden[n] = h
    cut = {p: [c for c in cs if c in shown] for p, cs in kids.items() if p in shown}
    return cut, hidden


def _subtree(kids: Mapping[str, list[str]], root: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    stack = [root]
    while stack:
        n = stack.pop()
        if n in kids:
            out[n] = kids[n]
            stack.extend(kids[n])
    return out


@dataclass
class _Points:
    """The per-node arrays of the node trace."""

    xs: list[float]
    ys: list[float]
    colors: list
    sizes: list[float]
    syms: list[str]
    hover: list[str]


def _node_color(n: str, a: Mapping, q: float, opt: FigureOptions, dead: set[str],
                ratings: Mapping[str, float], autos: Mapping[str, AutoMark]) -> float | str:
    if opt.color_by == "factor":
        return PRUNED_COLOR if n in dead else "#ffffff" if n == ROOT else factor_style(a["factor"] or a["origin"])[1]
    if opt.color_by == "human":
        return PRUNED_COLOR if n in dead else HUMAN_COLORS[human_class(ratings.get(n))]
    return _color_value(a, q, opt.color_by, n not in dead, autos.get(n))


def _points(order: list[str], pos, tree: ReasoningTree, opt: FigureOptions, dead: set[str],
            labels: Mapping[str, str], ratings: Mapping[str, float], hidden: Mapping[str, int],
            autos: Mapping[str, AutoMark]) -> _Points:
    nodes = tree.graph.nodes
    golds = gold_marks(tree, order)  # the ticks and crosses of finished paths (cached, bounded per redraw)
    base = 9.0 if len(order) <= 300 else 6.0 if len(order) <= 1500 else 4.0  # big trees: smaller markers
    pts = _Points([], [], [], [], [], [])
    for n in order:
        a = nodes[n]
        x, depth = pos[n]
        q = a["value_sum"] / a["visits"] if a["visits"] else 0.0
        pts.xs.append(x)
        pts.ys.append(-depth)
        pts.colors.append(_node_color(n, a, q, opt, dead, ratings, autos))
        pts.sizes.append(min(base + 3.0 * a["visits"] ** 0.5, 30.0))
        pts.syms.append(ROOT_SYMBOL if n == ROOT else factor_style(a["factor"] or a["origin"])[0])
        h = _node_hover(n, a, q, labels, golds.get(n, ""), autos.get(n))
        pts.hover.append(h + (f"<br>+{hidden[n]} nodes folded below (Focus here shows them)" if n in hidden else ""))
    return pts


def selection_ring(x: float, y: float, size: float) -> dict:
    """The selection highlight: a ring of fixed pixel size around the selected node, drawn as a layout shape.
    Moving it is a cheap `Plotly.relayout` of one shape (ui/static/app.js draws the same ring when a click moves
    the selection), where per-point marker lines had to redraw every node."""
    r = size / 2 + 4
    return {"type": "circle", "name": "selected", "xref": "x", "yref": "y", "xsizemode": "pixel",
            "ysizemode": "pixel", "xanchor": x, "yanchor": y, "x0": -r, "x1": r, "y0": -r, "y1": r,
            "line": {"color": SELECTED_COLOR, "width": 3}, "layer": "above"}


def _edges(order: list[str], pos, nodes) -> tuple[list, list, list[str]]:
    ex: list[float | None] = []
    ey: list[float | None] = []
    ehover: list[str] = []
    for n in order:
        a = nodes[n]
        p = a["parent"]
        if p is not None and p in pos:
            # Edges fan out from just below the parent and end just above the child: they never touch a
            # node, so hovering or clicking a node never picks its edge instead.
            x, depth = pos[n]
            px, pd = pos[p]
            ex.extend((px, (px + x) / 2, x, None))
            ey.extend((-pd - EDGE_GAP, -(pd + depth) / 2, -depth + EDGE_GAP, None))
            ehover.append(f"{_esc(p)} → {_esc(n)}<br>factor: {_esc(str(a['factor']))}")
    return ex, ey, ehover


def _marker(pts: _Points, opt: FigureOptions) -> dict:
    marker = {"color": pts.colors, "size": pts.sizes, "symbol": pts.syms, "line": {"width": 0.5, "color": "#333333"}}
    if opt.color_by in NUMERIC_COLOR_BY:
        marker.update(colorscale=COLORSCALE, cmin=CMIN, cmax=CMAX, colorbar={
            "title": {"text": COLORBAR_TITLES.get(opt.color_by, opt.color_by)}, "thickness": 14, "len": 0.8,
            "tickvals": [UNSCORED, PRUNED, 0, 0.25, 0.5, 0.75, 1.0],
            "ticktext": ["unscored", "pruned", "0", "0.25", "0.5", "0.75", "1"],
        })
    return marker


def _legend(scatter, factors: Iterable[str], opt: FigureOptions) -> list[dict]:
    """Legend-only entries (empty traces): one per factor symbol (in its colour when colour is by factor), and the
    rating classes when colour is by human label."""
    out = []
    for name in factors:
        sym, color = factor_style(name)
        out.append(scatter(x=[None], y=[None], mode="markers", name=_esc(name), showlegend=True,
                           legendgroup="factor", legendgrouptitle={"text": "factor"} if not out else None,
                           marker={"symbol": sym, "size": 10, "color": color if opt.color_by == "factor" else "#555"},
                           hoverinfo="skip"))
    if opt.color_by == "human":
        for i, (name, color) in enumerate(HUMAN_COLORS.items()):
            out.append(scatter(x=[None], y=[None], mode="markers", name=name, showlegend=True, legendgroup="human",
                               legendgrouptitle={"text": "human label"} if i == 0 else None,
                               marker={"symbol": "circle", "size": 10, "color": color}, hoverinfo="skip"))
    return out


def tree_figure(
    tree: ReasoningTree,
    options: FigureOptions | None = None,
    *,
    labels: Mapping[str, str] | None = None,
    ratings: Mapping[str, float] | None = None,
    best_path: list[str] | None = None,
    validate: bool = False,
    autos: Mapping[str, AutoMark] | None = None,
) -> go.Figure:
    """The figure of a reasoning tree. `labels` maps node ids to a short human-label summary for the hover,
    `ratings` to the mean human rating (colour by human label), `autos` to the automatic labels (hover, and
    colour by auto label; views.auto_marks builds it from the stored ones)."""
    opt = options or FigureOptions()
    labels = labels or {}
    nodes = tree.graph.nodes
    with tree.lock:
        keep = _visible_nodes(tree, opt.max_iteration)
        kids = children_by_creation(tree.graph)
        if keep is not None:
            kids = {p: [c for c in cs if c in keep] for p, cs in kids.items() if p in keep}
        dead = _pruned_below(kids, nodes)
        path = best_path if best_path is not None else (tree.best_path() if opt.show_best else [])
        root = opt.focus if opt.focus and opt.focus in nodes else ROOT
        if root != ROOT:
            kids = _subtree(kids, root)
        hidden: dict[str, int] = {}
        if opt.max_nodes and len(nodes) > opt.max_nodes and root == ROOT:
            kids, hidden = _fold(kids, shown_nodes(kids, nodes, opt.max_nodes, [*path, opt.selected or ROOT]))
        pos = tidy_layout(kids, root)
        order = sorted(pos, key=lambda n: nodes[n]["created"])
        pts = _points(order, pos, tree, opt, dead, labels, ratings or {}, hidden, autos or {})
        ex, ey, ehover = _edges(order, pos, nodes)
        factors = list(dict.fromkeys(nodes[n]["factor"] for n in order if nodes[n]["factor"]))
    kind = "scattergl" if len(order) > WEBGL_THRESHOLD else "scatter"
    scatter = lambda **kw: {"type": kind, **kw}  # noqa: E731
    edge_text, edge_info = _edge_hover_arrays(ehover)
    traces = [
        # Lines only: plotly hovers the midpoints without markers, and 3 invisible markers per edge were most of
        # the SVG elements of a large tree (and of its drawing time).
        scatter(
            x=ex, y=ey, mode="lines", name="edges", showlegend=False, line={"color": "#b0b0b0", "width": 1},
            hovertext=edge_text, hoverinfo=edge_info,
        ),
    ]
    best = [n for n in path if n in pos]
    if opt.show_best and len(best) > 1:
        traces.append(scatter(
            x=[pos[n][0] for n in best], y=[-pos[n][1] for n in best], mode="lines", name="best path",
            line={"color": BEST_COLOR, "width": 4}, hoverinfo="skip",
        ))
    traces.append(scatter(x=pts.xs, y=pts.ys, mode="markers", name="nodes", showlegend=False, customdata=order,
                          hovertext=pts.hover, hoverinfo="text", marker=_marker(pts, opt)))
    if hidden:  # the `+N` counts of folded subtrees, under their shown ancestor
        folded = [n for n in order if n in hidden]
        traces.append(scatter(x=[pos[n][0] for n in folded], y=[-pos[n][1] - 0.28 for n in folded], mode="text",
                              name="folded", showlegend=False, text=[f"+{hidden[n]}" for n in folded],
                              textfont={"size": 9, "color": "#666"}, hoverinfo="skip"))
    traces.extend(_legend(scatter, factors, opt))
    title = (f"{len(order)} of {len(nodes)} nodes shown: the most visited; small subtrees folded (+N)" if hidden
             else f"subtree of {root} ({len(order)} nodes)" if root != ROOT else "")
    layout = dict(
        height=opt.height, margin={"l": 10, "r": 10, "t": 40 if title else 30, "b": 10}, hovermode="closest",
        dragmode="pan", uirevision=opt.uirevision, plot_bgcolor="white", paper_bgcolor="white",
        legend={"orientation": "h", "y": 1.02, "x": 0, "yanchor": "bottom"},
        title={"text": _esc(title), "font": {"size": 12}, "x": 0.99, "xanchor": "right"} if title else None,
        xaxis={"visible": False}, yaxis={"visible": False},
        hoverlabel={"align": "left"}, meta={"color_by": opt.color_by},  # the page's label patches check it
    )
    if opt.selected in pos:
        i = order.index(opt.selected)
        layout["shapes"] = [selection_ring(pts.xs[i], pts.ys[i], pts.sizes[i])]
    # The spec is built here and checked by the tests with validation on; skipping plotly's per-element
    # validation keeps a 20,000-node figure inside its time budget.
    return go.Figure({"data": traces, "layout": layout}, _validate=validate)


def _edge_hover_arrays(ehover: list[str]) -> tuple[list[str], list[str]]:
    """Per-point hover for the edge trace: only each edge's midpoint carries the factor label."""
    text: list[str] = []
    info: list[str] = []
    for h in ehover:
        text.extend(("", h, "", ""))
        info.extend(("skip", "text", "skip", "skip"))
    return text, info


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
