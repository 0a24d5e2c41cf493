"""Share a tree: one self-contained HTML file (plotly's offline bundle and the tree's data inside, no network) with
the tree, hovers with step text, scores and labels, and the trace of a clicked node.

Escaped like the app: hovers go through the figure builder's escaping; the step texts travel as JSON inside a
`<script type="application/json">` block with `<`, `>` and `&` written as \\u escapes (so no text can close the
block), and the page puts them on screen with `textContent` only, never as HTML.
"""
from __future__ import annotations

import html
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from reasoning.tree import ReasoningTree

from .figure import FigureOptions, tree_figure
from .plots import mean_ratings
from .services.views import AutoMark, auto_marks, gold_mark, label_summary

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1rem; }}
#trace {{ border-collapse: collapse; width: 100%; font-size: 0.85rem; }}
#trace td, #trace th {{ border: 1px solid #ddd; padding: 3px 6px; vertical-align: top; white-space: pre-wrap; }}
#trace th {{ background: #f4f4f4; text-align: left; }}
.hint {{ color: #777; font-size: 0.85rem; }}
</style></head><body>
<h2>{title}</h2>
<p class="hint">{summary} Click a node to read its trace below; hover for the step, scores and labels.</p>
{figure}
<h3 id="trace-title">Trace</h3>
<table id="trace"><thead><tr><th>#</th><th>node</th><th>factor</th><th>step</th><th>PRM</th><th>value</th>
<th>human</th><th>gold</th><th>auto</th></tr></thead><tbody></tbody></table>
<script type="application/json" id="tree-data">{data}</script>
<script>
(function () {{
  const nodes = JSON.parse(document.getElementById("tree-data").textContent);
  const body = document.querySelector("#trace tbody");
  function show(id) {{
    const path = [];
    for (let n = id; n !== null && n !== undefined && nodes[n]; n = nodes[n].parent) path.unshift(n);
    body.replaceChildren();
    path.forEach((n, i) => {{
      const a = nodes[n], tr = document.createElement("tr");
      for (const v of [i, n, a.factor, a.text, a.score, a.value, a.human, a.gold, a.auto]) {{
        const td = document.createElement("td");
        td.textContent = v === null || v === undefined ? "" : String(v);
        tr.appendChild(td);
      }}
      body.appendChild(tr);
    }});
    document.getElementById("trace-title").textContent = "Trace of node " + id;
  }}
  const gd = document.querySelector(".plotly-graph-div");
  gd.on("plotly_click", (ev) => {{
    const p = ev.points.find((q) => q.customdata !== undefined && q.customdata !== null);
    if (p) show(p.customdata);
  }});
  show("0");
}})();
</script>
</body></html>
"""


def _json_for_script(data: Any) -> str:
    """JSON that cannot end the <script> block it sits in, nor open a comment or tag."""
    text = json.dumps(data, ensure_ascii=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _r(x: float | None) -> float | None:
    return None if x is None else round(float(x), 3)


def node_data(tree: ReasoningTree, labels: dict[str, str],
              autos: dict[str, AutoMark] | None = None) -> dict[str, dict[str, Any]]:
    """What the page's trace table shows for each node (plain values; the page writes them as text)."""
    autos = autos or {}
    out = {}
    for n, a in tree.graph.nodes(data=True):
        auto = autos.get(n)
        out[n] = {"parent": a["parent"], "factor": a["factor"] or ("(problem)" if a["parent"] is None else a["origin"]),
                  "text": a["text"], "score": _r(a["score"]), "value": _r(a["value"]), "human": labels.get(n, ""),
                  "gold": gold_mark(tree, n), "auto": auto.text if auto else ""}
    return out


def share_html(tree: ReasoningTree, annotations: Iterable[Any], *, title: str, color_by: str = "value",
               auto_labels: Iterable[Any] = ()) -> str:
    """The whole self-contained page of one tree (colours as `color_by`, "auto" included: the automatic labels
    travel in the hovers, the colours and the trace's auto column)."""
    notes = list(annotations)
    labels = label_summary(notes)
    autos = auto_marks(auto_labels)
    fig = tree_figure(tree, FigureOptions(color_by=color_by, max_nodes=None, uirevision="shared"), labels=labels,
                      ratings=mean_ratings(notes), autos=autos)
    figure = fig.to_html(include_plotlyjs=True, full_html=False, config={"responsive": True})
    summary = f"{len(tree)} nodes, {len(labels)} labeled. Problem: {tree.problem.text}"
    return PAGE.format(title=html.escape(title), summary=html.escape(summary), figure=figure,
                       data=_json_for_script(node_data(tree, labels, autos)))


def write_share(store: Any, session_id: int, out: str | Path, *, color_by: str = "value") -> Path:
    """Write the page of a stored session to `out` atomically (a temporary file renamed): complete or absent."""
    info = store.session(session_id)
    page = share_html(store.load_tree(session_id), store.annotations(session_id),
                      title=f"Reasoning tree · session {info.id} · {info.name}", color_by=color_by,
                      auto_labels=store.auto_labels(session_id))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=".share-", suffix=".html")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(page)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out
