"""Explore page: the problem, models, thought factors and search parameters, Run / Stop, and the live tree plot."""
from __future__ import annotations

import gradio as gr

from reasoning.search import ALGORITHMS, HELP
from reasoning.search.config import ANSWER_SELECTIONS

from ..feedback import reported
from ..figure import FigureOptions, empty_figure, tree_figure
from ..service import AGGREGATIONS, Explorer
from ..wiring import Shared, who
from . import inspector

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
    ins = inspector.build_page(engine, shared, status)
    _wire_search(engine, shared, controls, status)
    _wire_session_switch(engine, shared, controls, ins, status)


def session_line(engine: Explorer, session_id) -> str:
    """The status line of a session just opened: its name, size and labels."""
    info = engine.session_info(session_id)
    return f"session {info.id}: {info.name} · {info.nodes} nodes · {info.annotations} labels"


def _wire_session_switch(engine: Explorer, shared: Shared, c: dict, ins: inspector.Inspector,
                         status: gr.Textbox) -> None:
    """Opening another session (or starting a run) replaces everything of the previous one: the problem box,
    the selection, the inspector, the summary and the status all belong to the session now open."""
    outputs = [c["problem"], status, ins.info, ins.trace, ins.text, ins.kids, ins.summary]

    @reported(len(outputs), 1)
    def switched(session_id):
        if not session_id:
            return (gr.skip(),) * len(outputs)
        if engine.running(session_id):  # the run's own status lines follow
            return gr.skip(), gr.skip(), "", [], "", [], ""
        info = engine.session_info(session_id)
        return info.problem_text, session_line(engine, session_id), "", [], "", [], ""

    shared.session.change(switched, [shared.session], outputs, api_visibility="undocumented")


def _controls(engine: Explorer) -> dict:
    c: dict = {}
    c["problem"] = gr.Textbox(EXAMPLE_PROBLEM, label="problem", elem_id="problem", lines=3,
                              info="Free text, `Use 4 7 8 8 to make 24.` for Countdown, or pick one below")
    choices = engine.problem_choices()
    c["pick"] = gr.Dropdown(choices, label="problem sets", value=None, visible=bool(choices), elem_id="problem-pick")
    with gr.Row():
        c["run"] = gr.Button("Run search", variant="primary", elem_id="run-search")
        c["stop"] = gr.Button("Stop", variant="stop", elem_id="stop-search")
    with gr.Accordion("Search", open=True):
        c["algorithm"] = gr.Dropdown(list(ALGORITHMS), value="mcts", label="algorithm", info=HELP["algorithm"],
                                       elem_id="algorithm")
        c["budget"] = gr.Slider(1, min(engine.max_budget, 2048), value=40, step=1, label="budget",
                                info=HELP["budget"], elem_id="budget")
    d = engine.control_defaults("mcts")
    with gr.Accordion("More search parameters", open=False):
        with gr.Row():
            c["candidates"] = gr.Number(d["candidates"], label="candidates", precision=0, minimum=1, maximum=64,
                                        info=HELP["candidates"], elem_id="candidates")
            c["beam_width"] = gr.Number(d["beam_width"], label="beam width", precision=0, minimum=1, maximum=256)
        with gr.Row():
            c["c_puct"] = gr.Number(d["c_puct"], label="c_puct", minimum=0, maximum=100)
            c["temperature"] = gr.Number(d["temperatures"][0], label="temperature", minimum=0, maximum=5)
        with gr.Row():
            c["widen"] = gr.Number(d["widen"], label="widen (MCTS)", minimum=0, maximum=1, info=HELP["widen"])
            c["fpu"] = gr.Number(d["fpu_reduction"], label="FPU reduction (MCTS)", minimum=0, maximum=1,
                                 info=HELP["fpu_reduction"])
        with gr.Row():
            c["max_depth"] = gr.Number(d["max_depth"], label="max depth", precision=0, minimum=1, maximum=256)
            c["parallel"] = gr.Number(d["parallel_leaves"], label="parallel leaves", precision=0, minimum=1,
                                      maximum=64)
        with gr.Row():
            c["aggregation"] = gr.Dropdown(list(AGGREGATIONS), value=d["aggregation"], label="aggregation")
            c["answer_selection"] = gr.Dropdown(list(ANSWER_SELECTIONS), value=d["answer_selection"],
                                                label="answer selection", info=HELP["answer_selection"])
        with gr.Row():
            c["seed"] = gr.Number(0, label="seed", precision=0, minimum=0)
            c["merge"] = gr.Checkbox(True, label="merge repeated samples", info=HELP["merge_duplicates"],
                                     elem_id="merge-duplicates")
    with gr.Accordion("Thought factors", open=False):
        c["catalog"] = gr.Dataframe(
            engine.catalog_rows(), headers=["factor", "enabled", "cue", "description"],
            datatype=["str", "bool", "str", "str"], interactive=True, static_columns=[0, 3], elem_id="catalog",
            wrap=True,
        )
    with gr.Accordion("Models", open=False):
        c["gen_dir"] = gr.Textbox(engine.generator_dir, label="generator directory", elem_id="generator-dir")
        c["prm_dir"] = gr.Textbox(engine.prm_dir, label="PRM directory", elem_id="prm-dir")
    return c


def _wire_search(engine: Explorer, shared: Shared, c: dict, status: gr.Textbox) -> None:
    @reported(4, 3)
    def run(problem, gen_dir, prm_dir, catalog_rows, algorithm, budget, candidates, beam_width, c_puct, temperature,
            max_depth, parallel, aggregation, seed, widen, fpu, answer_selection, merge, color_by, annotator,
            request: gr.Request):
        rows = catalog_rows.values.tolist() if hasattr(catalog_rows, "values") else catalog_rows
        catalog = engine.catalog_from_rows(rows)
        config = engine.config(algorithm, budget, seed, candidates, temperature, c_puct, beam_width, max_depth,
                               aggregation, parallel, [f.name for f in catalog.enabled], widen, fpu, answer_selection,
                               merge)
        updates = engine.run_search(problem, config, catalog, annotator=who(annotator, request),
                                    generator_dir=gen_dir, prm_dir=prm_dir)
        for up in updates:
            opts = FigureOptions(color_by=color_by or "value", uirevision=f"session-{up.session_id}")
            yield str(up.session_id), None, tree_figure(up.tree, opts), up.status

    inputs = [c["problem"], c["gen_dir"], c["prm_dir"], c["catalog"], c["algorithm"], c["budget"], c["candidates"],
              c["beam_width"], c["c_puct"], c["temperature"], c["max_depth"], c["parallel"], c["aggregation"],
              c["seed"], c["widen"], c["fpu"], c["answer_selection"], c["merge"], shared.color_by, shared.annotator]
    if engine.search_defaults:  # the demo's tuned settings differ by algorithm: switching algorithm loads its own
        tuned = ["candidates", "widen", "fpu_reduction"]

        def algorithm_defaults(algorithm):
            d = engine.control_defaults(algorithm if algorithm in ALGORITHMS else "mcts")
            return [d[k] for k in tuned]

        c["algorithm"].change(algorithm_defaults, [c["algorithm"]], [c["candidates"], c["widen"], c["fpu"]],
                              api_visibility="undocumented", queue=False)
    c["run"].click(run, inputs, [shared.session, shared.node, shared.plot, status], api_visibility="undocumented",
                   concurrency_id="model", concurrency_limit=1)

    @reported(1, 0)
    def stop(session_id):
        if not session_id:
            return "no search to stop"
        return "stopping…" if engine.stop(session_id) else "no search is running"

    c["stop"].click(stop, [shared.session], [status], api_visibility="undocumented", queue=False)
    c["pick"].change(lambda p: p or gr.skip(), [c["pick"]], [c["problem"]], api_visibility="undocumented",
                     queue=False)

    @reported(1)
    def recolor(session_id, node_id, color_by):
        return plot_for(engine, session_id, color_by, node_id)

    shared.color_by.change(recolor, [shared.session, shared.node, shared.color_by], [shared.plot],
                           api_visibility="undocumented")
