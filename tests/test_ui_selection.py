"""Browser tests of selecting and rating on the tree plot once clicks no longer redraw it (issue 13's speed work):
the selection ring and the inspector follow the clicked node, a rating lands on it and shows in its hover, a row of
the trace selects that node, and a resumed search leaves the inspector showing the node as it is now."""
from __future__ import annotations

import pytest

pytest.importorskip("playwright")

from helpers.browser import click_node, hover_node, open_session, shot, wait_status  # noqa: E402

from reasoning.problems import parse_problem_text  # noqa: E402
from reasoning.tree import ReasoningTree  # noqa: E402
from reasoning.types import Step  # noqa: E402

# `app` (url, store on the demo models), `browser` and `page` are fixtures of tests/conftest.py
pytestmark = [pytest.mark.browser, pytest.mark.slow]

RING_AT = """(id) => { const gd = document.querySelector('#tree-plot .js-plotly-plot');
    const t = gd && gd.data && gd.data.find((d) => d.name === 'nodes'); if (!t) return false;
    const rings = (gd.layout.shapes || []).filter((s) => s.name === 'selected'), i = t.customdata.indexOf(id);
    return i >= 0 && rings.length === 1 && rings[0].xanchor === t.x[i] && rings[0].yanchor === t.y[i]; }"""


def stored(store, name: str) -> tuple[int, ReasoningTree]:
    """root -> 0.0 (three children: 0.0.0, 0.0.1, 0.0.2) and 0.1 (a leaf)."""
    tree = ReasoningTree(parse_problem_text("Use 4 7 8 8 to make 24.", name))  # Countdown, numbers and all
    a = tree.add_child("0", Step("8+7=15 (left: 4 8 15)", "compute"), score=0.5, value=0.5)
    tree.add_child("0", Step("8-4=4 (left: 4 7 8)", "compute"), score=0.3, value=0.3)
    for text in ("15-8=7 (left: 4 7)", "8/4=2 (left: 2 15)", "15+8=23 (left: 4 23)"):
        tree.add_child(a, Step(text, "compute"), score=0.4, value=0.4)
    return store.create_session(tree, name=name, config={}, provenance={}, catalog=None), tree


def info(page) -> str:
    return page.locator("#node-info textarea, #node-info input").first.input_value()


def trace_nodes(page) -> list[str]:
    """The node column of the trace table as shown."""
    return page.evaluate("""() => {
        const rows = {};
        for (const c of document.querySelectorAll('#trace-table [role=gridcell][data-row]')) {
            if (c.dataset.col === '1') rows[c.dataset.row] = c.innerText.split('\\n')[0].trim();
        }
        return Object.keys(rows).sort((a, b) => a - b).map((k) => rows[k]);
    }""")


def test_the_ring_and_the_inspector_follow_the_clicked_node_and_its_rating_shows_in_its_hover(app, page):
    url, store = app
    sid, tree = stored(store, "ring")
    open_session(page, url, sid, len(tree))
    click_node(page, "0.0")
    page.wait_for_function(RING_AT, arg="0.0", timeout=10_000)
    click_node(page, "0.1")
    page.wait_for_function(RING_AT, arg="0.1", timeout=10_000)  # one ring, now on 0.1
    assert info(page).startswith("node 0.1 ")
    page.click("#rate-good")
    wait_status(page, "rated node 0.1 +1")
    assert {a.node_id: a.rating for a in store.annotations(sid)} == {"0.1": 1}
    page.wait_for_function("() => document.querySelector('#trace-table').innerText.includes('anonymous +1')",
                           timeout=10_000)
    # the hover of the rated node shows its new label (patched in the browser, without a redraw)
    for _ in range(20):
        hover_node(page, "0.1")
        if "anonymous +1" in (page.locator("#tree-plot .hoverlayer .hovertext").first.text_content() or ""):
            break
        page.wait_for_timeout(300)
    else:
        raise AssertionError("the hover of node 0.1 never showed its rating")
    page.wait_for_function(RING_AT, arg="0.1", timeout=10_000)  # the ring stayed on the rated node
    shot(page, "21-ring-and-hover-after-rating")


def test_clicking_a_row_of_the_trace_selects_that_node(app, page):
    url, store = app
    sid, tree = stored(store, "trace row")
    open_session(page, url, sid, len(tree))
    click_node(page, "0.0.1")
    page.wait_for_function("() => document.querySelectorAll('#trace-table [data-testid^=cell-2-]').length > 0")
    assert trace_nodes(page) == ["0", "0.0", "0.0.1"]
    page.locator("#trace-table [data-testid='cell-1-4']").click()  # the step text of row 1: node 0.0
    page.wait_for_function("() => (document.querySelector('#node-info textarea, #node-info input') || {}).value"
                           "?.startsWith('node 0.0 ')", timeout=10_000)
    page.wait_for_function(RING_AT, arg="0.0", timeout=10_000)
    page.wait_for_function("() => !document.querySelector('#trace-table').innerText.includes('15-8=7')")
    assert trace_nodes(page) == ["0", "0.0"]
    assert page.locator("#node-text textarea").input_value() == "8+7=15 (left: 4 8 15)"
    page.click("#rate-bad")  # the rating goes to the node selected from the trace
    wait_status(page, "rated node 0.0 -1")
    assert {a.node_id: a.rating for a in store.annotations(sid)} == {"0.0": -1}
    shot(page, "22-trace-row-selected")


def children_nodes(page) -> list[str]:
    return page.evaluate("""() => [...document.querySelectorAll('#children-table [role=gridcell][data-row]')]
        .filter((c) => c.dataset.col === '0').map((c) => c.innerText.split('\\n')[0].trim())""")


def test_after_a_resume_the_inspector_shows_the_selected_node_as_it_is_now(app, page):
    url, store = app
    sid, tree = stored(store, "resume")
    open_session(page, url, sid, len(tree))
    click_node(page, "0.1")  # a leaf: the resumed search grows its children
    page.get_by_text("Children of the selected node").click()
    assert children_nodes(page) == []
    before = info(page)
    page.locator("#resume-budget input").fill("3")
    page.click("#resume")
    wait_status(page, "finished", timeout=180)
    kids = store.load_tree(sid).children("0.1")
    assert kids, "the resumed search grew no child of 0.1"
    page.wait_for_function("(n) => document.querySelectorAll('#children-table [role=gridcell][data-col=\"0\"]')"
                           ".length === n", arg=len(kids), timeout=10_000)
    assert sorted(children_nodes(page)) == sorted(kids)
    visits = store.load_tree(sid).node("0.1")["visits"]
    row = page.locator("#trace-table [data-testid='cell-1-8']").inner_text().strip()  # visits of 0.1
    assert row == str(visits) and visits > 0
    assert info(page).startswith("node 0.1 ") and before.startswith("node 0.1 ")
    page.wait_for_function(RING_AT, arg="0.1", timeout=10_000)
    shot(page, "23-resumed")
