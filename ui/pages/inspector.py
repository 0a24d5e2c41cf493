"""Node inspector: the root-to-node trace of the clicked node and the actions on it (rate, edit, expand, prune...).

Model text only ever reaches the page through Textboxes and plain-string Dataframe cells, never gr.HTML; the
read-only rendered view (math typeset) gets Markdown source from ui.mathtext, in which only math is not plain text.
Every event here reports a mistake in the status box and leaves the other components as they were (ui.feedback).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from .. import validate as v
from ..children import CHILDREN_HEADERS, CHILDREN_TYPES, children_rows, save_children, show_rating
from ..feedback import reported
from ..figure import tree_figure
from ..mathtext import LATEX_DELIMITERS, math_markdown, plain
from ..plots import View, figure_options, label_patch, session_plot
from ..service import MAX_EXPAND, TRACE_HEADERS, Explorer
from ..services.views import trace_math, undo_line
from ..wiring import USER_ERRORS, Shared, require, who
from . import autolabel

TRACE_TYPES = ["number", "str", "str", "str", "str", "number", "number", "number", "number", "number", "str", "str",
               "str"]
# The trace is an overview: one line per step, so that a typical trace (8 and more steps) shows without scrolling;
# the rendered view below it and the step text box show whole texts.
TRACE_MAX_HEIGHT = 460
TRACE_MAX_CHARS = 400
# The trace spans the page: every number column wide enough for its header and a 0.000 at 1400 px, the step text
# the rest (no "P.", "v." or cut step at 1400 and 1920 px).
TRACE_WIDTHS = ["34px", "84px", "98px", "96px", "auto", "64px", "64px", "64px", "66px", "64px", "120px", "86px",
                "110px"]
CHILDREN_WIDTHS = ["84px", "96px", "auto", "76px", "80px", "90px", "96px"]


def parse_click(value: str) -> str:
    """The node id out of the hidden textbox's `node|timestamp`."""
    return (value or "").split("|", 1)[0].strip()


@dataclass
class Inspector:
    """The inspector's components (built by `_layout`, wired by the `_wire_*` functions)."""

    click: gr.Textbox
    info: gr.Textbox
    trace: gr.Dataframe
    text: gr.Textbox
    bad: gr.Button
    neutral: gr.Button
    good: gr.Button
    unsure: gr.Checkbox
    note: gr.Textbox
    edit: gr.Button
    human: gr.Button
    factor: gr.Dropdown
    count: gr.Number
    expand: gr.Button
    budget: gr.Number
    resume: gr.Button
    prune: gr.Button
    undo: gr.Button
    summarize: gr.Button
    summary: gr.Textbox
    kids: gr.Dataframe
    save_kids: gr.Button
    selected_at: gr.State
    focus_here: gr.Button
    whole_tree: gr.Button
    focus: gr.State  # the node whose subtree the plot shows ("" for the whole tree)
    selected: gr.Textbox  # hidden: the selected node as the browser sees it; its change moves the selection ring
    redraw: gr.Textbox  # hidden: the browser asks for a redraw (a node to highlight that the plot does not show)
    patch: gr.Textbox  # hidden: the hovers and colours a rating changed, applied to the plot in the browser
    human_factor: gr.Dropdown | None = None  # the factor of a step written by hand (the session's catalog)
    math: gr.Markdown | None = None  # the rendered (read-only) problem and trace, math typeset
    scores: gr.Markdown | None = None  # the selected node's numbers, beside its step (from the trace's last row)


def build_page(engine: Explorer, shared: Shared, status: gr.Textbox, places: Places) -> Inspector:
    ins = _layout(engine, status, places)
    with places.details:
        autolabel.build_section(engine, shared, ins.trace)  # rollouts and first-error search (own module)
    _wire_click(engine, shared, ins)
    _wire_math(engine, shared, ins)
    _wire_ratings(engine, shared, ins, status)
    _wire_actions(engine, shared, ins, status)
    _wire_resume(engine, shared, ins, status)
    _wire_human_factor(engine, shared, ins)
    return ins


@dataclass
class Places:
    """Where the explore page puts the inspector's parts (ui/pages/explore.py lays them out, this module fills
    them): the plot's toolbar, the labeling panel beside the plot (step, scores, rating, status, children: one
    screen at 1400 x 1000) and the details below (the trace, the rendered view, the other actions)."""

    toolbar: Any
    panel: Any
    details: Any


def _layout(engine: Explorer, status: gr.Textbox, places: Places) -> Inspector:
    click = gr.Textbox(visible="hidden", elem_id="plot-click", label="clicked node")
    selected = gr.Textbox(visible="hidden", elem_id="selected-node", label="selected node id")
    redraw = gr.Textbox(visible="hidden", elem_id="plot-redraw", label="redraw request")
    patch = gr.Textbox(visible="hidden", elem_id="plot-patch", label="plot patch")
    with places.toolbar:
        focus_here = gr.Button("Focus here", elem_id="focus-here", size="sm", min_width=90, scale=0)
        whole_tree = gr.Button("Whole tree", elem_id="whole-tree", size="sm", min_width=90, scale=0)
    with places.panel:
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=300):
                info = gr.Textbox(label="selected node", elem_id="node-info", interactive=False, lines=1,
                                  show_label=False, placeholder="selected node: click one on the tree")
                scores = gr.Markdown("", elem_id="node-scores")
                text = gr.Textbox(label="step text (edit it, then 'Save edit as sibling' below)", elem_id="node-text",
                                  lines=2, max_lines=8)
            with gr.Column(scale=2, min_width=280, elem_id="rate-panel"):
                with gr.Row():
                    bad = gr.Button("−1 bad", elem_id="rate-bad", size="sm", min_width=70)
                    neutral = gr.Button("0 neutral", elem_id="rate-neutral", size="sm", min_width=70)
                    good = gr.Button("+1 good", elem_id="rate-good", size="sm", min_width=70)
                with gr.Row(equal_height=True):
                    unsure = gr.Checkbox(label="unsure", elem_id="unsure", scale=0, min_width=90)
                    note = gr.Textbox(label="note", elem_id="rate-note", lines=1, scale=3, show_label=False,
                                      placeholder="note (optional)")
                gr.Markdown("Keys: `g` good · `n` neutral · `b` bad · `u` unsure · arrows move on the tree",
                            elem_classes="shortcut-hint")
                status.render()
        with gr.Row(equal_height=True):
            gr.Markdown("**Children of the selected node (rate them all at once)**: type `+1`, `0` or `-1` in their "
                        "rating cells, then save", elem_classes="shortcut-hint")
            save_kids = gr.Button("Save children's ratings", elem_id="save-children", size="sm", scale=0,
                                  min_width=190)
        kids = gr.Dataframe(headers=CHILDREN_HEADERS, datatype=CHILDREN_TYPES, interactive=True, wrap=True,
                            static_columns=[0, 1, 2, 3, 4, 5], elem_id="children-table", max_height=210,
                            show_label=False, column_widths=CHILDREN_WIDTHS, buttons=[])
    with places.details:
        trace = gr.Dataframe(headers=TRACE_HEADERS, datatype=TRACE_TYPES, interactive=False, wrap=False,
                             label="trace (root to node): one line per step, whole texts below",
                             elem_id="trace-table", max_height=TRACE_MAX_HEIGHT, max_chars=TRACE_MAX_CHARS,
                             column_widths=TRACE_WIDTHS)
        with gr.Row(equal_height=False):
            with gr.Column(scale=3), gr.Accordion("Rendered (read-only): the problem and the trace, math typeset",
                                                  open=True):
                math = gr.Markdown("", elem_id="math-view", latex_delimiters=LATEX_DELIMITERS, line_breaks=True,
                                   sanitize_html=True, max_height=520)
            with gr.Column(scale=2, min_width=320):
                with gr.Row():
                    edit = gr.Button("Save edit as sibling", elem_id="edit-step", size="sm")
                    human = gr.Button("Add as human step below", elem_id="human-step", size="sm")
                    human_factor = gr.Dropdown(engine.catalog.names, value=None, label="factor of the human step",
                                               elem_id="human-factor", min_width=140)
                with gr.Row():
                    factor = gr.Dropdown(engine.catalog.names, value=engine.catalog.names[0], label="factor",
                                         elem_id="expand-factor")
                    # no precision or bounds for Gradio to round or clamp to: the server refuses 1.5 or 99 in one line
                    count = gr.Number(3, label=f"children (1–{MAX_EXPAND})", elem_id="expand-n")
                    expand = gr.Button("Expand here", elem_id="expand", size="sm")
                with gr.Row():
                    budget = gr.Number(20, label=f"resume budget (1–{engine.max_budget})", elem_id="resume-budget")
                    resume = gr.Button("Resume search from here", elem_id="resume", size="sm")
                with gr.Row():
                    prune = gr.Button("Prune subtree", elem_id="prune", variant="stop", size="sm")
                    undo = gr.Button("Undo my last action", elem_id="undo", size="sm")
                    summarize = gr.Button("Summarize trace", elem_id="summarize", size="sm")
                summary = gr.Textbox(label="summary", elem_id="summary", interactive=False, lines=2)
    ins = Inspector(click, info, trace, text, bad, neutral, good, unsure, note, edit, human, factor, count, expand,
                    budget, resume, prune, undo, summarize, summary, kids, save_kids, gr.State(0.0), focus_here,
                    whole_tree, gr.State(""), selected, redraw, patch, human_factor=human_factor, math=math)
    ins.scores = scores
    return ins


def scores_line(rows: Any) -> str:
    """The selected node's numbers (the trace's last row) as one line beside its step: PRM, value, Q, visits,
    prior, human and auto labels, gold."""
    rows = _table_rows(rows)
    if not rows:
        return ""
    col = {h: i for i, h in enumerate(TRACE_HEADERS)}
    last = rows[-1]
    if len(last) < len(TRACE_HEADERS) or str(last[col["node"]] or "") == "0":
        return ""
    parts = [f"**{h}** {_number(last[col[h]])}" for h in ("PRM", "value", "Q", "visits", "prior")]
    parts += [f"**{h}** {plain(str(last[col[h]]), False)}" for h in ("human", "auto", "gold") if str(last[col[h]] or "").strip()]
    return " · ".join(parts)


def _number(x: Any) -> str:
    if x is None or (isinstance(x, float) and x != x) or x == "":
        return "–"
    return f"{x:.3f}" if isinstance(x, float) else plain(str(x), False)


def panel_outputs(shared: Shared, ins: Inspector) -> list:
    """The components `node_panel` fills, in its order: the selection and the inspector, not the plot."""
    return [shared.node, ins.selected, ins.info, ins.trace, ins.text, ins.kids, ins.unsure, ins.note]


def view_outputs(shared: Shared, ins: Inspector) -> list:
    """The components `node_view` fills, in its order: `panel_outputs` and the plot."""
    return [*panel_outputs(shared, ins), shared.plot]


def node_panel(engine: Explorer, session_id: Any, node_id: Any, annotator: str) -> tuple:
    """The inspector's contents for a node: its id, the browser's copy (`id|time`, so that every selection reaches
    the browser, even of the same node after a redraw), info (with this annotator's rating), trace, step text,
    children, and the unsure tick and note this annotator gave it. The plot is not redrawn: the browser moves the
    selection ring (`rteShow` in ui/static/app.js)."""
    if not session_id or not node_id:
        return node_id, node_id or "", "", [], "", [], False, ""
    nv = engine.inspect(session_id, node_id)
    mine, unsure, note = own_label(engine, session_id, nv.node_id, annotator)
    return (nv.node_id, f"{nv.node_id}|{time.time()}", nv.info + mine, nv.trace, nv.text,
            children_rows(engine, session_id, nv.node_id, annotator), unsure, note)


def own_label(engine: Explorer, session_id: Any, node_id: str, annotator: str) -> tuple[str, bool, str]:
    """What `annotator` gave a node, as the inspector shows it: ` · your rating +1 (unsure)` for the info line, the
    unsure tick and the note; blank when they have not rated it."""
    mine = [a for a in engine.store.annotations(v.session_id(session_id), node_id) if a.annotator == annotator]
    if not mine:
        return "", False, ""
    a = mine[-1]
    return f" · your rating {show_rating(a.rating)}{' (unsure)' if a.unsure else ''}", bool(a.unsure), a.note or ""


def node_view(engine: Explorer, session_id: Any, node_id: Any, color_by: str, annotator: str,
              focus: str = "") -> tuple:
    """`node_panel` and the redrawn tree (selection highlighted), after a change of the tree itself."""
    panel = node_panel(engine, session_id, node_id, annotator)
    if not session_id or not node_id:
        return (*panel, gr.skip())
    return (*panel, session_plot(engine, session_id, color_by, panel[0], focus))


SHOW_SELECTED = "(node) => { if (window.rteShow) window.rteShow(node); }"
APPLY_PATCH = "(patch) => { if (window.rtePatch) window.rtePatch(patch); }"


def _wire_click(engine: Explorer, shared: Shared, ins: Inspector) -> None:
    outputs = [*panel_outputs(shared, ins), ins.selected_at, ins.human_factor]

    def select(session_id, node_id, annotator, request):
        if not node_id:
            return (gr.skip(),) * len(outputs)
        return (*node_panel(engine, session_id, node_id, who(annotator, request)), time.time(),
                human_factor_choice(engine, session_id, node_id))

    @reported(len(outputs))
    def on_click(value, session_id, annotator, request: gr.Request):
        return select(session_id, parse_click(value), annotator, request)

    @reported(len(outputs))
    def on_trace_row(evt: gr.SelectData, session_id, annotator, request: gr.Request):
        row = evt.row_value or []  # the trace's columns: #, node, factor, ...
        return select(session_id, str(row[1]) if len(row) > 1 and row[1] is not None else "", annotator, request)

    # queue=False: a selection reads the cached tree in milliseconds; the queue's round trip took longer than that
    ins.click.change(on_click, [ins.click, shared.session, shared.annotator], outputs, api_visibility="undocumented",
                     queue=False, show_progress="hidden")
    ins.trace.select(on_trace_row, [shared.session, shared.annotator], outputs, api_visibility="undocumented",
                     queue=False, show_progress="hidden")
    # The selection ring follows the selected node in the browser; a node the plot does not show (folded, outside
    # the focused subtree, or picked on the replay plot) asks for a redraw that shows it.
    ins.selected.change(None, [ins.selected], None, js=SHOW_SELECTED, api_visibility="undocumented")
    ins.patch.change(None, [ins.patch], None, js=APPLY_PATCH, api_visibility="undocumented")

    @reported(1)
    def redraw(value, session_id, node_id, color_by, focus):
        wanted = parse_click(value)
        if not session_id or not wanted or wanted != node_id:  # a stale request: the selection moved on
            return gr.skip()
        return session_plot(engine, session_id, color_by, node_id, focus)

    ins.redraw.change(redraw, [ins.redraw, shared.session, shared.node, shared.color_by, ins.focus], [shared.plot],
                      api_visibility="undocumented")

    @reported(2)
    def focus_on(session_id, node_id, color_by, view):
        """The selected node's subtree (its folds closed), keeping the search's highlights."""
        if not node_id:
            raise ValueError("no node is selected: click a node on the tree first")
        focus = View(node_id, (), View.parse(view).find).dump()
        return focus, session_plot(engine, session_id, color_by, node_id, focus)

    @reported(2)
    def unfocus(session_id, node_id, color_by, view):
        whole = View(None, (), View.parse(view).find).dump()
        return whole, session_plot(engine, session_id, color_by, node_id, whole)

    view_in = [shared.session, shared.node, shared.color_by, ins.focus]
    ins.focus_here.click(focus_on, view_in, [ins.focus, shared.plot], api_visibility="undocumented")
    ins.whole_tree.click(unfocus, view_in, [ins.focus, shared.plot], api_visibility="undocumented")
    shared.session.change(lambda: "", None, [ins.focus], api_visibility="undocumented", queue=False)


def _table_rows(value: Any) -> list[list[Any]]:
    """A Dataframe's value (pandas, or a list of rows) as a list of rows."""
    if value is None:
        return []
    return value.values.tolist() if hasattr(value, "values") else list(value)


def _wire_math(engine: Explorer, shared: Shared, ins: Inspector) -> None:
    """The rendered view follows the trace table (no second trip to the store), and shows a session's problem as
    soon as the session opens."""

    @reported(2)
    def show_trace(rows):
        """The rendered view and the selected node's scores line, in one answer to the trace a click filled (a
        second listener was a second round trip per click)."""
        table = _table_rows(rows)
        text = trace_math(table)
        # an emptied trace (a session switch) leaves the problem shown
        return (text if text else gr.skip()), scores_line(table)

    @reported(1)
    def show_problem(session_id):
        if not session_id:
            return ""
        return f"**Problem**\n\n{math_markdown(engine.tree(session_id).problem.text)}"

    ins.trace.change(show_trace, [ins.trace], [ins.math, ins.scores], api_visibility="undocumented", queue=False,
                     show_progress="hidden")
    shared.session.change(show_problem, [shared.session], [ins.math], api_visibility="undocumented")


def _action(engine: Explorer, fn: Callable, n_outputs: int, action: str, *, redraw: bool = True) -> Callable:
    """An event handler: run `fn(session, node, annotator, *args)` on the selected node, then refresh the inspector
    (and, with `redraw`, the plot); `fn` returns a status line, or (node to show, status line). A rating does not
    redraw: the tree did not change, and what its labels change on the plot (hovers, colours by human label) is
    sent afterwards as a small patch (`_wire_ratings`), so the rating is acknowledged at once."""

    @reported(n_outputs, n_outputs - 1)
    def run(request: gr.Request, session_id, node_id, color_by, annotator, focus, *args):
        # gr.Request comes first: Gradio inserts it by position, which a trailing *args would swallow.
        require(engine.access, request, action)  # the user's role allows `action` (ui/roles.py)
        user = who(annotator, request)
        result = fn(session_id, node_id, user, *args)
        target, message = result if isinstance(result, tuple) else (node_id, result)
        if not redraw:
            return (*node_panel(engine, session_id, target, user), message)
        return (*node_view(engine, session_id, target, color_by, user, focus), message)

    return run


def _wire_ratings(engine: Explorer, shared: Shared, ins: Inspector, status: gr.Textbox) -> None:
    """A rating is acknowledged first: one small transaction, answered with the status line alone (the node, its
    text, info and children did not change). The trace's human column and the plot's hovers and colours follow in
    a chained step; saving the children's ratings answers with the children table as saved."""
    common = [shared.session, shared.node, shared.color_by, shared.annotator, ins.focus]

    def rater(rating: int) -> Callable:
        @reported(3, 0)
        def rate(request: gr.Request, sid, nid, annotator, is_unsure, note_text, t0):
            require(engine.access, request, "rate")
            user = who(annotator, request)
            seconds = max(0.0, min(time.time() - t0, 86400.0)) if t0 else None
            engine.rate(sid, nid, rating, annotator=user, unsure=is_unsure, note=note_text, seconds=seconds)
            # the unsure tick and the note belong to one rating: cleared once it is stored (kept on a mistake)
            return (f"rated node {nid} {rating:+d} as {user}" if rating else f"rated node {nid} 0 as {user}"), False, ""
        return rate

    @reported(3)
    def after_rating(request: gr.Request, session_id, node_id, color_by, focus, annotator):
        """The info line (this annotator's rating), the trace (its human column) and the plot patch (hovers,
        colours) of the rated node and its children."""
        if not session_id or not node_id:
            return gr.skip(), gr.skip(), gr.skip()
        tree = engine.tree(session_id)
        kids = tree.children(node_id, include_pruned=True) if node_id in tree else []
        nv = engine.inspect(session_id, node_id)
        mine = own_label(engine, session_id, nv.node_id, who(annotator, request))[0]
        return (nv.info + mine, nv.trace,
                label_patch(engine, session_id, color_by, node_id, focus, [node_id, *kids]))

    after_in = [shared.session, shared.node, shared.color_by, ins.focus, shared.annotator]
    after_out = [ins.info, ins.trace, ins.patch]
    for button, rating in ((ins.bad, -1), (ins.neutral, 0), (ins.good, 1)):
        # queue=False: one small transaction, acknowledged without the queue's round trip
        button.click(rater(rating), [shared.session, shared.node, shared.annotator, ins.unsure, ins.note,
                                     ins.selected_at], [status, ins.unsure, ins.note], api_visibility="undocumented",
                     queue=False, show_progress="hidden",
                     ).then(after_rating, after_in, after_out, api_visibility="undocumented", show_progress="hidden")

    def rate_children(sid, nid, user, rows):
        return save_children(engine, sid, nid, rows, user)

    outs = [*panel_outputs(shared, ins), status]
    ins.save_kids.click(_action(engine, rate_children, len(outs), "rate", redraw=False), [*common, ins.kids], outs,
                        api_visibility="undocumented").then(after_rating, after_in, after_out,
                                                            api_visibility="undocumented", show_progress="hidden")


def _wire_actions(engine: Explorer, shared: Shared, ins: Inspector, status: gr.Textbox) -> None:
    common = [shared.session, shared.node, shared.color_by, shared.annotator, ins.focus]
    outs = [*view_outputs(shared, ins), status]
    act = lambda fn, action: _action(engine, fn, len(outs), action)  # noqa: E731

    def do_edit(sid, nid, user, new_text):
        new = engine.edit(sid, nid, new_text, annotator=user)
        return new, f"saved the edit as node {new} (sibling of {nid})"

    def do_human(sid, nid, user, new_text, fac):
        new = engine.add_human_step(sid, nid, new_text, fac, annotator=user)
        return new, f"added human step {new} under {nid}{human_step_note(engine.tree(sid).node(new))}"

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
        if done is not None and done.node_id and (not nid or nid in (done.payload or {}).get("removed", ())):
            # the selected node is gone (or none was selected): show the node the undone action was done on
            return done.node_id, undo_line(done)
        return undo_line(done)

    ins.edit.click(act(do_edit, "edit"), [*common, ins.text], outs, api_visibility="undocumented", concurrency_id="model")
    ins.human.click(act(do_human, "human_step"), [*common, ins.text, ins.human_factor], outs, api_visibility="undocumented",
                    concurrency_id="model")
    ins.expand.click(act(do_expand, "expand"), [*common, ins.factor, ins.count], outs, api_visibility="undocumented",
                     concurrency_id="model")
    ins.prune.click(act(do_prune, "prune"), common, outs, api_visibility="undocumented")
    ins.undo.click(act(do_undo, "undo"), common, outs, api_visibility="undocumented")

    @reported(2, 1)
    def do_summarize(request: gr.Request, session_id, node_id):
        require(engine.access, request, "summarize")
        return engine.summarize(session_id, node_id), gr.skip()

    ins.summarize.click(do_summarize, [shared.session, shared.node], [ins.summary, status],
                        api_visibility="undocumented", concurrency_id="model")


def human_step_note(a: dict) -> str:
    """What the domain made of a typed step, for the status line: a final answer, or an invalid operation."""
    if a["terminal"]:
        return f": a final answer ({a['answer'] if a['answer'] is not None else 'none read'})"
    why = (a.get("meta") or {}).get("invalid")
    return f": ⚠ {why}" if why else ""


def human_factor_choice(engine: Explorer, session_id, node_id):
    """The human step's factor dropdown for a node: the session's catalog and the default that fits there (a click
    fills it in the same update as the inspector; the selection's change fills it after a resume or an undo)."""
    if not session_id or not node_id:
        return gr.skip()
    try:
        names, default = engine.human_step_choices(session_id, node_id)
    except USER_ERRORS:  # the node went away (an undo): keep the choices as they are
        return gr.skip()
    return gr.Dropdown(choices=names, value=default)


def _wire_human_factor(engine: Explorer, shared: Shared, ins: Inspector) -> None:
    """The human step's factor follows the selected node: the session's catalog, and a default that fits there."""

    def offer(session_id, node_id):
        return human_factor_choice(engine, session_id, node_id)

    shared.node.change(offer, [shared.session, shared.node], [ins.human_factor], api_visibility="undocumented",
                       queue=False)


def _wire_resume(engine: Explorer, shared: Shared, ins: Inspector, status: gr.Textbox) -> None:
    panel = panel_outputs(shared, ins)

    @reported(2 + len(panel), 1)
    def do_resume(request: gr.Request, session_id, node_id, n, color_by, annotator, focus):
        """The tree grows on the plot while the search runs; when it ends, the plot (with its labels) and the
        inspector show the selected node as it is now: its new children, visits and values."""
        require(engine.access, request, "search")
        for up in engine.resume(session_id, node_id, n):
            if up.done:
                yield (session_plot(engine, session_id, color_by, node_id, focus), up.status,
                       *node_panel(engine, session_id, node_id, who(annotator, request)))
            else:
                yield (tree_figure(up.tree, figure_options(session_id, color_by, node_id, focus)), up.status,
                       *(gr.skip(),) * len(panel))

    ins.resume.click(do_resume, [shared.session, shared.node, ins.budget, shared.color_by, shared.annotator,
                                 ins.focus], [shared.plot, status, *panel],
                     api_visibility="undocumented", concurrency_id="search", concurrency_limit=1)
