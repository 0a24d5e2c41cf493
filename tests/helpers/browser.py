"""Helpers for the tests that drive the explorer in headless Chromium (Playwright's sync API): screenshots to
test-artifacts/, the tree plot's nodes and clicks on them, the status line and other text boxes, Gradio dropdowns,
number boxes and the children table, keystrokes, the annotator's name, and the import report.

Importing this module skips the importing test module when Playwright or Debian's Chromium is missing, before its
app starts (conftest's `browser` fixture would skip only then). The fixtures (`app`, `browser`, `page`) are
tests/conftest.py's."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

pytest.importorskip("playwright")
from playwright.sync_api import Page  # noqa: E402

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
RATING_COL = 6  # the children table's columns: node, factor, step, PRM, value, visits, rating

if not Path("/usr/bin/chromium").exists():  # before the app starts (conftest's `browser` would skip only then)
    pytest.skip("Debian chromium is not installed (apt-get install chromium chromium-driver)", allow_module_level=True)


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


# -- the tree plot -------------------------------------------------------------------------------------------------
def plot_nodes(page: Page) -> list[dict]:
    """Node ids with their on-screen centres (viewport coordinates, plot scrolled into view), from the node trace."""
    return page.evaluate("""() => {
        const gd = document.querySelector('#tree-plot .js-plotly-plot');
        if (gd) gd.scrollIntoView({block: 'center'});
        if (!gd || !gd.data || !gd._fullLayout || !gd._fullLayout.xaxis) return [];
        const t = gd.data.find((d) => d.name === 'nodes');
        if (!t) return [];
        const L = gd._fullLayout, box = gd.getBoundingClientRect();
        return t.customdata.map((id, i) => ({id,
            x: box.left + L._size.l + L.xaxis.d2p(t.x[i]), y: box.top + L._size.t + L.yaxis.d2p(t.y[i])}));
    }""")


def settled_nodes(page: Page) -> list[dict]:
    """Node positions once two reads 300 ms apart agree (a redraw may still be under way)."""
    before = plot_nodes(page)
    for _ in range(30):
        page.wait_for_timeout(300)
        now = plot_nodes(page)
        if now and now == before:
            return now
        before = now
    return before


def at_node(page: Page, node_id: str, act, shown, what: str) -> None:
    """Do `act(x, y)` at a node's settled position until `shown()` returns; a redraw may move the plot under the
    mouse, so the positions are read again before each of three tries."""
    for _ in range(3):
        node = next(n for n in settled_nodes(page) if n["id"] == node_id)
        act(node["x"], node["y"])
        try:
            shown()
            return
        except Exception:  # noqa: BLE001 - the plot moved under the mouse; read the positions again
            continue
    raise AssertionError(f"{what} node {node_id} on the plot never worked")


def click_node(page: Page, node_id: str) -> None:
    """Click a node by its position on the plot, then wait for the inspector to show it."""
    at_node(page, node_id, page.mouse.click, lambda: page.wait_for_function(
        "(id) => (document.querySelector('#node-info textarea, #node-info input') || {}).value"
        "?.startsWith('node ' + id + ' ')", arg=node_id, timeout=8_000), "clicking")


def hover_node(page: Page, node_id: str) -> None:
    """Move the mouse onto a node (from outside the plot, so that plotly sees a fresh move) until its hover shows."""
    def move(x, y):
        page.mouse.move(0, 0)
        page.mouse.move(x, y, steps=4)

    at_node(page, node_id, move, lambda: page.wait_for_selector("#tree-plot .hoverlayer .hovertext", timeout=8_000),
            "hovering over")


def open_session(page: Page, url: str, sid: int, nodes: int) -> None:
    """Open a stored session from the Sessions tab and wait for its tree (of `nodes` nodes) on the plot."""
    page.goto(url)
    page.get_by_role("tab", name="Sessions").click()
    page.locator("#session-pick input").fill(str(sid))
    page.click("#session-open")
    page.wait_for_function(
        "(n) => { const gd = document.querySelector('#tree-plot .js-plotly-plot');"
        " const t = gd && gd.data && gd.data.find((d) => d.name === 'nodes'); return t && t.x.length === n; }",
        arg=nodes, timeout=30_000)


# -- the status line and other text boxes --------------------------------------------------------------------------
def status(page: Page) -> str:
    return page.locator("#status textarea, #status input").first.input_value()


def wait_status(page: Page, needle: str, timeout: float = 60) -> str:
    end = time.time() + timeout
    while time.time() < end:
        text = status(page)
        if needle in text:
            return text
        page.wait_for_timeout(200)
    raise AssertionError(f"status never said {needle!r}; it says {status(page)!r}")


def session_id(page: Page) -> int:
    return int(status(page).split("session ", 1)[1].split(":", 1)[0])


def value(page: Page, elem_id: str) -> str:
    return page.locator(f"#{elem_id} textarea, #{elem_id} input").first.input_value()


def wait_value(page: Page, elem_id: str, needle: str, timeout: float = 60) -> str:
    end = time.time() + timeout
    while time.time() < end:
        text = value(page, elem_id)
        if needle in text:
            return text
        page.wait_for_timeout(200)
    raise AssertionError(f"#{elem_id} never said {needle!r}; it says {value(page, elem_id)!r}")


def import_report(page, needle: str, timeout: float = 30_000) -> str:
    page.wait_for_function("(s) => (document.querySelector('#import-report textarea') || {}).value?.includes(s)",
                           arg=needle, timeout=timeout)
    return page.locator("#import-report textarea").input_value()


# -- typing and choosing as a user does ----------------------------------------------------------------------------
def press(page: Page, key: str) -> None:
    """A keystroke with the focus on the page itself (keys typed into a text box are text, not shortcuts)."""
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    page.keyboard.press(key)


def set_annotator(page: Page, name: str) -> None:
    """Type the annotator's name once the page has restored the saved one (which would overwrite it on load)."""
    box = page.locator("#annotator input")
    for _ in range(20):
        box.fill(name)
        box.press("Tab")
        page.wait_for_timeout(1500)
        if box.input_value() == name:
            page.wait_for_timeout(1500)
            if box.input_value() == name:
                return
    raise AssertionError(f"the annotator box does not keep {name!r}")


def set_number(page: Page, elem_id: str, n: int) -> None:
    """Type a number and leave the box, so the page has the new value before a button sends it."""
    box = page.locator(f"#{elem_id} input").first
    box.wait_for(state="visible")
    page.wait_for_timeout(300)  # an accordion just opened mounts its boxes; a value typed during the mount was reset
    box.fill(str(n))
    box.press("Tab")
    page.wait_for_timeout(500)
    assert box.input_value() == str(n)


def pick(page, elem_id: str, option: str) -> None:
    """Choose an option of a Gradio dropdown as a user does: open it, click the option."""
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=option, exact=True).click()


def type_rating(page, row: int, value: str, delay: float = 0) -> None:
    """Click the rating cell of a child once and type, as a user does (no double click), fast or slowly."""
    cell = f"#children-table [data-testid='cell-{row}-{RATING_COL}']"
    page.locator(cell).click()
    # a person's first key comes after the cell shows it is selected; a key sent before Gradio's grid has taken the
    # click is dropped by the grid (it types nowhere and, since the shortcut fix, rates nothing)
    page.wait_for_function("""(sel) => { const c = document.querySelector(sel);
        return !!c && !!(c.closest('.cell-selected') || c.querySelector('.cell-selected')); }""", arg=cell)
    page.keyboard.type(value, delay=delay)
    page.keyboard.press("Enter")
