"""Pure tests of the tree layout and the tree figure: traces, escaping, colours, symbols, WebGL switch."""
from __future__ import annotations

import plotly.graph_objects as go
import pytest

from reasoning.tree import ReasoningTree
from reasoning.types import Problem, Step
from ui.analytics import analytics_figure, factor_depth_stats
from ui.figure import (
    HUMAN_COLORS,
    PRUNED,
    SYMBOLS,
    UNSCORED,
    FigureOptions,
    escape_hover,
    factor_style,
    factor_symbols,
    tree_figure,
)
from ui.layout import tidy_layout

EVIL = '<script>alert(1)</script><img src=x onerror="alert(2)"> & <b>x</b>'


def small_tree() -> ReasoningTree:
    """0 -> 0.0 (propose, scored .9) -> 0.0.0 (verify, .4, terminal); 0 -> 0.1 (compute, unscored, pruned)."""
    t = ReasoningTree(Problem("p", "Use 4 7 8 8 to make 24.", domain="countdown"))
    a = t.add_child("0", Step(EVIL, "propose"), score=0.9, value=0.9, prior=0.5, iteration=1)
    t.add_child(a, Step("8-7=1", "verify", terminal=True, answer="24"), score=0.4, value=0.4, iteration=2)
    b = t.add_child("0", Step("4*8=32", "compute"), iteration=1)
    t.set_pruned(b)
    t.node(a)["visits"], t.node(a)["value_sum"] = 4, 2.0
    return t


def traces(fig: go.Figure) -> dict[str, list]:
    out: dict[str, list] = {}
    for tr in fig.data:
        out.setdefault(tr.name, []).append(tr)
    return out


def nodes_trace(fig: go.Figure):
    (tr,) = traces(fig)["nodes"]
    return tr


def test_layout_is_tidy():
    kids = {"0": ["0.0", "0.1"], "0.0": ["0.0.0", "0.0.1", "0.0.2"]}
    pos = tidy_layout(kids, "0")
    assert pos["0.0.0"] == (0.0, 2) and pos["0.0.2"] == (2.0, 2)
    assert pos["0.0"] == (1.0, 1) and pos["0.1"] == (3.0, 1)
    assert pos["0"] == (2.0, 0)
    # no two nodes share a position, and a deep chain does not hit the recursion limit
    chain = {str(i): [str(i + 1)] for i in range(5000)}
    assert len(set(tidy_layout(chain, "0").values())) == 5001


def test_one_edge_trace_one_node_trace_and_legend_entries():
    fig = tree_figure(small_tree(), validate=True)
    by = traces(fig)
    assert len(by["edges"]) == 1 and len(by["nodes"]) == 1
    assert len(nodes_trace(fig).x) == 4
    assert all(tr.type == "scatter" for tr in fig.data)
    legend = [tr for tr in fig.data if tr.showlegend and tr.name not in ("best path",)]
    assert {tr.name for tr in legend} == {"propose", "verify", "compute"}
    assert all(list(tr.x) == [None] for tr in legend)  # legend-only entries carry no data
    assert list(nodes_trace(fig).customdata) == ["0", "0.0", "0.0.0", "0.1"]


def test_hover_text_is_escaped():
    fig = tree_figure(small_tree(), validate=True)
    hover = " ".join(nodes_trace(fig).hovertext)
    assert "<script>" not in hover and "<img" not in hover and "<b>x</b>" not in hover
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=\"alert(2)\"&gt; &amp;" in hover
    edge_hover = [h for h in traces(fig)["edges"][0].hovertext if h]
    assert any("factor: propose" in h for h in edge_hover)
    assert escape_hover("<a href='javascript:x'>") == "&lt;a href='javascript:x'&gt;"


def test_colours_symbols_sizes_and_selection():
    t = small_tree()
    fig = tree_figure(t, FigureOptions(color_by="score", selected="0.0"))
    nt = nodes_trace(fig)
    colors = dict(zip(nt.customdata, nt.marker.color, strict=True))
    assert colors["0.0"] == pytest.approx(0.9) and colors["0.0.0"] == pytest.approx(0.4)
    assert colors["0.1"] == PRUNED  # pruned nodes are greyed
    assert colors["0"] == UNSCORED  # the root has no PRM score
    symbols = dict(zip(nt.customdata, nt.marker.symbol, strict=True))
    assert symbols["0.0"] != symbols["0.0.0"] and symbols["0.0"] in SYMBOLS
    sizes = dict(zip(nt.customdata, nt.marker.size, strict=True))
    assert sizes["0.0"] > sizes["0.0.0"]  # size grows with visits
    (ring,) = fig.layout.shapes  # the selection: a ring around the selected node, and only there
    at = dict(zip(nt.customdata, zip(nt.x, nt.y, strict=True), strict=True))
    assert (ring.name, (ring.xanchor, ring.yanchor)) == ("selected", at["0.0"])
    assert not tree_figure(t, FigureOptions(color_by="score")).layout.shapes
    assert nt.marker.colorbar.title.text == "score"
    q = nodes_trace(tree_figure(t, FigureOptions(color_by="q")))
    assert dict(zip(q.customdata, q.marker.color, strict=True))["0.0"] == pytest.approx(0.5)


def test_best_path_and_replay():
    t = small_tree()
    fig = tree_figure(t)
    (best,) = traces(fig)["best path"]
    assert len(best.x) == 3  # root -> 0.0 -> 0.0.0 (the answer)
    early = tree_figure(t, FigureOptions(max_iteration=1))
    assert list(nodes_trace(early).customdata) == ["0", "0.0", "0.1"]


def test_webgl_past_a_thousand_nodes():
    t = ReasoningTree(Problem("p", "q"))
    for i in range(1100):
        t.add_child("0" if i < 10 else f"0.{i % 10}", Step(f"s{i}", "propose"), score=0.5, value=0.5)
    fig = tree_figure(t, FigureOptions(max_nodes=None))
    assert {tr.type for tr in fig.data} == {"scattergl"}
    assert len(traces(fig)["nodes"]) == 1


def test_factor_symbols_are_stable_and_bad_options_rejected():
    got = factor_symbols(["a", None, "b", "a"])
    assert list(got) == ["a", "b"] and set(got.values()) <= set(SYMBOLS)
    assert factor_symbols(["b"]) == {"b": got["b"]}  # the same name, the same symbol, whatever came before
    with pytest.raises(ValueError, match="color_by"):
        FigureOptions(color_by="colour")


def test_analytics_by_factor_and_depth():
    stats = factor_depth_stats(small_tree())
    assert stats[("propose", 1)]["nodes"] == 1 and stats[("propose", 1)]["visits"] == 4
    assert ("compute", 1) not in stats  # pruned steps are left out
    fig = analytics_figure(small_tree())
    assert len(fig.data) == 4


def test_hover_says_how_often_a_merged_step_was_sampled():
    t = small_tree()
    t.node("0.0")["meta"] = {"samples": 3}
    hover = dict(zip(nodes_trace(tree_figure(t)).customdata, nodes_trace(tree_figure(t)).hovertext, strict=True))
    assert "sampled 3×" in hover["0.0"] and "sampled" not in hover["0.0.0"]


def test_one_factor_one_symbol_and_colour_in_every_tree():
    """verify was a square in one session and a diamond in another: now the catalog says how each factor looks."""
    from reasoning.factors import load_catalog

    catalog = load_catalog()
    styles = {f.name: (f.symbol, f.color) for f in catalog}
    assert len({s for s, _ in styles.values()}) == len(styles) and len({c for _, c in styles.values()}) == len(styles)
    for first in ("verify", "compute"):
        t = ReasoningTree(Problem("p", "q"))
        t.add_child("0", Step("a", first), score=0.5, value=0.5)
        t.add_child("0", Step("b", "verify" if first != "verify" else "compute"), score=0.5, value=0.5)
        t.add_child("0", Step("c", "imported-kind"), score=0.5, value=0.5)
        nt = nodes_trace(tree_figure(t, FigureOptions(color_by="factor")))
        by = {t.node(n)["factor"]: (sym, col) for n, sym, col in zip(nt.customdata, nt.marker.symbol, nt.marker.color,
                                                                       strict=True) if n != "0"}
        assert by["verify"] == styles["verify"] and by["compute"] == styles["compute"]
        assert by["imported-kind"] == factor_style("imported-kind")


def test_colour_by_human_label_with_a_legend():
    t = small_tree()
    fig = tree_figure(t, FigureOptions(color_by="human"), ratings={"0.0": 1.0, "0.0.0": -1.0})
    colors = dict(zip(nodes_trace(fig).customdata, nodes_trace(fig).marker.color, strict=True))
    assert colors["0.0"] == HUMAN_COLORS["good (+1)"] and colors["0.0.0"] == HUMAN_COLORS["bad (-1)"]
    assert colors["0"] == HUMAN_COLORS["unlabeled"]
    assert {"good (+1)", "bad (-1)", "unlabeled"} <= {tr.name for tr in fig.data if tr.showlegend}


def test_a_large_tree_folds_its_least_visited_subtrees_and_keeps_the_best_path():
    t = ReasoningTree(Problem("p", "q"))
    for i in range(2000):
        parent = "0" if i < 20 else f"0.{i % 20}" if i < 400 else f"0.{i % 20}.{(i // 20) % 19}"
        t.add_child(parent, Step(f"s{i}", "compute"), score=0.5, value=0.5)
    t.node("0.3")["visits"] = 50
    fig = tree_figure(t, FigureOptions(max_nodes=300, selected="0.7.3"))
    shown = list(nodes_trace(fig).customdata)
    assert len(shown) <= 300 + 3 and "0.7.3" in shown and "0.3" in shown
    folded = traces(fig)["folded"][0]
    assert sum(int(x[1:]) for x in folded.text) + len(shown) == len(t)  # every node is shown or counted
    focus = tree_figure(t, FigureOptions(focus="0.5"))
    assert set(nodes_trace(focus).customdata) == {n for n in t.graph.nodes if n == "0.5" or n.startswith("0.5.")}


def hovers(fig: go.Figure) -> dict[str, str]:
    nt = nodes_trace(fig)
    return dict(zip(nt.customdata, nt.hovertext, strict=True))


def test_a_finished_path_shows_its_gold_check_in_the_hover():
    """Issue 13: the tick or cross of the status and the trace is in the hover too, for checked and imported answers."""
    t = ReasoningTree(Problem("p", "Use 4 7 8 8 to make 24.", domain="countdown", meta={"numbers": [4, 7, 8, 8],
                                                                                       "target": 24}))
    right = t.add_child("0", Step("done", "conclude", terminal=True, answer="(7-8/8)*4"), score=0.5, value=0.5)
    wrong = t.add_child("0", Step("done", "conclude", terminal=True, answer="(8-7)*4*8"), score=0.5, value=0.5)
    step = t.add_child("0", Step("8-7=1", "compute"), score=0.5, value=0.5)
    flagged = t.add_child("0", Step("imported", None, terminal=True, answer="x"), meta={"correct": True})
    h = hovers(tree_figure(t, validate=True))
    assert "answer: (7-8/8)*4 · ✓ correct" in h[right] and "answer: (8-7)*4*8 · ✗ wrong" in h[wrong]
    assert "✓" not in h[step] and "✗" not in h[step]
    assert "✓ correct (imported)" in h[flagged]


def test_colour_by_auto_label_with_its_colour_bar_and_hover():
    from ui.services.views import AutoMark

    t = small_tree()
    autos = {"0.0": AutoMark(0.75, "rollouts 3/4 = 0.75 (rollout)"), "0.0.0": AutoMark(None, "no estimate (x)"),
             "0.1": AutoMark(1.0, "rollouts 1/1 = 1.00 (rollout)")}
    fig = tree_figure(t, FigureOptions(color_by="auto"), autos=autos, validate=True)
    nt = nodes_trace(fig)
    colors = dict(zip(nt.customdata, nt.marker.color, strict=True))
    assert colors["0.0"] == pytest.approx(0.75)
    assert colors["0.0.0"] == UNSCORED and colors["0"] == UNSCORED, "unlabeled nodes are grey 'unscored'"
    assert colors["0.1"] == PRUNED
    assert "auto label" in nt.marker.colorbar.title.text
    assert "unscored" in list(nt.marker.colorbar.ticktext)
    h = hovers(fig)
    assert "auto: rollouts 3/4 = 0.75 (rollout)" in h["0.0"] and "auto:" not in h["0"]
    evil = tree_figure(t, FigureOptions(color_by="auto"), autos={"0.0": AutoMark(0.5, EVIL)})
    assert "<script>" not in hovers(evil)["0.0"]
