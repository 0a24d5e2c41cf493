"""Roles in headless Chromium (issue 26): a viewer logged in sees her role beside her name, and a rating by the
button is refused with the one line, nothing stored."""
from __future__ import annotations

import pytest

pytest.importorskip("playwright")

from helpers.browser import click_node, open_session, wait_status  # noqa: E402

from reasoning.problems import parse_problem_text  # noqa: E402
from reasoning.tree import ReasoningTree  # noqa: E402
from reasoning.types import Step  # noqa: E402

pytestmark = [pytest.mark.browser]
USERS = [("ada", "ada-pw", "admin"), ("vic", "vic-pw", "viewer"), ("ann", "ann-pw", "annotator")]


@pytest.fixture(scope="module")
def team_app(tmp_path_factory, demo_models):
    from storage import Store
    from ui.testing import serve

    store = Store(f"sqlite:///{tmp_path_factory.mktemp('roles-browser') / 'explorer.db'}")
    with serve(generator=demo_models[0], scorer=demo_models[1], store=store, auth=USERS) as url:
        yield url, store
    store.close()


def log_in(page, url: str, user: str) -> None:
    password = next(u[1] for u in USERS if u[0] == user)
    login = page.request.post(url.rstrip("/") + "/login", form={"username": user, "password": password})
    assert login.ok, login.status


def test_a_viewer_sees_her_role_and_a_rating_refused(team_app, page):
    url, store = team_app
    tree = ReasoningTree(parse_problem_text("Use 4 7 8 8 to make 24."))
    step = tree.add_child("0", Step("8/8=1 (left: 1 4 7)", "compute"), score=0.5, value=0.5)
    sid = store.create_session(tree, name="viewer", config={}, provenance={}, catalog=None)
    log_in(page, url, "vic")
    open_session(page, url, sid, len(tree))
    assert page.locator("#role textarea, #role input").first.input_value() == "viewer"
    assert page.locator("#annotator textarea, #annotator input").first.input_value() == "vic"
    click_node(page, step)
    page.click("#rate-good")
    line = wait_status(page, "needs the annotator role")
    assert line == "⚠ rating a step needs the annotator role; vic is a viewer"
    assert store.annotations(sid) == []


def test_assigned_work_progress_guideline_and_skip(team_app, page):
    from storage.assignments import Work

    url, store = team_app
    tree = ReasoningTree(parse_problem_text("Use 2 3 4 6 to make 24."))
    tree.add_child("0", Step("6*4=24 (left: 24)", "compute"), score=0.5, value=0.5)
    sid = store.create_session(tree, name="assigned", config={}, provenance={}, catalog=None)
    work = Work(store)
    work.assign([sid], ["ann"], 1, "ada")
    work.set_guideline("Rate <b>each</b> step.", "ada")
    log_in(page, url, "ann")
    page.goto(url)
    page.get_by_role("tab", name="Review queue").click()
    page.locator("#assigned-work").get_by_text("My assigned work").click()
    progress = page.locator("#assigned-progress textarea, #assigned-progress input").first
    page.wait_for_function("(el) => el.value.includes('of')", arg=progress.element_handle(), timeout=30_000)
    assert progress.input_value() == "0 of 1 done in 1 sessions"
    guideline = page.locator("#guideline textarea")  # its own listener: it can answer after the progress line
    page.wait_for_function("(el) => el.value.length > 0", arg=guideline.element_handle(), timeout=30_000)
    assert guideline.input_value() == "Rate <b>each</b> step.\n— ada"
    page.locator("#review-session input, #review-session textarea").first.fill(str(sid))
    page.locator("#review-session input, #review-session textarea").first.press("Enter")
    page.wait_for_function(f"() => (document.querySelector('#review-current textarea') || {{}}).value"
                           f"?.startsWith('session {sid} ')", timeout=30_000)
    page.click("#review-skip")
    page.wait_for_function("(el) => el.value.startsWith('1 of 1')", arg=progress.element_handle(), timeout=30_000)
    assert work.marks("ann", [sid]) == {(sid, "0.0"): ("skip", "")}
