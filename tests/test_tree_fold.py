"""Pure tests of how the page draws a big tree (issue 22, item 6): the columns it fits, the fold markers, the view
state, the search; on the 2,001-node tree an MCTS search grew with the demo models."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

from reasoning.tree import ReasoningTree
from ui.figure import COLUMN_PX, NODE_MAX_PX, FigureOptions, find_matches, tree_figure
from ui.layout import fit_columns
from ui.pages.treeview import next_match
from ui.plots import PAGE_COLUMNS, View, figure_options

FIXTURE = Path(__file__).parent / "data" / "mcts_2000.json.gz"


def grown() -> ReasoningTree:
    return ReasoningTree.from_dict(json.loads(gzip.decompress(FIXTURE.read_bytes())))


def by_name(fig) -> dict:
    return {tr.name: tr for tr in fig.data}


def test_fit_columns_keeps_the_budget_and_the_paths_it_must_show():
    kids = {"0": [f"0.{i}" for i in range(10)], **{f"0.{i}": [f"0.{i}.{j}" for j in range(5)] for i in range(10)}}
    shown = fit_columns(kids, "0", 8, keep=["0.9.4"], key=lambda n: n)
    assert {"0", "0.9", "0.9.4"} <= shown
    hidden_parents = {p for p, cs in kids.items() if p in shown and any(c not in shown for c in cs)}
    leaves = {n for n in shown if not kids.get(n)}
    assert len(hidden_parents) + len(leaves) <= 8  # a column per drawn leaf and per fold marker
    opened = fit_columns(kids, "0", 8, opened=["0.3"], key=lambda n: n)
    assert set(kids["0.3"]) <= opened  # an unfolded node's children are all drawn
    assert fit_columns(kids, "0", 100, rows=2, key=lambda n: n) == {"0", *kids["0"]}  # the row limit folds deeper


def test_the_page_draws_a_grown_tree_in_columns_and_counts_every_folded_node():
    tree = grown()
    fig = tree_figure(tree, figure_options(1, "value", "0.1.0"), validate=True)
    t = by_name(fig)
    nodes, folded = t["nodes"], t["folded"]
    assert "0.1.0" in nodes.customdata and len(nodes.x) < 80
    assert len(nodes.x) + sum(int(s[1:]) for s in folded.text) == len(tree)
    xs = sorted(x for tr in (nodes, folded) for x, y in zip(tr.x, tr.y, strict=True))
    span = max(xs) + 1
    assert fig.layout.meta["min_width"] >= span * COLUMN_PX  # the browser never squeezes a column below COLUMN_PX
    assert max(nodes.marker.size) <= NODE_MAX_PX < COLUMN_PX
    assert span <= PAGE_COLUMNS * 1.3
    points = {(round(x, 6), y) for tr in (nodes, folded) for x, y in zip(tr.x, tr.y, strict=True)}
    assert len(points) == len(nodes.x) + len(folded.x)  # no two drawn points share a place
    assert all(c.startswith("+") for c in folded.customdata)


def test_unfolding_focus_and_search_through_the_view_state():
    tree = grown()
    view = View.parse(View().open("0.0").open("0.0.0").dump())
    assert view.opened == ("0.0", "0.0.0") and View.parse(View(focus="0.5").dump()) == View(focus="0.5")
    assert View.parse("0.5").focus == "0.5" and View.parse("{bad json") == View()
    fig = tree_figure(tree, figure_options(1, "value", None, view.dump()))
    drawn = set(by_name(fig)["nodes"].customdata)
    assert set(tree.children("0.0.0")) <= drawn
    focused = tree_figure(tree, figure_options(1, "value", None, "0.5"))
    assert all(n == "0.5" or n.startswith("0.5.") for n in by_name(focused)["nodes"].customdata)
    assert "whole tree › 0.5" in focused.layout.title.text
    hits = find_matches(tree, "8*3")
    assert hits and all("8*3" in tree.node(n)["text"] for n in hits)
    found = tree_figure(tree, FigureOptions(find="8*3", max_columns=PAGE_COLUMNS, selected=hits[0]))
    assert len(by_name(found)["matches"].x) >= 1  # the selected match is drawn, and ringed
    assert f"{len(hits)} steps match" in found.layout.title.text
    assert next_match(hits, None) == hits[0] and next_match(hits, hits[-1]) == hits[0]
    assert next_match([], "0.1") is None


def test_hover_of_a_fold_marker_is_escaped():
    tree = grown()
    tree.node("0.3")["text"] = "<script>x</script>"
    fig = tree_figure(tree, figure_options(1, "value"))
    hover = " ".join(h for tr in fig.data if tr.hovertext is not None for h in tr.hovertext if h)
    assert "<script>" not in hover
