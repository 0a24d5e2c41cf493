"""Runs page: start a run over a stored problem set with a progress bar and Stop, the runs table (solve rate with its
95% Wilson interval), scaling curves, and two runs compared on their shared problems (wins / losses / ties, the
difference with a paired bootstrap interval, McNemar's exact p, where each budget went), with both trees of a
problem side by side and a self-contained report to download. Runs execute in the server (ui/services/experiments)."""
from __future__ import annotations

import tempfile
from html import escape
from pathlib import Path

import gradio as gr
import plotly.graph_objects as go

from experiments.compare import RUN_HEADERS, Comparison, run_rows, solve_rate
from experiments.report import figures, write_report
from reasoning.search.config import BY_NAME
from storage.runs import RunInfo

from ..figure import empty_figure
from ..service import Explorer
from ..wiring import Shared, guarded, require, who
from .explore import plot_for

DIFF_HEADERS = ["problem", "text", "run A", "run B"]
TICK_SECONDS = 1.0  # how often the page reads a running run's progress


def progress_html(line: str, fraction: float) -> str:
    """A progress bar with its line (escaped: a run's name is user text)."""
    pct = max(0.0, min(1.0, fraction)) * 100
    return (f"<div class='run-progress'><div class='run-progress-bar' style='width:{pct:.1f}%'></div></div>"
            f"<div class='run-progress-line'>{escape(line)}</div>" if line else "")


def scaling_figure(infos: list[RunInfo]) -> go.Figure:
    """Solve rate against budget and against mean generated tokens, one line per (problem set, algorithm), with
    Wilson intervals; runs that differ only in budget make a curve."""
    done = [i for i in infos if i.done]
    if not done:
        return empty_figure("Finished runs draw their scaling curves here")
    fig = go.Figure()
    groups: dict[tuple[str, str], list[RunInfo]] = {}
    for i in done:
        groups.setdefault((i.problem_set, i.algorithm), []).append(i)
    for (pset, algo), items in sorted(groups.items()):
        items.sort(key=lambda i: i.budget)
        rates = [solve_rate(i) for i in items]
        fig.add_trace(go.Scatter(
            x=[i.budget for i in items], y=[r for r, _ in rates], mode="lines+markers",
            name=escape(f"{algo} · {pset}"),
            error_y={"type": "data", "symmetric": False, "array": [hi - r for r, (_, hi) in rates],
                     "arrayminus": [r - lo for r, (lo, _) in rates]},
            customdata=[[i.id, i.tokens or 0] for i in items],
            hovertemplate="run %{customdata[0]}: %{y:.1%} at budget %{x} (%{customdata[1]:.0f} tokens)<extra></extra>"))
    fig.update_layout(title="solve rate against budget (95% Wilson intervals)", xaxis_title="budget (nodes)",
                      xaxis_type="log", yaxis_title="solved", yaxis_tickformat=".0%", height=360,
                      margin={"t": 50, "b": 40, "l": 50, "r": 10})
    return fig


def diff_rows(c: Comparison) -> list[list[str]]:
    mark = {True: "✓", False: "✗"}
    return [[r["problem_id"], r["problem"][:200], f"{mark[r['a_correct']]} {r['a_answer']}",
             f"{mark[r['b_correct']]} {r['b_answer']}"] for r in c.rows]


def build_page(engine: Explorer, shared: Shared, tab: gr.Tab | None = None) -> None:
    jobs = engine.experiments
    algorithms = list(BY_NAME["algorithm"].choices or ())
    with gr.Row():
        pset = gr.Dropdown([], label="problem set", elem_id="run-set", scale=2)
        limit = gr.Number(None, label="first N problems (blank: all)", precision=0, elem_id="run-limit", scale=1)
        algorithm = gr.Dropdown(algorithms, value="mcts", label="algorithm", elem_id="run-algorithm", scale=1)
        budget = gr.Number(64, label="budget", precision=0, elem_id="run-budget", scale=1)
        name = gr.Textbox(label="run name (optional)", elem_id="run-name", scale=2, max_lines=1)
    with gr.Row():
        start = gr.Button("Start run", variant="primary", elem_id="run-start", size="sm")
        stop = gr.Button("Stop", variant="stop", elem_id="run-stop", size="sm")
        run_id = gr.Number(None, label="run id (Stop / Resume)", precision=0, elem_id="run-id", scale=0,
                           min_width=140)
        resume = gr.Button("Resume", elem_id="run-resume", size="sm")
        refresh = gr.Button("Refresh", elem_id="runs-refresh", size="sm")
    progress = gr.HTML("", elem_id="run-progress")
    message = gr.Textbox(label="result", interactive=False, elem_id="runs-message", lines=1)
    table = gr.Dataframe(headers=RUN_HEADERS, interactive=False, wrap=True, elem_id="runs-table", max_height=320,
                         label="runs (click a row to pick it as run A, then B)")
    scaling = gr.Plot(empty_figure("Finished runs draw their scaling curves here"), show_label=False,
                      elem_id="runs-scaling")
    run_a, run_b = _compare_section(engine, shared)
    timer = gr.Timer(TICK_SECONDS, active=False)

    def listing():
        infos = jobs.infos()
        line, frac = jobs.progress(None)
        return (run_rows(infos), scaling_figure(infos), progress_html(line, frac),
                gr.Timer(active=bool(jobs.running())))

    view = [table, scaling, progress, timer]

    @guarded
    def load(current):
        sets = jobs.problem_sets()
        choices = [(f"{n} ({c} problems)", n) for n, c in sets.items()]
        keep = current if current in sets else (choices[0][1] if choices else None)
        return (gr.Dropdown(choices=choices, value=keep), *listing())

    @guarded
    def do_start(set_name, n, algo, b, label, annotator, request: gr.Request):
        require(engine.access, request, "run")
        rid = jobs.start(set_name, algo, b, label, n, annotator=who(annotator, request))
        return (f"started run {rid}", rid, *listing())

    @guarded
    def do_stop(request: gr.Request, rid):
        require(engine.access, request, "run")
        stopped = jobs.stop(rid)
        msg = (f"stopping run {int(rid)}: finished problems are kept; the one in flight is searched again on Resume"
               if stopped else f"run {rid} is not running here")
        return (msg, *listing())

    @guarded
    def do_resume(request: gr.Request, rid):
        require(engine.access, request, "run")
        return (f"resumed run {jobs.resume(rid)}", *listing())

    def pick(evt: gr.SelectData, rows, a):
        row = evt.index[0] if isinstance(evt.index, list | tuple) else evt.index
        data = rows.values.tolist() if hasattr(rows, "values") else rows
        if not 0 <= row < len(data):
            return gr.skip(), gr.skip(), gr.skip()
        rid = int(data[row][0])
        return rid, (rid if a in (None, "") else a), (rid if a not in (None, "") and a != rid else gr.skip())

    opts = {"api_visibility": "undocumented"}
    if tab is not None:
        tab.select(load, [pset], [pset, *view], **opts)
    refresh.click(load, [pset], [pset, *view], **opts)
    start.click(do_start, [pset, limit, algorithm, budget, name, shared.annotator], [message, run_id, *view], **opts)
    stop.click(do_stop, [run_id], [message, *view], **opts)
    resume.click(do_resume, [run_id], [message, *view], **opts)
    timer.tick(guarded(listing), None, view, **opts)
    table.select(pick, [table, run_a], [run_id, run_a, run_b], queue=False, **opts)


def _compare_section(engine: Explorer, shared: Shared) -> tuple[gr.Number, gr.Number]:
    """Two runs compared: the verdict line, calibration and budget plots, the problems where they differ, and both
    trees of a clicked problem side by side; returns the two run-id boxes (the runs table fills them)."""
    jobs = engine.experiments
    gr.Markdown("### Compare two runs on the problems they share")
    with gr.Row():
        run_a = gr.Number(None, label="run A", precision=0, elem_id="compare-a")
        run_b = gr.Number(None, label="run B", precision=0, elem_id="compare-b")
        compare = gr.Button("Compare", variant="primary", elem_id="runs-compare", size="sm")
        report = gr.Button("Write report", elem_id="runs-report", size="sm")
    verdict = gr.Textbox(label="comparison", interactive=False, elem_id="compare-line", lines=2)
    with gr.Row():
        calib = gr.Plot(show_label=False, elem_id="compare-calibration")
        budget_plot = gr.Plot(show_label=False, elem_id="compare-budget")
    diffs = gr.Dataframe(headers=DIFF_HEADERS, interactive=False, wrap=True, elem_id="compare-diffs",
                         max_height=300, label="problems where the runs differ (click one: both trees below)")
    pair = gr.State([])  # [[session A, session B], ...] of the rows above, ids only
    with gr.Row():
        tree_a = gr.Plot(empty_figure("run A's tree"), show_label=False, elem_id="compare-tree-a")
        tree_b = gr.Plot(empty_figure("run B's tree"), show_label=False, elem_id="compare-tree-b")
    download = gr.File(label="report", interactive=False, elem_id="runs-report-file")
    @guarded
    def do_compare(a, b):
        c = jobs.compare(a, b)
        cal, spent = figures(c)
        note = (f" (not compared: {c.only_a} problems only in run A, {c.only_b} only in run B)"
                if c.only_a or c.only_b else "")
        return (c.line + note, cal, spent, diff_rows(c), [[r["a_session"], r["b_session"]] for r in c.rows])

    @guarded
    def open_pair(evt: gr.SelectData, sessions, color_by):
        row = evt.index[0] if isinstance(evt.index, list | tuple) else evt.index
        if not isinstance(row, int) or not 0 <= row < len(sessions):
            return gr.skip(), gr.skip()
        a, b = sessions[row]
        return plot_for(engine, str(a), color_by), plot_for(engine, str(b), color_by)

    @guarded
    def do_report(a, b):
        c = jobs.compare(a, b)
        folder = Path(tempfile.mkdtemp(prefix="rte-run-report-"))
        return str(write_report(c, folder / f"runs-{c.a.info.id}-vs-{c.b.info.id}.html"))

    opts = {"api_visibility": "undocumented"}
    compare.click(do_compare, [run_a, run_b], [verdict, calib, budget_plot, diffs, pair], **opts)
    diffs.select(open_pair, [pair, shared.color_by], [tree_a, tree_b], **opts)
    report.click(do_report, [run_a, run_b], [download], **opts)
    return run_a, run_b
