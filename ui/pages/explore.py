"""Explore page: the problem, models, thought factors and search parameters, Run / Stop, and the live tree plot."""
from __future__ import annotations

import tempfile
from pathlib import Path

import gradio as gr

from reasoning.search import ALGORITHMS
from reasoning.search.config import BY_NAME, SETTINGS, Setting

from ..domain_note import domain_note
from ..feedback import ERROR_PREFIX, reported
from ..figure import tree_figure
from ..plots import figure_options, session_plot
from ..service import Explorer
from ..share import write_share
from ..wiring import Shared, require, user_of, who
from . import autolabel, inspector, treeview

EXAMPLE_PROBLEM = "Use 4 7 8 8 to make 24."


def plot_for(engine: Explorer, session_id, color_by: str = "value", selected: str | None = None,
             focus: str | None = None):
    """The tree figure of a session (live or stored), or a blank plot when none is open; a stored session's from
    the figure cache while its tree and labels are unchanged (ui/plots.py)."""
    return session_plot(engine, session_id, color_by, selected, focus)


def build_page(engine: Explorer, shared: Shared) -> None:
    """One screen for a labeler (1400 x 1000): the search controls at the left; the tree, its toolbar and the
    selected node's panel (step, scores, rating, status, children) at the right; the trace, the other actions and
    sharing below (`inspector.Places`)."""
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=290):
            controls = _controls(engine)
            shared.problem_pick = controls["pick"]  # the import on the data page refreshes it
        with gr.Column(scale=3, min_width=640):
            shared.plot = gr.Plot(plot_for(engine, None), elem_id="tree-plot", show_label=False)
            places = inspector.Places(gr.Row(elem_id="tree-toolbar", equal_height=True), gr.Column(elem_id="node-panel"),
                                      gr.Column(elem_id="node-details", render=False))
    places.details.render()
    with places.toolbar:
        bar = treeview.build_toolbar()
    status = gr.Textbox(label="status", elem_id="status", interactive=False, lines=1, render=False, show_label=False,
                        placeholder="status: what the last action did")
    ins = inspector.build_page(engine, shared, status, places)
    treeview.wire(engine, shared, ins, bar)
    with places.details, gr.Row():
        share = gr.Button("Share this tree (one HTML file, works offline)", elem_id="share-html", size="sm", scale=1)
        shared_file = gr.File(label="shared tree", interactive=False, elem_id="share-file", scale=2, visible=False)
    _wire_search(engine, shared, controls, status)
    _wire_session_switch(engine, shared, controls, ins, status)
    _wire_share(engine, shared, share, shared_file, status)


def _wire_share(engine: Explorer, shared: Shared, button: gr.Button, out: gr.File, status: gr.Textbox) -> None:
    """The share-html button: the open session's tree as one self-contained HTML file to download."""

    @reported(2, 1)
    def share(session_id, color_by):
        if not session_id:
            raise ValueError("no session is open: run a search or open a session first")
        sid = int(session_id)
        if engine.running(sid):
            raise ValueError(f"a search is running on session {sid}: share the tree when it has finished")
        folder = Path(tempfile.mkdtemp(prefix="rte-share-"))
        path = write_share(engine.store, sid, folder / f"tree-session-{sid}.html", color_by=color_by or "value")
        return gr.File(str(path), visible=True), f"session {sid}: wrote {path.name} ({path.stat().st_size // 1024} KiB, self-contained)"

    button.click(share, [shared.session, shared.color_by], [out, status], api_visibility="undocumented")


def session_line(engine: Explorer, session_id) -> str:
    """The status line of a session just opened: its name, size and labels."""
    info = engine.session_info(session_id)
    return f"session {info.id}: {info.name} · {info.nodes} nodes · {info.annotations} labels"


def _wire_session_switch(engine: Explorer, shared: Shared, c: dict, ins: inspector.Inspector,
                         status: gr.Textbox) -> None:
    """Opening another session (or starting a run) replaces everything of the previous one: the problem box,
    the selection, the inspector (its note and unsure tick too), the summary, the status and the search settings
    (those the session was searched with) all belong to the session now open."""
    outputs = [c["problem"], status, ins.info, ins.trace, ins.text, ins.kids, ins.summary, ins.selected, ins.unsure,
               ins.note, *(c[name] for name in SETTING_CONTROLS)]
    blank = ("", [], "", [], "", "", False, "")

    @reported(len(outputs), 1)
    def switched(session_id):
        if not session_id:
            return (gr.skip(),) * len(outputs)
        if engine.running(session_id):  # the run's own status lines follow; its settings are the ones shown
            return gr.skip(), gr.skip(), *blank, *(gr.skip(),) * len(SETTING_CONTROLS)
        info = engine.session_info(session_id)
        return info.problem_text, session_line(engine, session_id), *blank, *session_settings(info)

    def session_settings(info) -> list:
        """The settings the session was searched with, in its controls (left as they are for a session stored
        without them: an import)."""
        stored = getattr(info, "config", None) or {}
        return [gr.skip() if stored.get(name) is None else control_value(BY_NAME[name], stored[name])
                for name in SETTING_CONTROLS]

    shared.session.change(switched, [shared.session], outputs, api_visibility="undocumented")


def _controls(engine: Explorer) -> dict:
    c: dict = {}
    c["problem"] = gr.Textbox(EXAMPLE_PROBLEM, label="problem", elem_id="problem", lines=3,
                              info="Free text, `Use 4 7 8 8 to make 24.` for Countdown, or pick one below")
    c["domain_note"] = gr.Markdown(domain_note(EXAMPLE_PROBLEM, None, engine.generator_dir), elem_id="domain-note")
    choices = engine.problem_choices()
    c["pick"] = gr.Dropdown(choices, label="problem sets", value=None, visible=bool(choices), elem_id="problem-pick")
    with gr.Row():
        c["run"] = gr.Button("Run search", variant="primary", elem_id="run-search")
        c["stop"] = gr.Button("Stop", variant="stop", elem_id="stop-search")
    d = engine.control_defaults("mcts")
    main, more = ("algorithm", "budget"), [s for s in SETTINGS if s.control and s.name not in ("algorithm", "budget")]
    with gr.Accordion("Search", open=True):
        for name in main:
            c[name] = setting_control(BY_NAME[name], d[name], max_budget=engine.max_budget)
    with gr.Accordion("More search parameters", open=False):
        for i in range(0, len(more), 2):
            with gr.Row():
                for s in more[i:i + 2]:
                    c[s.name] = setting_control(s, d[s.name], max_budget=engine.max_budget)
    with gr.Accordion("Thought factors", open=False):
        c["catalog"] = gr.Dataframe(
            engine.catalog_rows(), headers=["factor", "enabled", "cue", "description"],
            datatype=["str", "bool", "str", "str"], interactive=True, static_columns=[0, 3], elem_id="catalog",
            wrap=True,
        )
    with gr.Accordion("Models", open=False):
        c["gen_dir"] = gr.Textbox(engine.generator_dir, label="generator directory", elem_id="generator-dir")
        c["prm_dir"] = gr.Textbox(engine.prm_dir, label="PRM directory", elem_id="prm-dir")
        autolabel.prm_switch(engine, c["prm_dir"])  # make it the active PRM without a restart (own module)
    return c


SETTING_CONTROLS = [s.name for s in SETTINGS if s.control]
ELEM_IDS = {"merge_duplicates": "merge-duplicates"}


def setting_control(s: Setting, value, *, max_budget: int):
    """The UI control of one declared search setting (type, bounds, choices and help from the declaration). A
    number is sent as typed, neither rounded nor clamped in the browser: the declaration refuses what is out of its
    bounds (the budget's upper one is the server's REASONING_MAX_BUDGET, as on the command line), in one line."""
    elem_id = ELEM_IDS.get(s.name, s.name.replace("_", "-"))
    if s.kind == "choice":
        return gr.Dropdown(list(s.choices), value=value, label=s.label, info=s.help, elem_id=elem_id)
    if s.kind == "bool":
        return gr.Checkbox(bool(value), label=s.label, info=s.help, elem_id=elem_id)
    if s.kind == "floats":
        return gr.Textbox(", ".join(f"{x:g}" for x in value), label=s.label, info=s.help, elem_id=elem_id,
                          max_lines=1)
    hi = max_budget if s.name == "budget" else s.hi
    bounds = f" ({'an integer, ' if s.kind == 'int' else ''}{_shown(s.lo)} to {_shown(hi)})" \
        if s.lo is not None and hi is not None else ""
    return gr.Number(value, label=s.label, info=s.help + bounds, elem_id=elem_id)


def _shown(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def control_value(s: Setting, value):
    """A setting's value as its control holds it (a list of numbers as comma-separated text)."""
    return ", ".join(f"{x:g}" for x in value) if s.kind == "floats" else value


def busy_line(engine: Explorer) -> str:
    """Why Run is refused now, or "" when no search is running on this server (one runs at a time)."""
    with engine.sessions_.lock:
        running = sorted(engine.sessions_.live)
    if not running:
        return ""
    return (f"a search is already running (session {running[0]}): Stop it or wait for it to finish, then Run "
            "again")


def _wire_run(engine: Explorer, button: gr.Button, status: gr.Textbox):
    """Run's first step, answered at once: while a search runs (Gradio ignored a second click before: the button's
    event was still pending) it is refused with a toast and a status line that name the running session; the search
    itself follows on success."""

    def free():
        line = busy_line(engine)
        if line:
            raise gr.Error(line, print_exception=False)

    def refused():
        line = busy_line(engine)
        return f"{ERROR_PREFIX}{line}" if line else gr.skip()

    # queued (in its own slot, not the search's): an error of an event outside the queue shows no toast
    checked = button.click(free, None, None, api_visibility="undocumented", trigger_mode="multiple",
                           show_progress="hidden")
    checked.failure(refused, None, [status], api_visibility="undocumented", queue=False, show_progress="hidden")
    return checked


def _wire_search(engine: Explorer, shared: Shared, c: dict, status: gr.Textbox) -> None:
    @reported(4, 3)
    def run(request: gr.Request, problem, gen_dir, prm_dir, catalog_rows, color_by, annotator, *values):
        require(engine.access, request, "search")
        if not engine.access.allows(user_of(request), "models") and not engine.registry.loaded(gen_dir, prm_dir):
            require(engine.access, request, "models")  # a model other than the loaded ones loads it for everyone
        rows = catalog_rows.values.tolist() if hasattr(catalog_rows, "values") else catalog_rows
        catalog = engine.catalog_from_rows(rows)
        settings = dict(zip(SETTING_CONTROLS, values, strict=True))
        settings["factors"] = [f.name for f in catalog.enabled]
        config = engine.config(settings, generator_dir=gen_dir)
        updates = engine.run_search(problem, config, catalog, annotator=who(annotator, request),
                                    generator_dir=gen_dir, prm_dir=prm_dir)
        for up in updates:
            yield str(up.session_id), None, tree_figure(up.tree, figure_options(up.session_id, color_by)), up.status

    inputs = [c["problem"], c["gen_dir"], c["prm_dir"], c["catalog"], shared.color_by, shared.annotator,
              *(c[name] for name in SETTING_CONTROLS)]
    tuned = [name for name in SETTING_CONTROLS if name != "algorithm"]

    def algorithm_defaults(algorithm, gen_dir):
        """Switching algorithm loads the model's recommended settings for it (the demo's differ by algorithm)."""
        d = engine.control_defaults(algorithm if algorithm in ALGORITHMS else "mcts", gen_dir)
        return [control_value(BY_NAME[k], d[k]) for k in tuned]

    # .input: a user's pick only; an opened session's own settings (`_wire_session_switch`) are not overwritten
    c["algorithm"].input(reported(len(tuned))(algorithm_defaults), [c["algorithm"], c["gen_dir"]],
                         [c[k] for k in tuned], api_visibility="undocumented", queue=False)
    _wire_run(engine, c["run"], status).success(run, inputs, [shared.session, shared.node, shared.plot, status],
                                                api_visibility="undocumented", concurrency_id="search",
                                                concurrency_limit=1)

    @reported(1, 0)
    def stop(request: gr.Request, session_id):
        require(engine.access, request, "stop")
        if not session_id:
            return "no search to stop"
        return "stopping…" if engine.stop(session_id) else "no search is running"

    def note(problem, gen_dir):
        return domain_note(problem, gen_dir, engine.generator_dir)

    for trigger in (c["problem"].change, c["gen_dir"].change):
        trigger(note, [c["problem"], c["gen_dir"]], [c["domain_note"]], api_visibility="undocumented", queue=False)
    c["stop"].click(stop, [shared.session], [status], api_visibility="undocumented", queue=False)
    c["pick"].change(lambda p: p or gr.skip(), [c["pick"]], [c["problem"]], api_visibility="undocumented",
                     queue=False)

    @reported(1)
    def recolor(session_id, node_id, color_by):
        return plot_for(engine, session_id, color_by, node_id)

    shared.color_by.change(recolor, [shared.session, shared.node, shared.color_by], [shared.plot],
                           api_visibility="undocumented")
