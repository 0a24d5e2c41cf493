"""Explore page: the problem, models, thought factors and search parameters, Run / Stop, and the live tree plot."""
from __future__ import annotations

import gradio as gr

from reasoning.search import ALGORITHMS
from reasoning.search.config import BY_NAME, SETTINGS, Setting

from ..figure import FigureOptions, empty_figure, tree_figure
from ..service import Explorer
from ..wiring import Shared, guarded, who
from . import autolabel, inspector

EXAMPLE_PROBLEM = "Use 4 7 8 8 to make 24."


def plot_for(engine: Explorer, session_id, color_by: str = "value", selected: str | None = None):
    """The tree figure of a session (live or stored), or a blank plot when none is open."""
    if not session_id:
        return empty_figure()
    tree = engine.tree(session_id)
    labels = engine.label_summary(int(session_id)) if not engine.running(session_id) else {}
    opts = FigureOptions(color_by=color_by or "value", selected=selected, uirevision=f"session-{session_id}")
    return tree_figure(tree, opts, labels=labels)


def build_page(engine: Explorer, shared: Shared) -> None:
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=330):
            controls = _controls(engine)
        with gr.Column(scale=3):
            shared.plot = gr.Plot(plot_for(engine, None), elem_id="tree-plot", show_label=False)
            status = gr.Textbox(label="search status", elem_id="status", interactive=False, lines=1)
    inspector.build_page(engine, shared, status)
    _wire_search(engine, shared, controls, status)


def _controls(engine: Explorer) -> dict:
    c: dict = {}
    c["problem"] = gr.Textbox(EXAMPLE_PROBLEM, label="problem", elem_id="problem", lines=3,
                              info="Free text, `Use 4 7 8 8 to make 24.` for Countdown, or pick one below")
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
    """The UI control of one declared search setting (type, bounds, choices and help from the declaration)."""
    elem_id = ELEM_IDS.get(s.name, s.name.replace("_", "-"))
    if s.kind == "choice":
        return gr.Dropdown(list(s.choices), value=value, label=s.label, info=s.help, elem_id=elem_id)
    if s.kind == "bool":
        return gr.Checkbox(bool(value), label=s.label, info=s.help, elem_id=elem_id)
    if s.kind == "floats":
        return gr.Textbox(", ".join(f"{x:g}" for x in value), label=s.label, info=s.help, elem_id=elem_id,
                          max_lines=1)
    if s.name == "budget":
        return gr.Slider(1, min(max_budget, 2048), value=value, step=1, label=s.label, info=s.help, elem_id=elem_id)
    return gr.Number(value, label=s.label, info=s.help, elem_id=elem_id, precision=0 if s.kind == "int" else None,
                     minimum=s.lo, maximum=s.hi)


def _wire_search(engine: Explorer, shared: Shared, c: dict, status: gr.Textbox) -> None:
    @guarded
    def run(request: gr.Request, problem, gen_dir, prm_dir, catalog_rows, color_by, annotator, *values):
        rows = catalog_rows.values.tolist() if hasattr(catalog_rows, "values") else catalog_rows
        catalog = engine.catalog_from_rows(rows)
        settings = dict(zip(SETTING_CONTROLS, values, strict=True))
        settings["factors"] = [f.name for f in catalog.enabled]
        config = engine.config(settings, generator_dir=gen_dir)
        updates = engine.run_search(problem, config, catalog, annotator=who(annotator, request),
                                    generator_dir=gen_dir, prm_dir=prm_dir)
        for up in updates:
            opts = FigureOptions(color_by=color_by or "value", uirevision=f"session-{up.session_id}")
            yield str(up.session_id), None, tree_figure(up.tree, opts), up.status

    inputs = [c["problem"], c["gen_dir"], c["prm_dir"], c["catalog"], shared.color_by, shared.annotator,
              *(c[name] for name in SETTING_CONTROLS)]
    tuned = [name for name in SETTING_CONTROLS if name != "algorithm"]

    def algorithm_defaults(algorithm, gen_dir):
        """Switching algorithm loads the model's recommended settings for it (the demo's differ by algorithm)."""
        d = engine.control_defaults(algorithm if algorithm in ALGORITHMS else "mcts", gen_dir)
        return [", ".join(f"{x:g}" for x in d[k]) if BY_NAME[k].kind == "floats" else d[k] for k in tuned]

    c["algorithm"].change(guarded(algorithm_defaults), [c["algorithm"], c["gen_dir"]], [c[k] for k in tuned],
                          api_visibility="undocumented", queue=False)
    c["run"].click(run, inputs, [shared.session, shared.node, shared.plot, status], api_visibility="undocumented",
                   concurrency_id="model", concurrency_limit=1)

    @guarded
    def stop(session_id):
        if not session_id:
            return "no search to stop"
        return "stopping…" if engine.stop(session_id) else "no search is running"

    c["stop"].click(stop, [shared.session], [status], api_visibility="undocumented", queue=False)
    c["pick"].change(lambda p: p or gr.skip(), [c["pick"]], [c["problem"]], api_visibility="undocumented",
                     queue=False)

    @guarded
    def recolor(session_id, node_id, color_by):
        return plot_for(engine, session_id, color_by, node_id)

    shared.color_by.change(recolor, [shared.session, shared.node, shared.color_by], [shared.plot],
                           api_visibility="undocumented")
