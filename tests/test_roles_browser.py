"""Roles in headless Chromium (issue 26): a viewer logged in sees her role beside her name, and a rating by the
button is refused with the one line, nothing stored."""
from __future__ import annotations

import pytest

pytest.importorskip("playwright")

import test_ui_browser as ub  # noqa: E402

from reasoning.problems import parse_problem_text  # noqa: E402
from reasoning.tree import ReasoningTree  # noqa: E402
from reasoning.types import Step  # noqa: E402

pytestmark = [pytest.mark.browser]
USERS = [("ada", "ada-pw", "admin"), ("vic", "vic-pw", "viewer")]


@pytest.fixture(scope="module")
def team_app(tmp_path_factory, demo_models):
    from storage import Store
    from ui.testing import serve

    store = Store(f"sqlite:///{tmp_path_factory.mktemp('roles-browser') / 'explorer.db'}")
    with serve(generator=demo_models[0], scorer=demo_models[1], store=store, auth=USERS) as url:
        yield url, store
    store.close()


def test_a_viewer_sees_her_role_and_a_rating_refused(team_app, page):
    url, store = team_app
    tree = ReasoningTree(parse_problem_text("Use 4 7 8 8 to make 24."))
    step = tree.add_child("0", Step("8/8=1 (left: 1 4 7)", "compute"), score=0.5, value=0.5)
    sid = store.create_session(tree, name="viewer", config={}, provenance={}, catalog=None)
    login = page.request.post(url.rstrip("/") + "/login", form={"username": "vic", "password": "vic-pw"})
    assert login.ok, login.status
    ub.open_session(page, url, sid, len(tree))
    assert page.locator("#role textarea, #role input").first.input_value() == "viewer"
    assert page.locator("#annotator textarea, #annotator input").first.input_value() == "vic"
    ub.click_node(page, step)
    page.click("#rate-good")
    line = ub.wait_status(page, "needs the annotator role")
    assert line == "⚠ rating a step needs the annotator role; vic is a viewer"
    assert store.annotations(sid) == []
