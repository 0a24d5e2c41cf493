"""A comparison of two runs as one self-contained HTML file (plotly inlined, works offline); every text from a model
or a problem file is escaped before it reaches the page or a hover."""
from __future__ import annotations

from html import escape
from pathlib import Path

from storage.export import atomic_write

from .compare import Comparison, RunSummary, models_line

STYLE = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse}"
         "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}th{background:#f4f4f4}")


def figures(c: Comparison):
    """The reliability diagram of both runs (solve rate by the chosen answer's value) and where the budget went."""
    import plotly.graph_objects as go

    cal = go.Figure()
    cal.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "#999"},
                             name="perfect calibration", hoverinfo="skip"))
    for s in (c.a, c.b):
        pts = s.calibration
        cal.add_trace(go.Scatter(x=[(lo + hi) / 2 for lo, hi, _, _ in pts], y=[r for _, _, r, _ in pts],
                                 mode="lines+markers", name=escape(f"run {s.info.id} {s.info.algorithm}"),
                                 text=[f"{n} problems" for *_, n in pts], hovertemplate="%{y:.0%} (%{text})"))
    cal.update_layout(title="calibration: solve rate by the chosen answer's value", xaxis_title="value",
                      yaxis_title="solved", height=380, margin={"t": 50, "b": 40})
    budget = go.Figure()
    for s in (c.a, c.b):
        done = max(1, s.info.done)
        budget.add_trace(go.Bar(name=escape(f"run {s.info.id} {s.info.algorithm}"),
                                x=["solved", "correct answer in tree, not chosen", "no correct answer in tree"],
                                y=[s.info.solved / done, s.found_missed / done, s.not_found / done]))
    budget.update_layout(title="where the budget went (share of problems)", barmode="group", height=380,
                         yaxis_tickformat=".0%", margin={"t": 50, "b": 40})
    return cal, budget


def _run_table(s: RunSummary) -> str:
    i, (lo, hi) = s.info, s.interval
    cells = [("run", f"{i.id} {i.name}"), ("algorithm", f"{i.algorithm} at budget {i.budget}"),
             ("problem set", i.problem_set), ("solved", f"{i.solved} of {i.done} ({s.rate:.1%}, 95% CI "
                                                          f"{lo:.1%}–{hi:.1%})"),
             ("models", models_line(i.models)), ("duplicate samples", f"{s.duplicate_share:.1%}"),
             ("mean depth", f"{s.mean_depth:.1f}")]
    return "<table>" + "".join(f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in cells) + "</table>"


def render(c: Comparison) -> str:
    cal, budget = figures(c)
    rows = "".join(
        f"<tr><td>{escape(r['problem_id'])}</td><td>{escape(r['problem'])}</td>"
        f"<td>{'✓' if r['a_correct'] else '✗'} {escape(str(r['a_answer']))}</td>"
        f"<td>{'✓' if r['b_correct'] else '✗'} {escape(str(r['b_answer']))}</td></tr>" for r in c.rows)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>runs {c.a.info.id} vs {c.b.info.id}</title>"
            f"<style>{STYLE}</style></head><body><h1>Run {c.a.info.id} vs run {c.b.info.id}</h1>"
            f"<p>{escape(c.line)}</p><div style='display:flex;gap:2em'>{_run_table(c.a)}{_run_table(c.b)}</div>"
            + cal.to_html(full_html=False, include_plotlyjs=True)
            + budget.to_html(full_html=False, include_plotlyjs=False)
            + f"<h2>Problems where the runs differ ({len(c.rows)})</h2><table><tr><th>id</th><th>problem</th>"
            f"<th>run {c.a.info.id}</th><th>run {c.b.info.id}</th></tr>{rows}</table></body></html>")


def write_report(c: Comparison, out: str | Path) -> Path:
    out = Path(out)
    if out.is_dir():
        raise ValueError(f"{out} is a directory; name the report file to write")
    atomic_write(out, render(c).encode())
    return out
