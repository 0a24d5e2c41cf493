"""Sessions page: list, filter, open, rename, delete (recoverable) and restore sessions; two runs side by side."""
from __future__ import annotations

import gradio as gr

from ..feedback import reported
from ..figure import empty_figure
from ..service import SESSION_HEADERS, Explorer
from ..wiring import Shared, guarded, require, who
from .explore import plot_for


def build_page(engine: Explorer, shared: Shared) -> None:
    with gr.Row():
        query = gr.Textbox(label="filter (name or problem text)", elem_id="session-filter", scale=3)
        deleted = gr.Checkbox(label="show deleted", elem_id="show-deleted")
        refresh = gr.Button("Refresh", size="sm", elem_id="sessions-refresh")
    table = gr.Dataframe(headers=SESSION_HEADERS,
                         datatype=["number", "str", "str", "number", "number", "str", "str", "str"],
                         interactive=False, wrap=True, elem_id="sessions-table", max_height=360)
    with gr.Row():
        # no precision: Gradio would round 1.5 to session 2; the server refuses what is not a session id
        sid = gr.Number(None, label="session id", elem_id="session-pick", placeholder="click a row or type an id")
        name = gr.Textbox(label="new name", elem_id="session-name", scale=2)
    with gr.Row():
        open_btn = gr.Button("Open in Explore", variant="primary", elem_id="session-open", size="sm")
        rename = gr.Button("Rename", elem_id="session-rename", size="sm")
        delete = gr.Button("Delete", variant="stop", elem_id="session-delete", size="sm")
        restore = gr.Button("Restore", elem_id="session-restore", size="sm")
    message = gr.Textbox(label="result", interactive=False, elem_id="sessions-message", lines=1)
    gr.Markdown("### Two runs side by side")
    with gr.Row():
        left = gr.Number(None, label="left session", precision=0, elem_id="compare-left")
        right = gr.Number(None, label="right session", precision=0, elem_id="compare-right")
        compare = gr.Button("Compare", elem_id="compare", size="sm")
    with gr.Row():
        plot_l = gr.Plot(empty_figure("left run"), show_label=False, elem_id="compare-left-plot")
        plot_r = gr.Plot(empty_figure("right run"), show_label=False, elem_id="compare-right-plot")

    listing = guarded(lambda q, d: engine.sessions(q, bool(d)))
    for trigger in (refresh.click, query.submit, deleted.change):
        trigger(listing, [query, deleted], [table], api_visibility="undocumented")
    shared.tabs.select(listing, [query, deleted], [table], api_visibility="undocumented")

    def pick(evt: gr.SelectData, rows):
        row = evt.index[0] if isinstance(evt.index, list | tuple) else evt.index
        data = rows.values.tolist() if hasattr(rows, "values") else rows
        return (data[row][0], data[row][1]) if 0 <= row < len(data) else (gr.skip(), gr.skip())

    table.select(pick, [table], [sid, name], api_visibility="undocumented", queue=False)

    @reported(5, 4)
    def do_open(session_id, color_by):
        if session_id in (None, ""):
            raise ValueError("type a session id or click a row of the table first")
        info = engine.session_info(session_id)
        fig = plot_for(engine, str(info.id), color_by)
        return str(info.id), None, fig, gr.Tabs(selected="explore-tab"), opened_line(engine, info)

    open_btn.click(do_open, [sid, shared.color_by], [shared.session, shared.node, shared.plot, shared.tabs, message],
                   api_visibility="undocumented")

    def change(fn, verb, action):
        @guarded
        def run(session_id, new_name, q, d, annotator, request: gr.Request):
            require(engine.access, request, action)
            info = fn(session_id, new_name, who(annotator, request))
            return f"{verb} session {info.id}", engine.sessions(q, bool(d))
        return run

    changes = (
        (rename, lambda s, n, u: engine.rename(s, n, annotator=u), "renamed"),
        (delete, lambda s, n, u: engine.delete(s, annotator=u), "deleted (tick 'show deleted' to restore)"),
        (restore, lambda s, n, u: engine.restore(s, annotator=u), "restored"),
    )
    for (button, fn, verb), action in zip(changes, ("rename", "delete", "restore"), strict=True):
        button.click(change(fn, verb, action), [sid, name, query, deleted, shared.annotator], [message, table],
                     api_visibility="undocumented")

    @guarded
    def do_compare(a, b, color_by):
        return plot_for(engine, str(int(a)), color_by) if a else empty_figure("left run"), \
            plot_for(engine, str(int(b)), color_by) if b else empty_figure("right run")

    compare.click(do_compare, [left, right, shared.color_by], [plot_l, plot_r], api_visibility="undocumented")


def opened_line(engine: Explorer, info) -> str:
    """The message of Open: an interrupted search says how to go on with it."""
    if engine.sessions_.search_state(info) == "interrupted":
        return (f"opened session {info.id}: its search was interrupted at {info.nodes} nodes; "
                "select a node and use 'Resume search from here' to go on")
    return f"opened session {info.id}"
