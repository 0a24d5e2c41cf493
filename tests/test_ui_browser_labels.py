"""Issue 13 in headless Chromium: the gold check of a finished path in the plot's hover, colour by auto label (rollout
values from the stored automatic labels, with the label in the hover and the trace), and a trace box that shows a
whole typical trace without scrolling. Screenshots go to test-artifacts/."""
from __future__ import annotations

import pytest

pytest.importorskip("playwright")

from helpers.browser import click_node, hover_node, open_session, shot  # noqa: E402

from reasoning.problems import parse_problem_text  # noqa: E402
from reasoning.tree import ReasoningTree  # noqa: E402
from reasoning.types import Problem, Step  # noqa: E402
from storage.records import AutoLabel  # noqa: E402

# the served app (`app`), `browser` and `page` are fixtures of tests/conftest.py
pytestmark = [pytest.mark.browser, pytest.mark.slow]
LONG = ("Let's call the price of a pencil p and the price of a jumbo eraser e; then three pencils and an eraser cost "
        "124 cents, and five pencils and an eraser cost 182 cents, step {}.")


def hover_text(page, node_id: str) -> str:
    hover_node(page, node_id)
    return page.locator("#tree-plot .hoverlayer").text_content() or ""


def test_the_hover_of_a_finished_path_shows_its_gold_check(app, page):
    url, store = app
    tree = ReasoningTree(parse_problem_text("Use 4 7 8 8 to make 24."))
    a = tree.add_child("0", Step("8/8=1 (left: 1 4 7)", "compute"), score=0.5, value=0.5)
    b = tree.add_child(a, Step("7-1=6 (left: 4 6)", "compute"), score=0.5, value=0.5)
    right = tree.add_child(b, Step("answer", "conclude", terminal=True, answer="(7-8/8)*4"), score=0.9, value=0.9)
    wrong = tree.add_child("0", Step("answer", "conclude", terminal=True, answer="(8-7)*4*8"), score=0.2, value=0.2)
    sid = store.create_session(tree, name="gold hover", config={}, provenance={}, catalog=None)
    open_session(page, url, sid, len(tree))
    assert "✓ correct" in hover_text(page, right)
    shot(page, "10-gold-hover")
    h = hover_text(page, wrong)
    assert "✗ wrong" in h and "✓" not in h
    assert "✓" not in hover_text(page, a) and "✗" not in hover_text(page, a), "a step that is not an answer"


def test_colour_by_auto_label_with_the_label_in_the_hover_and_the_trace(app, page):
    url, store = app
    tree = ReasoningTree(Problem("auto", "What is 6 times 7?", answer="42"))
    a = tree.add_child("0", Step("6 times 7 is 42.", "compute"), score=0.5, value=0.5)
    b = tree.add_child("0", Step("6 times 7 is 36.", "compute"), score=0.5, value=0.5)
    sid = store.create_session(tree, name="auto labels", config={}, provenance={}, catalog=None)
    store.set_auto_labels(sid, [AutoLabel(a, "rollout", 4, 3, 0.75, True)])
    open_session(page, url, sid, len(tree))
    page.locator("#colour-by").get_by_text("auto", exact=True).click()
    colours = page.wait_for_function(
        "() => { const gd = document.querySelector('#tree-plot .js-plotly-plot');"
        " const t = gd && gd.data && gd.data.find((d) => d.name === 'nodes');"
        " const title = t && t.marker.colorbar && t.marker.colorbar.title && t.marker.colorbar.title.text;"
        " return t && String(title).includes('auto label') &&"
        " Object.fromEntries(t.customdata.map((id, i) => [id, t.marker.color[i]])); }", timeout=30_000).json_value()
    assert colours[a] == pytest.approx(0.75)
    assert colours[b] == colours["0"] and colours[b] < 0, "unlabeled nodes are grey 'unscored'"
    assert "auto: rollouts 3/4 = 0.75 (rollout)" in hover_text(page, a)
    shot(page, "11-colour-by-auto")
    click_node(page, a)
    assert "rollouts 3/4 = 0.75 (rollout)" in page.locator("#trace-table").inner_text()


def visible_trace_rows(page) -> dict:
    """How many trace rows the table shows whole without scrolling, of how many it holds."""
    return page.evaluate("""() => {
        const t = document.querySelector('#trace-table');
        const cells = [...t.querySelectorAll('[role=gridcell][data-row]')];
        let box = null;
        for (let e = cells[0] && cells[0].parentElement; e && e !== t.parentElement; e = e.parentElement) {
            const o = getComputedStyle(e).overflowY;
            if (o === 'auto' || o === 'scroll' || o === 'hidden') { box = e.getBoundingClientRect(); break; }
        }
        box = box || t.getBoundingClientRect();
        const seen = new Set(), whole = new Set();
        for (const c of cells) {
            const r = c.getBoundingClientRect();
            seen.add(c.dataset.row);
            if (r.height > 0 && r.top >= box.top - 1 && r.bottom <= box.bottom + 1) whole.add(c.dataset.row);
        }
        return {whole: whole.size, rows: seen.size};
    }""")


def test_the_trace_shows_a_long_trace_without_scrolling(app, page):
    url, store = app
    tree = ReasoningTree(Problem("long", "Three pencils and a jumbo eraser cost $\\$1.24$. " * 3, answer="29"))
    nid = "0"
    for i in range(9):
        nid = tree.add_child(nid, Step(LONG.format(i), "compute"), score=0.5, value=0.5, iteration=i + 1)
    sid = store.create_session(tree, name="long trace", config={}, provenance={}, catalog=None)
    open_session(page, url, sid, len(tree))
    click_node(page, nid)
    page.wait_for_function("(id) => document.querySelector('#trace-table').innerText.includes(id)", arg=nid)
    page.locator("#trace-table").scroll_into_view_if_needed()
    shot(page, "12-trace-rows")
    got = visible_trace_rows(page)
    assert got["whole"] >= 8, f"the trace box shows {got['whole']} of {len(tree)} rows without scrolling"
