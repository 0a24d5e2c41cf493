"""The review queue narrowed to my assigned work, in headless Chromium (issue 26): an annotator logged in ticks "only
my assigned steps" and the ordered queue holds just the steps assigned to her that she has not rated, skipped or
flagged, in the queue's order; each rating, skip and flag brings up the next and moves "N of M done"; an annotator
with nothing assigned is told so in one line. A screenshot of the page with the filter on goes to
test-artifacts/."""
from __future__ import annotations

from pathlib import Path

import pytest

from reasoning.tree import ReasoningTree
from reasoning.types import Problem, Step
from ui.services.review import QUEUE_HEADERS

pytestmark = [pytest.mark.browser]
USERS = [("ada", "ada-pw", "admin"), ("ann", "ann-pw", "annotator"), ("cy", "cy-pw", "annotator")]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


def scored_session(store, i: int, first: float, second: float) -> int:
    """Two steps with the PRM scores given: with no other signal the queue ranks them by the PRM's uncertainty."""
    t = ReasoningTree(Problem(f"q{i}", f"Use {i + 1} 3 4 6 to make 24.", "24"))
    a = t.add_child("0", Step(f"step one of problem {i}", factor="compute"), score=first)
    t.add_child(a, Step(f"step two of problem {i}", factor="conclude"), score=second)
    return store.create_session(t, name=f"assigned {i}", config={}, provenance={}, catalog=None)


@pytest.fixture(scope="module")
def team(tmp_path_factory, demo_models):
    from storage import Store
    from storage.assignments import Work
    from ui.testing import serve

    store = Store(f"sqlite:///{tmp_path_factory.mktemp('assigned-queue') / 'explorer.db'}")
    # priorities: s0 0.0 0.1, 0.0.0 0.5; s1 0.0 0.4, 0.0.0 0.05; `other` (not assigned) 0.0 1.0, first overall
    s0, s1 = scored_session(store, 0, 0.9, 0.5), scored_session(store, 1, 0.6, 0.95)
    other = scored_session(store, 2, 0.5, 0.5)
    store.rate(other, "0.0", "bob", -1)
    Work(store).assign([s0, s1], ["ann"], 1, "ada")
    with serve(generator=demo_models[0], scorer=demo_models[1], store=store, auth=USERS) as url:
        yield url, store, (s0, s1, other)
    store.close()


def log_in(page, url: str, user: str) -> None:
    password = next(u[1] for u in USERS if u[0] == user)
    assert page.request.post(url.rstrip("/") + "/login", form={"username": user, "password": password}).ok


def box(page, elem_id: str):
    return page.locator(f"#{elem_id} textarea, #{elem_id} input").first


def wait_value(page, elem_id: str, start: str) -> str:
    page.wait_for_function("([el, s]) => el.value.startsWith(s)", arg=[box(page, elem_id).element_handle(), start],
                           timeout=30_000)
    return box(page, elem_id).input_value()


def queued(page) -> list[tuple[int, str]]:
    """The (session, node) of each row of the queue's table, top to bottom."""
    cells = [c.strip() for c in page.locator("#review-table [role=gridcell]").all_inner_texts()]
    width = len(QUEUE_HEADERS)
    return [(int(cells[k + 1]), cells[k + 2]) for k in range(0, len(cells), width)]


def press(page, key: str) -> None:
    """A shortcut key with the focus on the page itself (a key typed into a control is not a shortcut)."""
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    page.keyboard.press(key)


def open_review(page, url: str, user: str) -> None:
    log_in(page, url, user)
    page.goto(url)
    page.get_by_role("tab", name="Review queue").click()


def test_only_my_assigned_steps_in_the_queues_order_until_all_are_done(team, page):
    from storage.assignments import Work

    url, store, (s0, s1, other) = team
    open_review(page, url, "ann")
    wait_value(page, "review-current", f"session {other} · node 0.0 ·")  # the whole queue first
    page.locator("#review-assigned-only input").check()
    line = wait_value(page, "review-prm", "my assigned steps:")
    assert line.startswith("my assigned steps: 0 of 4 done, 4 to do here, in the queue's order")
    wait_value(page, "review-current", f"session {s0} · node 0.0.0 ·")
    assert queued(page) == [(s0, "0.0.0"), (s1, "0.0"), (s0, "0.0"), (s1, "0.0.0")]
    assert wait_value(page, "assigned-progress", "0 of 4") == "0 of 4 done in 2 sessions"  # opened by the filter
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "review-assigned-only.png"), full_page=True)

    press(page, "g")
    wait_value(page, "review-current", f"session {s1} · node 0.0 ·")
    assert wait_value(page, "assigned-progress", "1 of 4") == "1 of 4 done in 2 sessions"
    assert {(a.node_id, a.rating) for a in store.annotations(s0) if a.annotator == "ann"} == {("0.0.0", 1)}

    page.click("#review-skip")
    wait_value(page, "review-current", f"session {s0} · node 0.0 ·")
    wait_value(page, "assigned-progress", "2 of 4 done")
    assert box(page, "review-status").input_value() == (
        f"skipped session {s1} node 0.0 as ann; next: session {s0} node 0.0")

    page.click("#review-flag")
    wait_value(page, "review-current", f"session {s1} · node 0.0.0 ·")
    wait_value(page, "assigned-progress", "3 of 4 done")
    assert Work(store).marks("ann", [s0, s1]) == {(s1, "0.0"): ("skip", ""),
                                                  (s0, "0.0"): ("flag", "badly split step")}

    press(page, "b")
    assert wait_value(page, "review-current", "all") == "all your assigned steps are done (4 of 4 done)"
    assert wait_value(page, "assigned-progress", "4 of 4") == "4 of 4 done in 2 sessions"
    assert box(page, "review-status").input_value().endswith("; the queue is empty")
    assert {(a.node_id, a.rating) for a in store.annotations(s1) if a.annotator == "ann"} == {("0.0.0", -1)}


def test_nothing_assigned_says_so_in_one_line(team, page):
    url, *_ = team
    open_review(page, url, "cy")
    wait_value(page, "review-current", "session ")
    page.locator("#review-assigned-only input").check()
    said = "nothing is assigned to you: uncheck 'only my assigned steps' for the whole queue"
    assert wait_value(page, "review-current", "nothing") == said
    assert box(page, "review-prm").input_value() == said
    assert queued(page) == []


def test_a_filter_ticked_while_the_tab_loads_is_not_undone_by_that_load(team, page, monkeypatch):
    """Opening the tab loads the whole queue; "only my assigned steps" ticked while that load is still working loads
    the narrowed queue at once (Gradio runs the two listeners' events together). The tab's load answering last must
    not put the whole queue back under the ticked box: a browser session's newest queue request wins. The tab's load
    is slowed here (a large team database) so that it answers last every time."""
    import time

    import ui.pages.review as review
    from storage.assignments import Work

    url, store, (_, _, other) = team
    mine = scored_session(store, 3, 0.7, 0.8)
    Work(store).assign([mine], ["cy"], 1, "ada")
    real = review.queue_view

    def slow_whole_queue(engine, work, chosen, *args, **kwargs):
        out = real(engine, work, chosen, *args, **kwargs)
        if not chosen.assigned_only:
            time.sleep(3)
        return out

    monkeypatch.setattr(review, "queue_view", slow_whole_queue)
    open_review(page, url, "cy")  # the tab's load (the whole queue) is in flight
    page.locator("#review-assigned-only input").check()
    wait_value(page, "review-prm", "my assigned steps:")
    page.wait_for_timeout(4500)  # the tab's load has answered by now
    assert {session for session, _ in queued(page)} == {mine}
    assert box(page, "review-current").input_value().startswith(f"session {mine} · node ")
    assert box(page, "review-prm").input_value().startswith("my assigned steps: 0 of 2 done")
    assert other not in {session for session, _ in queued(page)}
