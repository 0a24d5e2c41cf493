"""The tree plot's toolbar: find steps by their text (matches ringed, folds that hold some in orange), go to the
next match, zoom out one level, and unfold a folded subtree when its ▼+N marker is clicked (ui/static/app.js
forwards that click here). The view (focus, unfolded nodes, search) is one state value, `ui.plots.View`; Focus here
and Whole tree are the inspector's. Arrow keys move the selection in the browser (app.js)."""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from reasoning.tree import ROOT

from ..feedback import reported
from ..figure import find_matches
from ..plots import View, session_plot
from ..service import Explorer
from ..wiring import Shared, who
from . import inspector


@dataclass
class Toolbar:
    find: gr.Textbox
    next_match: gr.Button
    up: gr.Button
    expand: gr.Textbox  # hidden: the node whose fold marker was clicked (`node|time`)


def build_toolbar() -> Toolbar:
    """The toolbar's own controls, in the current row (the inspector adds Focus here and Whole tree after them)."""
    find = gr.Textbox(placeholder="find steps containing…", show_label=False, elem_id="tree-find", max_lines=1,
                      scale=3, min_width=180, container=False)
    next_match = gr.Button("Next match", elem_id="find-next", size="sm", min_width=90, scale=0)
    up = gr.Button("Zoom out", elem_id="zoom-out", size="sm", min_width=90, scale=0)
    expand = gr.Textbox(visible="hidden", elem_id="plot-expand", label="unfold node")
    return Toolbar(find, next_match, up, expand)


def next_match(matches: list[str], current: str | None) -> str | None:
    """The match after `current` in creation order (the first when `current` is none of them), wrapping round."""
    if not matches:
        return None
    if current in matches:
        return matches[(matches.index(current) + 1) % len(matches)]
    return matches[0]


def wire(engine: Explorer, shared: Shared, ins: inspector.Inspector, bar: Toolbar) -> None:
    view_in = [shared.session, shared.node, shared.color_by, ins.focus]

    @reported(2)
    def unfold(value, session_id, node_id, color_by, focus):
        node = inspector.parse_click(value)
        if not session_id or not node:
            return gr.skip(), gr.skip()
        view = View.parse(focus).open(node).dump()
        return view, session_plot(engine, session_id, color_by, node_id, view)

    @reported(2)
    def find(text, session_id, node_id, color_by, focus):
        if not session_id:
            return gr.skip(), gr.skip()
        view = View(View.parse(focus).focus, View.parse(focus).opened, (text or "").strip()[:200]).dump()
        return view, session_plot(engine, session_id, color_by, node_id, view)

    @reported(2)
    def zoom_out(session_id, node_id, color_by, focus):
        view = View.parse(focus)
        if not session_id or not view.focus:
            return gr.skip(), gr.skip()
        parent = view.focus.rsplit(".", 1)[0] if "." in view.focus else ROOT
        new = View(None if parent == ROOT else parent, (), view.find).dump()
        return new, session_plot(engine, session_id, color_by, node_id, new)

    panel = inspector.panel_outputs(shared, ins)

    @reported(len(panel) + 1)
    def go_next(request: gr.Request, session_id, node_id, color_by, focus, annotator):
        view = View.parse(focus)
        if not session_id or not view.find:
            return (gr.skip(),) * (len(panel) + 1)
        target = next_match(find_matches(engine.tree(session_id), view.find, view.focus or ROOT), node_id)
        if target is None:
            raise ValueError(f"no step contains {view.find!r}")
        return (*inspector.node_panel(engine, session_id, target, who(annotator, request)),
                session_plot(engine, session_id, color_by, target, focus))

    outs = [ins.focus, shared.plot]
    bar.expand.change(unfold, [bar.expand, *view_in], outs, api_visibility="undocumented")
    bar.find.submit(find, [bar.find, *view_in], outs, api_visibility="undocumented")
    bar.up.click(zoom_out, view_in, outs, api_visibility="undocumented")
    bar.next_match.click(go_next, [*view_in, shared.annotator], [*panel, shared.plot], api_visibility="undocumented")
    shared.session.change(lambda: "", None, [bar.find], api_visibility="undocumented", queue=False)


