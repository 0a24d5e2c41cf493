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

from .layout import children_by_creation, fit_columns, fold, subtree_sizes, tidy_layout
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
MATCH_COLOR = "#ff9800"
FOLD_COLOR = "#9e9e9e"
# The page's drawing of a big tree (FigureOptions.max_columns): each drawn node and each fold marker has a column of
# at least COLUMN_PX pixels and a row of ROW_PX, and no marker is wider than NODE_MAX_PX, so no two drawn nodes are
# ever closer than a marker; the figure says how wide it must be (`layout.meta.min_width`, ui/static/app.js).
COLUMN_PX, ROW_PX, NODE_MAX_PX = 20, 36, 14
LABEL_PX = 5.6  # the width of one character of a fold marker's `+N` label (9 px font)
FOLD_COLUMNS = 1.5  # the columns a fold marker takes, as the page's budget counts them (a `+999` label)


@dataclass(frozen=True)
class FigureOptions:
    color_by: str = "value"
    selected: str | None = None
    max_iteration: int | None = None  # replay: only nodes created at or before this search iteration
    show_best: bool = True
    height: int = 620
    uirevision: str = "tree"
    max_nodes: int | None = 800  # past this many nodes the least visited subtrees are folded into a `+N` count
    focus: str | None = None  # show only this node's subtree (in full, unless max_columns folds it)
    max_columns: int | None = None  # the page: at most this many leaf columns; the rest folded into `+N` markers
    max_rows: int | None = None  # with max_columns: levels drawn below the focus before folding
    opened: tuple[str, ...] = ()  # fold markers the user clicked: these nodes' children are drawn
    find: str = ""  # highlight the drawn steps whose text contains this (any case), and the folds that hold some

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
            labels: Mapping[str, str], ratings: Mapping[str, float], autos: Mapping[str, AutoMark]) -> _Points:
    nodes = tree.graph.nodes
    golds = gold_marks(tree, order)  # the ticks and crosses of finished paths (cached, bounded per redraw)
    base = 9.0 if len(order) <= 300 else 6.0 if len(order) <= 1500 else 4.0  # big trees: smaller markers
    cap = NODE_MAX_PX if opt.max_columns else 30.0
    pts = _Points([], [], [], [], [], [])
    for n in order:
        a = nodes[n]
        x, depth = pos[n]
        q = a["value_sum"] / a["visits"] if a["visits"] else 0.0
        pts.xs.append(x)
        pts.ys.append(-depth)
        pts.colors.append(_node_color(n, a, q, opt, dead, ratings, autos))
        pts.sizes.append(min(base + 3.0 * a["visits"] ** 0.5, cap))
        pts.syms.append(ROOT_SYMBOL if n == ROOT else factor_style(a["factor"] or a["origin"])[0])
        pts.hover.append(_node_hover(n, a, q, labels, golds.get(n, ""), autos.get(n)))
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
    rating classes when colour is by human label. The page's figure has no group titles: its legend is one line."""
    out = []
    titled = not opt.max_columns
    for name in factors:
        sym, color = factor_style(name)
        out.append(scatter(x=[None], y=[None], mode="markers", name=_esc(name), showlegend=True,
                           legendgroup="factor" if titled else None,
                           legendgrouptitle={"text": "factor"} if not out and titled else None,
                           marker={"symbol": sym, "size": 10, "color": color if opt.color_by == "factor" else "#555"},
                           hoverinfo="skip"))
    if opt.color_by == "human":
        for i, (name, color) in enumerate(HUMAN_COLORS.items()):
            out.append(scatter(x=[None], y=[None], mode="markers", name=name, showlegend=True,
                               legendgroup="human" if titled else None,
                               legendgrouptitle={"text": "human label"} if i == 0 and titled else None,
                               marker={"symbol": "circle", "size": 10, "color": color}, hoverinfo="skip"))
    return out


@dataclass
class _Drawn:
    """What a figure draws of its tree: the children lists cut to the drawn nodes, the fold markers (`+node`: the
    hidden children of that node, with how many nodes they hold) and every position."""

    root: str
    kids: dict[str, list[str]]
    folds: dict[str, int]  # {drawn node: hidden nodes below it}
    pos: dict[str, tuple[float, int]]
    order: list[str]  # drawn nodes, in creation order


def fold_id(node: str) -> str:
    """The id of the fold marker under `node` (the page's click hook tells it from a node by its `+`)."""
    return "+" + node


def _fold_label(count: int) -> str:
    return f"+{count}"


def _drawn(tree: ReasoningTree, opt: FigureOptions, path: list[str]) -> tuple[_Drawn, set[str]]:
    """The drawn part of the tree (and the pruned nodes): the replay's nodes, the focus's subtree, folded to fit."""
    nodes = tree.graph.nodes
    keep = _visible_nodes(tree, opt.max_iteration)
    kids = children_by_creation(tree.graph)
    if keep is not None:
        kids = {p: [c for c in cs if c in keep] for p, cs in kids.items() if p in keep}
    dead = _pruned_below(kids, nodes)
    root = opt.focus if opt.focus and opt.focus in nodes else ROOT
    if root != ROOT:
        kids = _subtree(kids, root)
    wanted = [*path, opt.selected or root]
    shown: set[str] | None = None
    if opt.max_columns:
        shown = fit_columns(kids, root, opt.max_columns, rows=opt.max_rows, keep=wanted, opened=opt.opened,
                            key=lambda n: (-float(nodes[n]["visits"]), -float(nodes[n]["value"] or 0.0), n),
                            fold_width=FOLD_COLUMNS)
    elif opt.max_nodes and len(nodes) > opt.max_nodes and root == ROOT:
        shown = shown_nodes(kids, nodes, opt.max_nodes, wanted)
    folds: dict[str, int] = {}
    widths: dict[str, float] = {}
    if shown is not None:
        full = kids
        kids, hidden = fold(full, shown, root)
        size = subtree_sizes(full, root) if hidden else {}
        for p, cs in hidden.items():
            folds[p] = sum(size.get(c, 1) for c in cs)
            kids[p] = [*kids.get(p, []), fold_id(p)]
            widths[fold_id(p)] = max(1.0, (len(_fold_label(folds[p])) * LABEL_PX + 6) / COLUMN_PX)
    pos = tidy_layout(kids, root, widths)
    order = sorted((n for n in pos if n in nodes), key=lambda n: nodes[n]["created"])
    return _Drawn(root, kids, folds, pos, order), dead


def find_matches(tree: ReasoningTree, text: str, under: str = ROOT) -> list[str]:
    """The steps under `under` whose text contains `text` (any case), in creation order; none for blank text."""
    needle = text.strip().lower()
    if not needle:
        return []
    nodes = tree.graph.nodes
    with tree.lock:
        hits = [n for n, a in nodes.items() if needle in str(a["text"] or "").lower() and n != ROOT
                and (under == ROOT or n == under or n.startswith(under + "."))]
    return sorted(hits, key=lambda n: nodes[n]["created"])


def _fold_traces(scatter, d: _Drawn, opt: FigureOptions, matched: Mapping[str, int]) -> list[dict]:
    """The fold markers (clickable: the page draws that node's children) and the dotted edges up to them."""
    if not d.folds:
        return []
    ids = list(d.folds)
    xs = [d.pos[fold_id(p)][0] for p in ids]
    ys = [-d.pos[fold_id(p)][1] for p in ids]
    ex: list[float | None] = []
    ey: list[float | None] = []
    for p, x, y in zip(ids, xs, ys, strict=True):
        px, pd = d.pos[p]
        ex.extend((px, x, None))
        ey.extend((-pd - EDGE_GAP, y + EDGE_GAP, None))
    hover = [f"+{d.folds[p]} nodes folded under {_esc(p)}: click to draw its children"
             + (f"<br>{matched[p]} of them match the search" if matched.get(p) else "") for p in ids]
    colors = [MATCH_COLOR if matched.get(p) else FOLD_COLOR for p in ids]
    return [
        scatter(x=ex, y=ey, mode="lines", name="fold edges", showlegend=False, hoverinfo="skip",
                line={"color": "#cfcfcf", "width": 1, "dash": "dot"}),
        scatter(x=xs, y=ys, mode="markers+text", name="folded", showlegend=False, customdata=[fold_id(p) for p in ids],
                text=[_fold_label(d.folds[p]) for p in ids], textposition="bottom center",
                textfont={"size": 9, "color": "#555"}, hovertext=hover, hoverinfo="text",
                marker={"symbol": "triangle-down", "size": 11, "color": colors, "line": {"width": 0.5, "color": "#555"}}),
    ]


def _match_folds(matches: Iterable[str], d: _Drawn, nodes) -> dict[str, int]:
    """`{drawn node: matches among the nodes folded under it}`."""
    out: dict[str, int] = {}
    for n in matches:
        m = n
        while m is not None and m not in d.pos:
            m = nodes[m]["parent"]
        if m is not None and m != n:
            out[m] = out.get(m, 0) + 1
    return out


def _title(tree: ReasoningTree, d: _Drawn, opt: FigureOptions, matches: list[str]) -> str:
    nodes = tree.graph.nodes
    parts = []
    total = len(nodes)
    if d.root != ROOT:
        total = len(_subtree_ids(d, nodes))
        parts.append("whole tree › " + " › ".join(tree.path(d.root)[1:]) + f" ({total} nodes)")
    if d.folds:
        parts.append(f"{len(d.order)} of {total} nodes drawn; click a ▼+N to unfold it")
    if opt.find.strip():
        drawn = sum(n in d.pos for n in matches)
        parts.append(f"{len(matches)} steps match {opt.find.strip()[:40]!r} ({drawn} drawn)")
    return " · ".join(parts)


def _subtree_ids(d: _Drawn, nodes) -> list[str]:
    return [n for n in nodes if n == d.root or n.startswith(d.root + ".")]


def _geometry(d: _Drawn, opt: FigureOptions, title: str) -> dict:
    """Size and ranges: the page's figure is as tall and (at least) as wide as its columns and rows need."""
    top = 40 if title else 30
    if not opt.max_columns:
        return {"height": opt.height, "margin": {"l": 10, "r": 10, "t": top, "b": 10}}
    span = max((x for x, _ in d.pos.values()), default=0.0) + 1.0
    depth = max((y for _, y in d.pos.values()), default=0)
    height = max(300, int((depth + 1.3) * ROW_PX) + top + 16)
    return {"height": height, "margin": {"l": 10, "r": 10, "t": top, "b": 16},
            "xaxis": {"visible": False, "range": [-0.6, span - 0.4], "fixedrange": False},
            "yaxis": {"visible": False, "range": [-depth - 0.8, 0.5]},
            "meta": {"min_width": int(span * COLUMN_PX) + 110}}


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
        path = best_path if best_path is not None else (tree.best_path() if opt.show_best else [])
        d, dead = _drawn(tree, opt, path)
        pos, order = d.pos, d.order
        pts = _points(order, pos, tree, opt, dead, labels, ratings or {}, autos or {})
        ex, ey, ehover = _edges(order, pos, nodes)
        factors = list(dict.fromkeys(nodes[n]["factor"] for n in order if nodes[n]["factor"]))
    matches = find_matches(tree, opt.find, d.root)
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
    shown_matches = [n for n in matches if n in pos]
    if shown_matches:  # rings under the nodes (no hover: a click still picks the node)
        traces.append(scatter(x=[pos[n][0] for n in shown_matches], y=[-pos[n][1] for n in shown_matches],
                              mode="markers", name="matches", showlegend=False, hoverinfo="skip",
                              marker={"symbol": "circle", "size": NODE_MAX_PX + 9, "color": "rgba(255,152,0,0.35)",
                                      "line": {"width": 2, "color": MATCH_COLOR}}))
    traces.append(scatter(x=pts.xs, y=pts.ys, mode="markers", name="nodes", showlegend=False, customdata=order,
                          hovertext=pts.hover, hoverinfo="text", marker=_marker(pts, opt)))
    traces.extend(_fold_traces(scatter, d, opt, _match_folds(matches, d, nodes)))
    traces.extend(_legend(scatter, factors, opt))
    title = _title(tree, d, opt, matches)
    layout = dict(
        hovermode="closest", dragmode="pan", uirevision=opt.uirevision, plot_bgcolor="white", paper_bgcolor="white",
        legend={"orientation": "h", "y": 1.02, "x": 0, "yanchor": "bottom"},
        title={"text": _esc(title), "font": {"size": 12}, "x": 0.99, "xanchor": "right"} if title else None,
        xaxis={"visible": False}, yaxis={"visible": False}, hoverlabel={"align": "left"},
    )
    layout.update(_geometry(d, opt, title))
    layout["meta"] = {**layout.get("meta", {}), "color_by": opt.color_by}  # the page's label patches check it
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
