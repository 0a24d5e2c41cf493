"""Browser tests of issue 22's run defects (items 5 and 12), each against one app served on the demo models for the
module (`app`, `browser`, `page`: tests/conftest.py): what the page shows and what the database holds."""
from __future__ import annotations

import time

import pytest

pytest.importorskip("playwright")

import test_ui_browser as ub  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def plotted(page, at_least: int) -> None:
    page.wait_for_function(
        "(n) => { const gd = document.querySelector('#tree-plot .js-plotly-plot');"
        " const t = gd && gd.data && gd.data.find((d) => d.name === 'nodes'); return t && t.x.length >= n; }",
        arg=at_least, timeout=120_000)


def session_row(page, sid: int) -> list[str]:
    """The sessions table's row of a session after a refresh, its cells as shown ("" where none is found yet)."""
    page.click("#sessions-refresh")
    for _ in range(40):
        page.wait_for_timeout(250)
        rows = page.evaluate("""() => [...document.querySelectorAll('#sessions-table .virtual-row')].map(
            (r) => [...r.querySelectorAll('[role=gridcell]')].map((c) => c.innerText.trim()))""")
        row = next((r for r in rows if r and r[0] == str(sid)), None)
        if row is not None:
            return row
    return [""]


def wait_row(page, sid: int, state: str, timeout: float = 300) -> list[str]:
    end = time.time() + timeout
    while time.time() < end:
        cells = session_row(page, sid)
        if cells[-1] == state:
            return cells
        page.wait_for_timeout(1000)
    raise AssertionError(f"session {sid} never read {state!r}; its row is {session_row(page, sid)}")


# -- item 5: a search started in the page runs to its end when the tab closes --------------------------------------
def test_a_search_goes_on_to_its_budget_after_its_tab_closes(app, browser):
    url, store = app
    budget = 200
    first = browser.new_context(viewport={"width": 1500, "height": 1100}).new_page()
    first.goto(url)
    first.locator("#problem textarea").fill("Use 4 7 8 8 to make 24.")
    box = first.locator("#budget input[type=number]")
    box.fill(str(budget))
    box.press("Enter")
    first.click("#run-search")
    plotted(first, 10)
    sid = ub.session_id(first)
    first.context.close()  # the tab goes away mid-search

    other = browser.new_context(viewport={"width": 1500, "height": 1100}).new_page()
    other.goto(url)
    other.get_by_role("tab", name="Sessions").click()
    assert session_row(other, sid)[-1] == "running"
    cells = wait_row(other, sid, "finished")
    assert int(cells[3]) == budget + 1 == len(store.load_tree(sid))  # the root and every node of the budget
    assert store.session(sid).meta["search"] == "finished"
    ub.shot(other, "runs-01-finished-after-tab-closed")
    other.context.close()
