"""Browser tests of issue 22's run defects (items 5 and 12), each against one app served on the demo models for the
module (`app`, `browser`, `page`: tests/conftest.py): what the page shows and what the database holds."""
from __future__ import annotations

import time

import pytest

pytest.importorskip("playwright")

from gradio_client import Client  # noqa: E402
from helpers.browser import click_node, open_session, session_id, set_number, shot, wait_value  # noqa: E402

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
    sid = session_id(first)
    first.context.close()  # the tab goes away mid-search

    other = browser.new_context(viewport={"width": 1500, "height": 1100}).new_page()
    other.goto(url)
    other.get_by_role("tab", name="Sessions").click()
    assert session_row(other, sid)[-1] == "running"
    cells = wait_row(other, sid, "finished")
    assert int(cells[3]) == budget + 1 == len(store.load_tree(sid))  # the root and every node of the budget
    assert store.session(sid).meta["search"] == "finished"
    shot(other, "runs-01-finished-after-tab-closed")
    other.context.close()


# -- item 12: labeling a whole session or a subtree by rollouts from the page; the trace shows new auto labels ----
@pytest.fixture(scope="module")
def searched(app, demo_models):
    """Three stored Countdown trees grown by the demo models (rollouts need a problem with a checker): `first`,
    `session`, `subtree`, one per test, so no test sees another's labels."""
    from reasoning.factors import load_catalog
    from reasoning.problems import countdown_problem
    from reasoning.search import SearchConfig, search

    _, store = app
    generator, scorer = demo_models
    out = {}
    for k, name in enumerate(("first", "session", "subtree")):
        tree, _ = search(countdown_problem([4, 7, 8, 8], pid=f"runs-{name}"), generator, scorer,
                         SearchConfig(algorithm="mcts", budget=10, seed=k))
        out[name] = store.create_session(tree, name=f"runs {name}", catalog=load_catalog().to_dict())
    return out


def open_autolabel(page, url: str, store, sid: int, node: str) -> None:
    open_session(page, url, sid, len(store.load_tree(sid)))
    click_node(page, node)
    page.locator("#autolabel").get_by_text("Automatic labels").click()
    set_number(page, "autolabel-rollouts", 2)


def trace_says(page, needle: str, timeout: float = 30_000) -> None:
    page.wait_for_function("(s) => (document.querySelector('#trace-table') || {}).innerText?.includes(s)",
                           arg=needle, timeout=timeout)


def live_steps(store, sid: int, under: str = "0") -> set[str]:
    from experiments.autolabel import live_steps as steps

    tree = store.load_tree(sid)
    return set(steps(tree)) & set(tree.subtree(under))


def rollout_labeled(store, sid: int) -> set[str]:
    return {a.node_id for a in store.auto_labels(sid) if a.method == "rollout"}


def test_first_error_shows_its_labels_in_the_trace(app, page, searched):
    url, store = app
    sid = searched["first"]
    tree = store.load_tree(sid)
    node = max(live_steps(store, sid), key=lambda n: (len(tree.path(n)), n))
    open_autolabel(page, url, store, sid, node)
    assert "(first_error)" not in page.locator("#trace-table").inner_text()
    page.click("#first-error")
    wait_value(page, "autolabel-result", "rounds", timeout=240)
    assert {a.node_id for a in store.auto_labels(sid) if a.method == "first_error"}
    trace_says(page, "(first_error)")  # without a re-click: the trace was left as it was before the job
    shot(page, "runs-02-first-error-trace")


def test_a_whole_session_is_labeled_by_rollouts_from_the_page_with_progress_and_stop(app, page, searched):
    url, store = app
    sid = searched["session"]
    steps = live_steps(store, sid)
    open_autolabel(page, url, store, sid, sorted(steps)[0])
    page.click("#label-session")
    page.wait_for_function("""(s) => (document.querySelector('#autolabel-result textarea') || {}).value?.includes(s)
        """, arg=f"rollout labels of the steps of session {sid}", polling="raf", timeout=60_000)
    done = wait_value(page, "autolabel-result", "labeled", timeout=400)
    assert done.startswith(f"labeled {len(steps)} of the {len(steps)} steps of session {sid} by rollouts"), done
    assert rollout_labeled(store, sid) == steps
    trace_says(page, "(rollout)")
    shot(page, "runs-03-session-labeled")

    page.locator("#autolabel-relabel input").check()  # all over again, long (64 rollouts a step), then Stop
    set_number(page, "autolabel-rollouts", 64)
    page.click("#label-session")
    wait_value(page, "autolabel-result", "(Stop ends it after the current round)", timeout=60)
    page.click("#stop-autolabel")
    end = wait_value(page, "autolabel-result", "stopped:", timeout=400)
    kept = int(end.split("stopped: ", 1)[1].split(" ", 1)[0])
    assert kept < len(steps) and f"of the {len(steps)} steps of session {sid} labeled and stored" in end
    assert sum(a.rollouts == 64 for a in store.auto_labels(sid) if a.method == "rollout") == kept


def test_the_selected_subtree_is_labeled_by_rollouts_from_the_page(app, page, searched):
    url, store = app
    sid = searched["subtree"]
    tree = store.load_tree(sid)
    top = max(tree.children("0"), key=lambda n: len(live_steps(store, sid, n)))
    under = live_steps(store, sid, top)
    assert 1 < len(under) < len(live_steps(store, sid))
    open_autolabel(page, url, store, sid, top)
    page.click("#label-subtree")
    done = wait_value(page, "autolabel-result", "labeled", timeout=400)
    assert done.startswith(f"labeled {len(under)} of the {len(under)} steps of the subtree under node {top} "
                           f"of session {sid}"), done
    assert rollout_labeled(store, sid) == under
    trace_says(page, "(rollout)")
    again = Client(url, verbose=False).predict(sid, top, 2, 4, 0, False, api_name="/label_rollouts")
    assert (again["steps"], again["labelled"], again["skipped"]) == (len(under), 0, len(under))  # the API: all done
