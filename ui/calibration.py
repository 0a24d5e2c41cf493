"""The calibration chart: PRM score against rollout value and against human labels, binned, with counts (plotly, no
Gradio). Hover text is built here and escaped (the PRM's name comes from a folder a user picked)."""
from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import plotly.graph_objects as go

from .services.review import Bin

COLOURS = {"rollout value": "#1f77b4", "human label": "#d62728"}


def calibration_figure(bins: Mapping[str, Sequence[Bin]], prm_name: str = "") -> go.Figure:
    """One line per target (mean target per score bin, marker size by count) over the diagonal of a calibrated PRM."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="calibrated", hoverinfo="skip",
                             line={"color": "#999", "dash": "dot"}))
    for name, rows in bins.items():
        full = [b for b in rows if b.count]
        if not full:
            continue
        biggest = max(b.count for b in full)
        hover = [html.escape(f"{name}: PRM {b.lo:.1f}–{b.hi:.1f}, mean PRM {b.mean_score:.2f}, "
                             f"mean {name} {b.mean_target:.2f}, {b.count} step{'s' * (b.count != 1)}")
                 for b in full]
        fig.add_trace(go.Scatter(
            x=[b.mean_score for b in full], y=[b.mean_target for b in full], mode="lines+markers+text",
            name=html.escape(f"{name} ({sum(b.count for b in full)})"), text=[str(b.count) for b in full],
            textposition="top center", hovertext=hover, hoverinfo="text",
            marker={"size": [8 + 16 * b.count / biggest for b in full], "color": COLOURS.get(name)},
            line={"color": COLOURS.get(name)},
        ))
    title = "PRM calibration" + (f" — {prm_name}" if prm_name else "")
    fig.update_layout(title={"text": html.escape(title), "font": {"size": 14}}, height=380,
                      margin={"l": 50, "r": 20, "t": 40, "b": 40},
                      xaxis={"title": {"text": "PRM score (bin mean)"}, "range": [-0.02, 1.02]},
                      yaxis={"title": {"text": "target (bin mean)"}, "range": [-0.05, 1.18]},
                      legend={"orientation": "h", "y": -0.2})
    return fig
