"""Node inspector: the root-to-node trace of the clicked node and the actions on it (rate, edit, expand, prune...).

Model text only ever reaches the page through Textboxes and plain-string Dataframe cells, never gr.HTML.
"""
from __future__ import annotations

import time

import gradio as gr

from ..figure import FigureOptions, tree_figure
from ..service import MAX_EXPAND, SIBLING_HEADERS, TRACE_HEADERS, Explorer
from ..wiring import Shared, guarded, who
from . import autolabel

TRACE_TYPES = ["number", "str", "str", "str", "str", "number", "number", "number", "number", "number", "str"]
SIBLING_TYPES = ["str", "str", "str", "number", "number", "number", "str"]


def parse_click(value: str) -> str:
    """The node id out of the hidden textbox's `node|timestamp`."""
    return (value or "").split("|", 1)[0].strip()


def build_page(engine: Explorer, shared: Shared, status: gr.Textbox) -> None:
    click = gr.Textbox(visible="hidden", elem_id="plot-click", label="clicked node")
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            info = gr.Textbox(label="selected node", elem_id="node-info", interactive=False, lines=1)
            trace = gr.Dataframe(headers=TRACE_HEADERS, datatype=TRACE_TYPES, interactive=False, wrap=True,
                                 label="trace (root to node)", elem_id="trace-table", max_height=380,
                                 column_widths=["3%", "7%", "10%", "9%", "35%", "6%", "6%", "6%", "6%", "6%", "6%"])
            text = gr.Textbox(label="step text (edit it, then 'Save edit as sibling')", elem_id="node-text", lines=3)
        with gr.Column(scale=2, min_width=320):
            with gr.Row():
                bad = gr.Button("−1 bad", elem_id="rate-bad", size="sm")
                neutral = gr.Button("0 neutral", elem_id="rate-neutral", size="sm")
                good = gr.Button("+1 good", elem_id="rate-good", size="sm")
            with gr.Row():
                unsure = gr.Checkbox(label="unsure", elem_id="unsure")
                note = gr.Textbox(label="note", elem_id="rate-note", lines=1, scale=3)
            gr.Markdown("Keys: `g`/`+` good · `n`/`0` neutral · `b`/`-` bad · `u` unsure", elem_classes="shortcut-hint")
            with gr.Row():
                edit = gr.Button("Save edit as sibling", elem_id="edit-step", size="sm")
                human = gr.Button("Add as human step below", elem_id="human-step", size="sm")
            with gr.Row():
                factor = gr.Dropdown(engine.catalog.names, value=engine.catalog.names[0], label="factor",
                                     elem_id="expand-factor")
                count = gr.Number(3, label="children", precision=0, minimum=1, maximum=MAX_EXPAND, elem_id="expand-n")
                expand = gr.Button("Expand here", elem_id="expand", size="sm")
            with gr.Row():
                budget = gr.Number(20, label="resume budget", precision=0, minimum=1, elem_id="resume-budget")
                resume = gr.Button("Resume search from here", elem_id="resume", size="sm")
            with gr.Row():
                prune = gr.Button("Prune subtree", elem_id="prune", variant="stop", size="sm")
                undo = gr.Button("Undo my last action", elem_id="undo", size="sm")
                summarize = gr.Button("Summarize trace", elem_id="summarize", size="sm")
            summary = gr.Textbox(label="summary", elem_id="summary", interactive=False, lines=2)
    with gr.Accordion("Children of the selected node (rate them all at once)", open=False):
        kids = gr.Dataframe(headers=SIBLING_HEADERS, datatype=SIBLING_TYPES, interactive=True, wrap=True,
                            static_columns=[0, 1, 2, 3, 4, 5], elem_id="children-table", max_height=320)
        save_kids = gr.Button("Save children's ratings", elem_id="rate-children", size="sm")
    autolabel.build_section(engine, shared)  # rollouts and first-error search on the selected node (own module)

    view_outputs = [shared.node, info, trace, text, kids, shared.plot]

    def view(session_id, node_id, color_by):
        """The inspector's contents and the redrawn tree (selection highlighted) for a node."""
        if not session_id or not node_id:
            return node_id, "", [], "", [], gr.skip()
        nv = engine.inspect(session_id, node_id)
        opts = FigureOptions(color_by=color_by or "value", selected=nv.node_id, uirevision=f"session-{session_id}")
        tree = engine.tree(session_id)
        fig = tree_figure(tree, opts, labels={} if engine.running(session_id) else engine.label_summary(nv.session_id))
        return nv.node_id, nv.info, nv.trace, nv.text, engine.siblings(session_id, nv.node_id), fig

    @guarded
    def on_click(value, session_id, color_by):
        node_id = parse_click(value)
        if not node_id:
            return (gr.skip(),) * len(view_outputs) + (gr.skip(),)
        return (*view(session_id, node_id, color_by), time.time())

    selected_at = gr.State(0.0)
    click.change(on_click, [click, shared.session, shared.color_by], [*view_outputs, selected_at],
                 api_visibility="undocumented")

    def action(fn):
        """Run one action on the selected node, then refresh the inspector and the plot."""

        @guarded
        def run(request: gr.Request, session_id, node_id, color_by, annotator, *args):
            # gr.Request comes first: Gradio inserts it by position, which a trailing *args would swallow.
            result = fn(session_id, node_id, who(annotator, request), *args)
            target, message = result if isinstance(result, tuple) else (node_id, result)
            return (*view(session_id, target, color_by), message)

        return run

    common = [shared.session, shared.node, shared.color_by, shared.annotator]
    outs = [*view_outputs, status]

    def rater(rating):
        def rate(sid, nid, user, is_unsure, note_text, t0):
            seconds = max(0.0, min(time.time() - t0, 86400.0)) if t0 else None
            engine.rate(sid, nid, rating, annotator=user, unsure=is_unsure, note=note_text, seconds=seconds)
            return f"rated node {nid} {rating:+d} as {user}" if rating else f"rated node {nid} 0 as {user}"
        return rate

    for button, rating in ((bad, -1), (neutral, 0), (good, 1)):
        button.click(action(rater(rating)), [*common, unsure, note, selected_at], outs, api_visibility="undocumented")

    def do_edit(sid, nid, user, new_text):
        new = engine.edit(sid, nid, new_text, annotator=user)
        return new, f"saved the edit as node {new} (sibling of {nid})"

    def do_human(sid, nid, user, new_text, fac):
        new = engine.add_human_step(sid, nid, new_text, fac, annotator=user)
        return new, f"added human step {new} under {nid}"

    def do_expand(sid, nid, user, fac, n):
        new = engine.expand(sid, nid, fac, n, annotator=user)
        repeats = int(n) - len(new)  # samples identical to an existing child are merged into it, not added
        note = f" ({repeats} sample{'s' * (repeats != 1)} repeated an existing child)" if repeats > 0 else ""
        return nid, f"expanded {nid} with {fac}: {', '.join(new) or 'no new nodes'}{note}"

    def do_prune(sid, nid, user):
        engine.prune(sid, nid, annotator=user)
        return f"pruned the subtree under {nid} (Undo brings it back)"

    def do_undo(sid, nid, user):
        done = engine.undo(sid, annotator=user)
        return f"undid your {done.kind} of node {done.node_id}" if done else "nothing of yours to undo"

    def do_rate_children(sid, nid, user, rows):
        rows = rows.values.tolist() if hasattr(rows, "values") else rows
        return f"saved {engine.rate_children(sid, nid, rows, annotator=user)} ratings of the children of {nid}"

    edit.click(action(do_edit), [*common, text], outs, api_visibility="undocumented", concurrency_id="model")
    human.click(action(do_human), [*common, text, factor], outs, api_visibility="undocumented",
                concurrency_id="model")
    expand.click(action(do_expand), [*common, factor, count], outs, api_visibility="undocumented",
                 concurrency_id="model")
    prune.click(action(do_prune), common, outs, api_visibility="undocumented")
    undo.click(action(do_undo), common, outs, api_visibility="undocumented")
    save_kids.click(action(do_rate_children), [*common, kids], outs, api_visibility="undocumented")

    @guarded
    def do_summarize(session_id, node_id):
        return engine.summarize(session_id, node_id)

    summarize.click(do_summarize, [shared.session, shared.node], [summary], api_visibility="undocumented",
                    concurrency_id="model")

    @guarded
    def do_resume(session_id, node_id, n, color_by):
        for up in engine.resume(session_id, node_id, n):
            opts = FigureOptions(color_by=color_by or "value", selected=node_id, uirevision=f"session-{session_id}")
            yield tree_figure(up.tree, opts), up.status

    resume.click(do_resume, [shared.session, shared.node, budget, shared.color_by], [shared.plot, status],
                 api_visibility="undocumented", concurrency_id="model")
