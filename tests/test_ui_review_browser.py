"""The review queue in headless Chromium: the tab opens on the step where the signals disagree most, one keystroke
rates it (stored on that node in the database, through the inspector's rating path) and brings up the next; the
calibration chart and the agreement table show; markup in step text stays text. Screenshots go to test-artifacts/."""
from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("playwright")
from helpers.browser import (  # noqa: E402
    click_node,
    open_session,
    press,
    set_annotator,
    set_number,
    value,
    wait_value,
)
from playwright.sync_api import sync_playwright  # noqa: E402

from reasoning.factors import load_catalog  # noqa: E402
from reasoning.problems import countdown_problem  # noqa: E402
from reasoning.search import search  # noqa: E402
from reasoning.search.config import SearchConfig  # noqa: E402
from reasoning.tree import ReasoningTree  # noqa: E402
from reasoning.types import Problem, Step  # noqa: E402
from storage import Store  # noqa: E402
from storage.labels import leaf_paths  # noqa: E402
from storage.records import AutoLabel  # noqa: E402
from ui.testing import demo_models, serve  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.slow]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
XSS_TEXT = '<img src=x onerror="window.__xss = 1"> <b>bold?</b>'

if not Path(CHROMIUM).exists():
    pytest.skip("Debian chromium is not installed (apt-get install chromium chromium-driver)", allow_module_level=True)


def literal_session(store: Store) -> int:
    """Five steps whose order in the queue is known (see the priorities in the comments: disagreement plus half
    the PRM's uncertainty): 0.1.0 (1.2), 0.0 (0.825), 0.1 (0.75), 0.0.0 (0.5), 0.0.1 (0.1)."""
    t = ReasoningTree(Problem("review-p", "Natalia sold 48 clips in April and half as many in May. How many?", "72"))
    a = t.add_child("0", Step("In May she sold 48 / 2 = 24 clips."), score=0.9)
    t.add_child(a, Step(XSS_TEXT), score=0.5)
    t.add_child(a, Step("So 48 + 24 = 72. The answer is 72."), score=0.95)
    b = t.add_child("0", Step("In May she sold 48 * 2 = 96 clips."), score=0.2)
    t.add_child(b, Step("So 48 + 96 = 144."), score=0.8)
    sid = store.create_session(t, name="review literal")
    store.set_auto_labels(sid, [AutoLabel("0.0", "rollout", 8, 1, 1 / 8, True),
                                AutoLabel("0.1", "rollout", 8, 6, 6 / 8, True),
                                AutoLabel("0.0.1", "rollout", 8, 8, 1.0, True)])
    for who, ratings in (("ann", {"0.1.0": 1, "0.0.1": 1}), ("bob", {"0.1.0": -1, "0.0.1": 1})):
        for node, rating in ratings.items():
            store.rate(sid, node, who, rating)
    return sid


def searched_session(store: Store, generator, scorer) -> int:
    """A small MCTS tree on a Countdown problem with the demo models (rollouts need a problem with a checker)."""
    tree, _ = search(countdown_problem([4, 7, 8, 8], pid="review-cd"), generator, scorer,
                     SearchConfig(algorithm="mcts", budget=6, seed=0))
    return store.create_session(tree, name="review countdown", catalog=load_catalog().to_dict())


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ui-review")
    generator, scorer = demo_models()
    store = Store(f"sqlite:///{tmp / 'explorer.db'}")
    sid = literal_session(store)
    searched = searched_session(store, generator, scorer)
    with serve(generator=generator, scorer=scorer, store=store) as url:
        yield url, store, sid, searched
    store.close()


@pytest.fixture
def page():
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = b.new_context(viewport={"width": 1500, "height": 1200})
        yield context.new_page()
        b.close()


def test_one_keystroke_rates_the_current_step_and_brings_up_the_next(app, page):
    url, store, sid, _ = app
    page.goto(url)
    set_annotator(page, "carol")
    page.get_by_role("tab", name="Review queue").click()
    wait_value(page, "review-current", f"session {sid} · node 0.1.0 ·")
    assert "disagreement 1.00" in value(page, "review-current")
    page.wait_for_selector("#calibration-plot .js-plotly-plot", timeout=20_000)
    page.wait_for_function("() => (document.querySelector('#agreement-table') || {}).innerText?.includes('ann · bob')",
                           timeout=20_000)
    page.locator("#calibration-plot").scroll_into_view_if_needed()
    page.locator("#calibration-plot").screenshot(path=str(ARTIFACTS / "review-calibration.png"))
    page.screenshot(path=str(ARTIFACTS / "review-queue.png"), full_page=True)

    assert value(page, "annotator") == "carol"
    press(page, "g")
    wait_value(page, "review-status", "rated session")
    assert f"rated session {sid} node 0.1.0 +1 as carol; next: session {sid} node 0.0" in value(page, "review-status")
    wait_value(page, "review-current", f"session {sid} · node 0.0 ·")
    carol = {a.node_id: a.rating for a in store.annotations(sid) if a.annotator == "carol"}
    assert carol == {"0.1.0": 1}

    press(page, "b")
    wait_value(page, "review-current", f"session {sid} · node 0.1 ·")
    carol = {a.node_id: a.rating for a in store.annotations(sid) if a.annotator == "carol"}
    assert carol == {"0.1.0": 1, "0.0": -1}
    assert {a.annotator for a in store.annotations(sid, "0.1.0")} == {"ann", "bob", "carol"}
    assert [a.kind for a in store.actions(sid, "carol")][-2:] == ["rate", "rate"]  # undoable like the inspector's

    # the step with markup comes next; it shows as text and runs nothing
    press(page, "n")
    wait_value(page, "review-current", f"session {sid} · node 0.0.0 ·")
    assert XSS_TEXT in value(page, "review-trace")
    assert page.evaluate("() => window.__xss") is None


def test_inspector_estimates_a_step_by_rollouts_with_progress_and_stop(app, page):
    url, store, _, sid = app
    tree = store.load_tree(sid)
    # the deepest step that has not answered (its first step, estimated with many rollouts, takes several rounds)
    node = max((n for path in leaf_paths(tree) for n in path if not tree.node(n)["terminal"]),
               key=lambda n: len(tree.path(n)))
    assert len(tree.path(node)) >= 3
    open_session(page, url, sid, len(tree))
    click_node(page, node)
    page.locator("#autolabel").get_by_text("Automatic labels").click()
    set_number(page, "autolabel-rollouts", 3)
    page.click("#estimate-rollouts")
    got = wait_value(page, "autolabel-result", "PRM score", timeout=120)
    (label,) = [a for a in store.auto_labels(sid) if a.node_id == node and a.method == "rollout"]
    assert f"node {node}: rollout value" in got and f"({label.successes}/3 rollouts" in got
    assert f"PRM score {tree.node(node)['score']:.2f}" in got

    # a long estimate from the first step (several batched step rounds) shows its progress and stops on Stop,
    # storing nothing
    first = tree.path(node)[1]
    page.keyboard.press("Escape")
    click_node(page, first)
    set_number(page, "autolabel-rollouts", 64)
    page.click("#estimate-rollouts")
    # the progress line comes at once; on a quiet machine the whole estimate may take less than a poll of
    # `wait_value`, so this waits frame by frame
    page.wait_for_function("""(needle) => { const box = document.querySelector('#autolabel-result textarea');
        return !!box && box.value.includes(needle); }""", arg=f"rollout estimate on node {first}", polling="raf",
                           timeout=60_000)
    page.click("#stop-autolabel")
    end = wait_value(page, "autolabel-result", f"node {first}:", timeout=240)
    labels = [a for a in store.auto_labels(sid) if a.node_id == first]
    if "stopped" in end:  # Stop landed before the last round: nothing stored
        assert end.startswith(f"stopped on node {first}: nothing was stored") and labels == []
    else:  # Stop landed in the last round (a loaded machine): the finished estimate is shown and stored, whole
        assert len(labels) == 1 and labels[0].rollouts == 64 and f"({labels[0].successes}/64 rollouts" in end

def test_model_picker_refuses_a_prm_folder_it_does_not_offer(app, page):
    url, *_ = app
    page.goto(url)
    page.get_by_text("Models", exact=True).click()
    before = value(page, "active-prm")
    assert before.startswith("active PRM: ") and before.endswith("demo-prm")
    page.locator("#prm-dir textarea, #prm-dir input").first.fill("/etc")
    page.click("#use-prm")
    page.wait_for_selector("text=is not a model folder this server offers", timeout=20_000)
    assert value(page, "active-prm") == before
