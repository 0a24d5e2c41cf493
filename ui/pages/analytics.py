"""Analytics page: value and visits by thought factor and depth, and a replay slider over search iterations."""
from __future__ import annotations

import gradio as gr

from ..analytics import analytics_figure, max_iteration
from ..figure import FigureOptions, empty_figure, tree_figure
from ..service import Explorer
from ..wiring import Shared, guarded


def build_page(engine: Explorer, shared: Shared) -> None:
    refresh = gr.Button("Refresh for the open session", size="sm", elem_id="analytics-refresh")
    stats = gr.Plot(empty_figure("Open a session, then refresh"), show_label=False, elem_id="analytics-plot")
    gr.Markdown("### Replay the search")
    step = gr.Slider(0, 1, value=1, step=1, label="search iteration", elem_id="replay-slider")
    replay = gr.Plot(empty_figure("Open a session, then refresh"), show_label=False, elem_id="replay-plot")

    @guarded
    def load(session_id, color_by):
        if not session_id:
            raise gr.Error("no session is open: run a search or open a session first")
        tree = engine.tree(session_id)
        last = max(max_iteration(tree), 1)
        fig = tree_figure(tree, FigureOptions(color_by=color_by or "value", uirevision=f"replay-{session_id}"))
        return analytics_figure(tree), gr.Slider(0, last, value=last, step=1), fig

    @guarded
    def show(session_id, iteration, color_by):
        if not session_id:
            return empty_figure()
        tree = engine.tree(session_id)
        opts = FigureOptions(color_by=color_by or "value", max_iteration=int(iteration), show_best=False,
                             uirevision=f"replay-{session_id}")
        return tree_figure(tree, opts)

    refresh.click(load, [shared.session, shared.color_by], [stats, step, replay], api_visibility="undocumented")
    step.release(show, [shared.session, step, shared.color_by], [replay], api_visibility="undocumented")
