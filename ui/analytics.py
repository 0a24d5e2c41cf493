"""Search analytics as plain figures: value and visits by thought factor and by depth (no Gradio inside)."""
from __future__ import annotations

import html
from collections import defaultdict

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from reasoning.tree import ROOT, ReasoningTree


def factor_depth_stats(tree: ReasoningTree) -> dict[tuple[str, int], dict[str, float]]:
    """`{(factor, depth): {"nodes", "visits", "value"}}` over the live, scored steps; value is the mean PRM value."""
    acc: dict[tuple[str, int], dict[str, float]] = defaultdict(lambda: {"nodes": 0, "visits": 0, "value_sum": 0.0,
                                                                         "scored": 0})
    with tree.lock:
        for nid, a in tree.graph.nodes(data=True):
            if nid == ROOT or a["pruned"]:
                continue
            cell = acc[(str(a["factor"]), int(a["depth"]))]
            cell["nodes"] += 1
            cell["visits"] += a["visits"]
            if a["value"] is not None:
                cell["value_sum"] += float(a["value"])
                cell["scored"] += 1
    return {k: {"nodes": c["nodes"], "visits": c["visits"],
                "value": c["value_sum"] / c["scored"] if c["scored"] else float("nan")} for k, c in acc.items()}


def analytics_figure(tree: ReasoningTree) -> go.Figure:
    """Four panels: mean value and total visits by factor, mean value by factor x depth, nodes by depth."""
    stats = factor_depth_stats(tree)
    factors = sorted({f for f, _ in stats})
    depths = sorted({d for _, d in stats})
    fig = make_subplots(rows=2, cols=2, subplot_titles=("mean value by factor", "visits by factor",
                                                        "mean value by factor and depth", "nodes by depth"))
    by_factor = {f: [s for (g, _), s in stats.items() if g == f] for f in factors}
    labels = [html.escape(f) for f in factors]
    fig.add_trace(go.Bar(x=labels, y=[_mean_value(by_factor[f]) for f in factors], name="value",
                         marker_color="#31688e"), row=1, col=1)
    fig.add_trace(go.Bar(x=labels, y=[sum(s["visits"] for s in by_factor[f]) for f in factors], name="visits",
                         marker_color="#35b779"), row=1, col=2)
    z = [[_nan_none(stats.get((f, d), {}).get("value")) for d in depths] for f in factors]
    fig.add_trace(go.Heatmap(z=z, x=depths, y=labels, colorscale="Viridis", zmin=0, zmax=1, showscale=True,
                             colorbar={"len": 0.45, "y": 0.22, "title": {"text": "value"}}), row=2, col=1)
    fig.add_trace(go.Bar(x=depths, y=[sum(s["nodes"] for (g, d), s in stats.items() if d == dd) for dd in depths],
                         name="nodes", marker_color="#8a8a8a"), row=2, col=2)
    fig.update_layout(height=640, showlegend=False, margin={"l": 40, "r": 20, "t": 40, "b": 30},
                      plot_bgcolor="white")
    fig.update_xaxes(title_text="depth", row=2, col=1)
    fig.update_xaxes(title_text="depth", row=2, col=2)
    return fig


def _mean_value(cells: list[dict[str, float]]) -> float | None:
    weighted = [(c["value"], c["nodes"]) for c in cells if c["value"] == c["value"]]  # skip NaN
    total = sum(n for _, n in weighted)
    return sum(v * n for v, n in weighted) / total if total else None


def _nan_none(x: float | None) -> float | None:
    return None if x is None or x != x else x


def max_iteration(tree: ReasoningTree) -> int:
    with tree.lock:
        return max((int(a["iteration"]) for _, a in tree.graph.nodes(data=True)), default=0)
