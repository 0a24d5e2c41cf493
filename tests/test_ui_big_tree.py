"""Browser tests of the page at work on a big tree (issue 22, items 6, 8 and 9), on a 2,001-node tree grown by MCTS
with the demo models (tests/data/mcts_2000.json.gz): every drawn node can be clicked, fold markers unfold, Focus
here zooms with breadcrumbs, arrow keys move the selection, a search rings the matching steps; the trace's numbers
are readable at 1400 and 1920 px; a labeler rates a node and its children on one 1400 x 1000 screen."""
from __future__ import annotations

import gzip
import json
import math
import random
from pathlib import Path

import pytest

pytest.importorskip("playwright")

from helpers.browser import type_rating, wait_status  # noqa: E402

from reasoning.tree import ReasoningTree  # noqa: E402

# `app` (url, store on the demo models, one server for this module) and `browser` are fixtures of tests/conftest.py
pytestmark = [pytest.mark.browser, pytest.mark.slow]
FIXTURE = Path(__file__).parent / "data" / "mcts_2000.json.gz"
SCREENSHOT = Path("/tmp/labeler_1400x1000.png")
DOUBLE_CLICK_MS = 350

DRAWN = """() => {
    const gd = document.querySelector('#tree-plot .js-plotly-plot');
    if (!gd || !gd.data || !gd._fullLayout || !gd._fullLayout.xaxis) return null;
    const L = gd._fullLayout, box = gd.getBoundingClientRect(), out = [];
    for (const name of ['nodes', 'folded']) {
        const t = gd.data.find((d) => d.name === name);
        if (!t || !t.customdata) continue;
        t.customdata.forEach((id, i) => out.push({id, kind: name,
            size: Array.isArray(t.marker.size) ? t.marker.size[i] : t.marker.size,
            x: box.left + L._size.l + L.xaxis.d2p(t.x[i]), y: box.top + L._size.t + L.yaxis.d2p(t.y[i])}));
    }
    return {points: out, title: (L.title && L.title.text) || '', width: box.width,
            box: document.querySelector('#tree-plot').getBoundingClientRect().width};
}"""


def grown_tree() -> ReasoningTree:
    return ReasoningTree.from_dict(json.loads(gzip.decompress(FIXTURE.read_bytes())))


@pytest.fixture(scope="module")
def big(app):
    """The grown tree stored once for the module: (url, store, session id, tree)."""
    url, store = app
    tree = grown_tree()
    sid = store.create_session(tree, name="mcts 2000", config={}, provenance={}, catalog=None)
    return url, store, sid, tree


@pytest.fixture
def screen(browser):
    """A 1400 x 1000 page, the labeler's screen."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    yield page
    context.close()


def open_big(page, url: str, sid: int) -> dict:
    page.goto(url)
    page.get_by_role("tab", name="Sessions").click()
    page.locator("#session-pick input").fill(str(sid))
    page.click("#session-open")
    page.wait_for_function(f"() => {{ const d = ({DRAWN})(); return d && d.points.length > 10; }}", timeout=30_000)
    page.get_by_role("tab", name="Explore").click()
    page.evaluate("() => window.scrollTo(0, 0)")
    return settled(page)


def settled(page) -> dict:
    """The drawn points once two reads 300 ms apart agree (a redraw may be under way)."""
    before = page.evaluate(DRAWN)
    for _ in range(30):
        page.wait_for_timeout(300)
        now = page.evaluate(DRAWN)
        if now and now == before:
            return now
        before = now
    return before


def info(page) -> str:
    return page.locator("#node-info textarea, #node-info input").first.input_value()


def wait_selected(page, node_id: str, timeout: int = 8_000) -> None:
    page.wait_for_function("(id) => (document.querySelector('#node-info textarea, #node-info input') || {}).value"
                           "?.startsWith('node ' + id + ' ')", arg=node_id, timeout=timeout)


def assert_apart(drawn: dict) -> None:
    """No two drawn points (nodes and fold markers) closer than the largest marker."""
    pts = drawn["points"]
    biggest = max(p["size"] for p in pts)
    closest = min(math.dist((a["x"], a["y"]), (b["x"], b["y"])) for i, a in enumerate(pts) for b in pts[i + 1:])
    assert closest >= biggest, f"two drawn points {closest:.1f} px apart, markers up to {biggest} px"


def label_boxes(page) -> list[dict]:
    return page.evaluate("""() => [...document.querySelectorAll('#tree-plot .textpoint text')].map((t) => {
        const r = t.getBoundingClientRect(); return {text: t.textContent, l: r.left, r: r.right, t: r.top, b: r.bottom};
    })""")


def test_twenty_random_clicks_each_select_the_node_under_the_cursor(big, screen):
    url, _, sid, tree = big
    drawn = open_big(screen, url, sid)
    assert len(tree) == 2001
    assert_apart(drawn)
    labels = label_boxes(screen)  # the `+N` fold labels print apart
    assert labels and all(a["r"] <= b["l"] or b["r"] <= a["l"] or a["b"] <= b["t"] or b["b"] <= a["t"]
                          for i, a in enumerate(labels) for b in labels[i + 1:])
    nodes = [p for p in drawn["points"] if p["kind"] == "nodes"]
    for p in random.Random(22).sample(nodes, 20):
        screen.wait_for_timeout(DOUBLE_CLICK_MS)  # two clicks closer in time are plotly's double click (reset zoom)
        screen.mouse.click(p["x"], p["y"])
        wait_selected(screen, p["id"])
    assert settled(screen) == drawn  # clicks moved the selection ring only: no redraw


def test_a_fold_unfolds_on_click_and_focus_here_zooms_to_a_subtree_with_breadcrumbs(big, screen):
    url, _, sid, _ = big
    drawn = open_big(screen, url, sid)
    fold = max((p for p in drawn["points"] if p["kind"] == "folded" and p["id"] != "+0"), key=lambda p: p["y"])
    parent = fold["id"][1:]
    screen.evaluate("(b) => { window.__before = b; }", [p["id"] for p in drawn["points"]])
    screen.mouse.click(fold["x"], fold["y"])  # its hidden children are drawn now
    screen.wait_for_function(f"(n) => ({DRAWN})()?.points.some((p) => p.kind === 'nodes' && !window.__before"
                             ".includes(p.id) && p.id.slice(0, p.id.lastIndexOf('.')) === n)", arg=parent,
                             timeout=15_000)
    after = settled(screen)
    assert_apart(after)
    # Focus here sits right under the plot, and zooms to the selected node's subtree, named by its breadcrumbs
    focus = screen.locator("#focus-here").bounding_box()
    plot = screen.locator("#tree-plot").bounding_box()
    assert focus and plot and 0 <= focus["y"] - (plot["y"] + plot["height"]) < 60
    node = next(p for p in after["points"] if p["kind"] == "nodes" and p["id"].count(".") == 1)
    screen.mouse.click(node["x"], node["y"])
    wait_selected(screen, node["id"])
    screen.click("#focus-here")
    screen.wait_for_function(f"(n) => ({DRAWN})()?.title.includes('whole tree › ' + n)", arg=node["id"],
                             timeout=15_000)
    zoomed = settled(screen)
    assert all(p["id"].lstrip("+") == node["id"] or p["id"].lstrip("+").startswith(node["id"] + ".")
               for p in zoomed["points"])
    assert_apart(zoomed)
    screen.click("#zoom-out")
    screen.wait_for_function(f"() => !({DRAWN})()?.title.includes('whole tree ›')", timeout=15_000)


def test_arrow_keys_move_to_the_parent_a_child_and_a_sibling(big, screen):
    url, _, sid, _ = big
    drawn = open_big(screen, url, sid)
    nodes = {p["id"]: p for p in drawn["points"] if p["kind"] == "nodes"}

    def kids(n: str) -> list[str]:
        return sorted((c for c in nodes if c.rsplit(".", 1)[0] == n and c != n), key=lambda c: nodes[c]["x"])

    parent = next(n for n in nodes if len(kids(n)) >= 2 and n != "0")
    first, second = kids(parent)[:2]
    screen.mouse.click(nodes[first]["x"], nodes[first]["y"])
    wait_selected(screen, first)
    screen.keyboard.press("ArrowRight")
    wait_selected(screen, second)
    screen.keyboard.press("ArrowLeft")
    wait_selected(screen, first)
    screen.keyboard.press("ArrowUp")
    wait_selected(screen, parent)
    screen.keyboard.press("ArrowDown")
    wait_selected(screen, first)


def test_a_search_rings_the_matching_steps_and_next_match_selects_them(big, screen):
    url, _, sid, tree = big
    open_big(screen, url, sid)
    box = screen.locator("#tree-find input, #tree-find textarea").first
    box.fill("8*3")
    box.press("Enter")
    want = [n for n in tree.graph.nodes if "8*3" in tree.node(n)["text"]]
    screen.wait_for_function(f"(k) => ({DRAWN})()?.title.includes(k + ' steps match')", arg=len(want),
                             timeout=15_000)
    seen = set()
    for _ in range(3):
        screen.click("#find-next")
        screen.wait_for_function("(seen) => { const v = (document.querySelector('#node-info textarea') || {}).value"
                                 " || ''; const id = v.split(' ')[1]; return v.startsWith('node ') && !seen.includes(id)"
                                 "; }", arg=sorted(seen), timeout=15_000)
        node = info(screen).split(" ")[1]
        assert node in want
        seen.add(node)
        assert "8*3" in screen.locator("#node-text textarea").input_value()
    rings = screen.evaluate("""() => { const gd = document.querySelector('#tree-plot .js-plotly-plot');
        const t = gd.data.find((d) => d.name === 'matches'); return t ? t.x.length : 0; }""")
    assert rings >= 1
    screen.click("#focus-here")  # zooming to the selected match keeps the search
    screen.wait_for_function(f"(n) => {{ const t = ({DRAWN})()?.title || ''; return t.includes('whole tree › ')"
                             " && t.includes('steps match') && t.includes(n); }", arg=node, timeout=15_000)


@pytest.mark.parametrize("width", [1400, 1920])
def test_the_trace_shows_every_header_and_number_whole(big, browser, width):
    url, _, sid, tree = big
    context = browser.new_context(viewport={"width": width, "height": 1000})
    page = context.new_page()
    try:
        drawn = open_big(page, url, sid)
        deep = max((p for p in drawn["points"] if p["kind"] == "nodes"), key=lambda p: p["id"].count("."))
        page.mouse.click(deep["x"], deep["y"])
        wait_selected(page, deep["id"])
        page.wait_for_function("(n) => document.querySelectorAll('#trace-table [data-testid^=\"cell-\"][data-col=\"1\"]')"
                               ".length === n", arg=len(tree.path(deep["id"])), timeout=10_000)
        cut = page.evaluate("""() => {
            const bad = [];
            const lines = (el) => { const r = document.createRange(); r.selectNodeContents(el);
                return [...r.getClientRects()].filter((q) => q.width > 0); };
            for (const th of document.querySelectorAll('#trace-table th')) {
                const text = th.querySelector('.header');
                const rects = lines(text), box = th.getBoundingClientRect();
                if (rects.length !== 1 || rects[0].right > box.right || text.innerText.trim() !== th.title)
                    bad.push('header ' + th.title + ': ' + text.innerText);
            }
            for (const cell of document.querySelectorAll('#trace-table [role=gridcell][data-row]')) {
                const text = cell.querySelector('span'), i = Number(cell.dataset.col);
                if (!text || !text.innerText.trim()) continue;
                const rects = lines(text), box = cell.getBoundingClientRect();
                const numeric = i >= 5 && i <= 9;
                if (rects.some((q) => q.right > box.right + 1) || (numeric && rects.length !== 1)
                    || /…|\\.\\.\\.$/.test(text.innerText)) bad.push('cell ' + i + ': ' + text.innerText);
            }
            return bad; }""")
        assert cut == [], cut
        steps = page.evaluate("() => [...document.querySelectorAll('#trace-table [role=gridcell][data-col=\"4\"]')]"
                              ".map((c) => c.innerText.trim())")
        assert steps[1:] == [tree.node(n)["text"].strip() for n in tree.path(deep["id"])[1:]]
    finally:
        context.close()


def in_view(page, selector: str) -> bool:
    return page.evaluate("""(sel) => { const el = document.querySelector(sel); if (!el) return false;
        const r = el.getBoundingClientRect();
        return r.height > 0 && r.top >= 0 && r.bottom <= window.innerHeight && r.left >= 0
            && r.right <= window.innerWidth; }""", selector)


def test_a_labeler_rates_a_node_and_its_children_on_one_screen(big, screen):
    url, store, sid, tree = big
    drawn = open_big(screen, url, sid)
    node = next(p for p in drawn["points"] if p["kind"] == "nodes" and p["id"] != "0"
                and len(tree.children(p["id"])) >= 2)
    screen.mouse.click(node["x"], node["y"])
    wait_selected(screen, node["id"])
    screen.wait_for_timeout(500)
    assert screen.evaluate("() => window.scrollY") == 0
    for sel in ("#tree-plot", "#node-info", "#node-text", "#node-scores", "#rate-good", "#rate-bad", "#status",
                "#save-children", "#children-table [data-testid='cell-0-6']"):
        assert in_view(screen, sel), f"{sel} is not on the 1400 x 1000 screen"
    screen.wait_for_function("() => document.querySelector('#node-scores').innerText.includes('PRM')",
                             timeout=10_000)
    screen.click("#rate-bad")
    wait_status(screen, f"rated node {node['id']} -1")
    type_rating(screen, 0, "+1")
    screen.click("#save-children")
    wait_status(screen, "saved 1 rating")
    assert screen.evaluate("() => window.scrollY") == 0 and in_view(screen, "#status")
    ratings = {(a.node_id, a.rating) for a in store.annotations(sid)}
    assert (node["id"], -1) in ratings and (tree.children(node["id"])[0], 1) in ratings
    screen.screenshot(path=str(SCREENSHOT))
