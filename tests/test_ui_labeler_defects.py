"""Browser tests of issue 22's labeler defects (items 4, 10, 11 and 13's inspector part): a typed final answer stays
final, the inspector shows what this annotator gave, opening a session refreshes the note and the search settings,
out-of-bounds numbers are refused in one line instead of clamped, Run during a search says so, and imported steps
and the rendered view show what is true. One app server (tests/conftest.py's module-scoped `app`) serves them all."""
from __future__ import annotations

import time

import pytest

pytest.importorskip("playwright")

from gradio_client import Client  # noqa: E402
from helpers.browser import click_node, open_session, shot, wait_status  # noqa: E402

from reasoning.domains.countdown import CountdownDomain  # noqa: E402
from reasoning.search.config import SearchConfig  # noqa: E402
from reasoning.tree import ReasoningTree  # noqa: E402
from reasoning.types import Problem, State, Step  # noqa: E402
from storage import Store  # noqa: E402
from storage.records import AutoLabel  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.slow]
COUNTDOWN = {"numbers": [4, 7, 8, 8], "target": 24}
FINAL = "8*3=24 (answer: 8*(7-(8-4)))"


def countdown_tree(name: str) -> ReasoningTree:
    """Root; 0.0 `8-4=4`, 0.0.0 `7-4=3` (3 and 8 left) with one `verify` child, so that a step typed under 0.0.0
    defaults to `verify`, as in the issue; and a second first step 0.1."""
    tree = ReasoningTree(Problem(name, "Use 4 7 8 8 to make 24.", domain="countdown", meta=COUNTDOWN))
    a = tree.add_child("0", Step("8-4=4 (left: 4 7 8)", "compute"), score=0.6, value=0.6)
    tree.add_child("0", Step("8+7=15 (left: 4 8 15)", "compute"), score=0.3, value=0.3)
    b = tree.add_child(a, Step("7-4=3 (left: 3 8)", "compute"), score=0.7, value=0.7)
    tree.add_child(b, Step("7-4=3 is right", "verify"), score=0.7, value=0.7)
    return tree


def stored(store: Store, tree: ReasoningTree, name: str, config: dict | None = None) -> int:
    return store.create_session(tree, name=name, config=config or {}, provenance={}, catalog=None)


def pick(page, elem_id: str, option: str) -> None:
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=option, exact=True).click()


def value_is(page, selector: str, value: str, timeout: int = 10_000) -> None:
    page.wait_for_function("([sel, v]) => (document.querySelector(sel) || {}).value === v", arg=[selector, value],
                           timeout=timeout)


def ticked(page) -> bool:
    return page.locator("#unsure input[type=checkbox]").is_checked()


def info(page) -> str:
    return page.locator("#node-info textarea, #node-info input").first.input_value()


def sessions_message(page, needle: str) -> str:
    page.wait_for_function("(s) => (document.querySelector('#sessions-message textarea') || {}).value?.includes(s)",
                           arg=needle, timeout=15_000)
    return page.locator("#sessions-message textarea").input_value()


def reopen(page, sid: int, nodes: int) -> None:
    """Open another session in the same page (no reload: what the page kept from the last one must be replaced)."""
    page.get_by_role("tab", name="Sessions").click()
    page.locator("#session-pick input").fill(str(sid))
    page.click("#session-open")
    wait_status(page, f"session {sid}:")
    page.wait_for_function(
        "(n) => { const gd = document.querySelector('#tree-plot .js-plotly-plot');"
        " const t = gd && gd.data && gd.data.find((d) => d.name === 'nodes'); return t && t.x.length === n; }",
        arg=nodes, timeout=30_000)


# -- item 4: a typed final answer stays final; nothing typed is dropped without a word ----------------------------------
def test_the_calculator_refuses_to_drop_what_was_typed():
    state = State(countdown_tree("unit").problem, (Step("8-4=4 (left: 4 7 8)", "compute"),
                                                   Step("7-4=3 (left: 3 8)", "compute")))
    domain = CountdownDomain()
    with pytest.raises(ValueError, match=r"under 'verify' .* as '8\*3=24', not as a final answer: pick 'conclude'"):
        domain.read_typed(state, Step(FINAL, "verify"))
    with pytest.raises(ValueError, match=r"leave out '\(left: 3 8\)'"):
        domain.read_typed(state, Step("8*3=24 (left: 3 8)", "compute"))
    step = domain.read_typed(state, Step(FINAL, "compute"))
    assert (step.text, step.terminal, step.answer) == (FINAL, True, "8*(7-(8-4))")
    assert domain.read_typed(state, Step("8*3=24 is right", "verify")).text == "8*3=24 is right"


def test_a_typed_final_answer_is_refused_under_verify_and_stays_final_under_compute(app, page):
    url, store = app
    tree = countdown_tree("human-final")
    sid = stored(store, tree, "human-final")
    open_session(page, url, sid, len(tree))
    click_node(page, "0.0.0")
    value_is(page, "#human-factor input", "verify")  # the default the issue met
    page.locator("#node-text textarea").fill(FINAL)
    page.click("#human-step")
    line = wait_status(page, "not as a final answer")
    assert line == ("⚠ under 'verify' the calculator would store this step as '8*3=24', not as a final answer: "
                    "pick 'conclude' to end the path with it"), line
    assert len(store.load_tree(sid)) == len(tree)  # nothing stored
    pick(page, "human-factor", "compute")
    page.click("#human-step")
    line = wait_status(page, "added human step")
    new = line.split("added human step ", 1)[1].split(" ", 1)[0]
    assert line.endswith(": a final answer (8*(7-(8-4)))"), line
    node = store.load_tree(sid).node(new)
    assert (node["text"], node["terminal"], node["answer"], node["origin"]) == (FINAL, True, "8*(7-(8-4))", "human")
    shot(page, "labeler-01-human-final")
    assert page.dialogs == []


# -- item 10: what this annotator gave shows again; a session switch leaves nothing of the last one --------------------
def test_returning_to_a_rated_node_shows_the_rating_note_and_unsure_tick(app, page):
    url, store = app
    tree = countdown_tree("return-rated")
    sid = stored(store, tree, "return-rated")
    store.rate(sid, "0.1", "someone-else", -1, unsure=True, note="not mine")
    open_session(page, url, sid, len(tree))
    click_node(page, "0.0")
    assert (ticked(page), page.locator("#rate-note textarea").input_value()) == (False, "")
    page.locator("#unsure input[type=checkbox]").check()
    page.locator("#rate-note textarea").fill("4 is still needed")
    page.click("#rate-good")
    wait_status(page, "rated node 0.0 +1")
    page.wait_for_function("() => document.querySelector('#node-info textarea, #node-info input').value"
                           ".endsWith('your rating +1 (unsure)')", timeout=10_000)
    click_node(page, "0.1")  # rated by someone else only: nothing of theirs, nothing of 0.0's
    value_is(page, "#rate-note textarea", "")
    assert not ticked(page) and "your rating" not in info(page)
    click_node(page, "0.0")
    value_is(page, "#rate-note textarea", "4 is still needed")
    assert ticked(page) and info(page).endswith(" · your rating +1 (unsure)")
    shot(page, "labeler-02-return-rated")
    assert page.dialogs == []


def test_opening_another_session_resets_the_note_and_shows_its_settings(app, page):
    url, store = app
    beam = SearchConfig(algorithm="beam", budget=12, beam_width=3, temperatures=(0.7, 1.0)).to_dict()
    greedy = SearchConfig(algorithm="greedy", budget=7, temperatures=(0.5,)).to_dict()
    first, second = countdown_tree("switch-a"), countdown_tree("switch-b")
    sid_a, sid_b = stored(store, first, "switch-a", beam), stored(store, second, "switch-b", greedy)
    open_session(page, url, sid_a, len(first))
    value_is(page, "#algorithm input", "beam")
    value_is(page, "#budget input", "12")
    page.get_by_text("More search parameters").click()
    value_is(page, "#beam-width input", "3")
    value_is(page, "#temperatures textarea, #temperatures input", "0.7, 1")
    click_node(page, "0.0")
    page.locator("#unsure input[type=checkbox]").check()
    page.locator("#rate-note textarea").fill("a draft note")
    reopen(page, sid_b, len(second))
    value_is(page, "#algorithm input", "greedy")
    value_is(page, "#budget input", "7")
    value_is(page, "#temperatures textarea, #temperatures input", "0.5")
    value_is(page, "#rate-note textarea", "")
    assert not ticked(page)
    shot(page, "labeler-03-session-switch")
    assert page.dialogs == []


# -- item 11: out-of-bounds numbers are refused with the declaration's bounds; Run during a search says so ------------
@pytest.mark.parametrize("typed, why", [("-5", "must be between 1 and 4096, got -5"),
                                        ("0", "must be between 1 and 4096, got 0"),
                                        ("999999", "must be between 1 and 4096, got 999999"),
                                        ("2.5", "must be an integer, got 2.5")])
def test_a_budget_out_of_bounds_is_refused_not_clamped(app, page, typed, why):
    url, store = app
    before = len(store.list_sessions(None))
    page.goto(url)
    page.locator("#problem textarea").fill("Use 1 3 4 6 to make 24.")
    budget = page.locator("#budget input[type=number]")
    budget.fill(typed)
    budget.press("Enter")
    page.click("#run-search")
    assert wait_status(page, why) == f"⚠ budget {why}"
    assert len(store.list_sessions(None)) == before
    assert "(an integer, 1 to 4096)" in page.locator("#budget").inner_text()


def test_a_session_id_that_is_not_an_integer_is_refused(app, page):
    url, store = app
    tree = countdown_tree("fraction-id")
    sid = stored(store, tree, "fraction-id")
    page.goto(url)
    page.get_by_role("tab", name="Sessions").click()
    page.locator("#session-pick input").fill(f"{sid - 1}.5")
    page.click("#session-open")
    line = sessions_message(page, "session id must be a positive integer")
    assert line.startswith("⚠ ") and f"got '{sid - 1}.5'" in line, line
    assert page.locator("#status textarea, #status input").first.input_value() == ""  # nothing opened


def test_children_and_resume_budget_out_of_bounds_are_refused(app, page):
    url, store = app
    tree = countdown_tree("expand-bounds")
    sid = stored(store, tree, "expand-bounds")
    open_session(page, url, sid, len(tree))
    click_node(page, "0.1")
    page.locator("#expand-n input").fill("0")
    page.click("#expand")
    assert wait_status(page, "number of children") == "⚠ number of children must be between 1 and 16, got 0"
    page.locator("#resume-budget input").fill("1.5")
    page.click("#resume")
    assert wait_status(page, "budget must") == "⚠ budget must be an integer, got 1.5"
    assert len(store.load_tree(sid)) == len(tree)


def test_run_during_a_search_names_the_running_session_and_the_page_allows_the_clis_budget(app, page):
    url, store = app
    page.goto(url)
    page.locator("#problem textarea").fill("Use 2 3 5 12 to make 24.")
    budget = page.locator("#budget input[type=number]")
    budget.fill("4096")  # REASONING_MAX_BUDGET's default, as on the command line (the page stopped at 2048)
    budget.press("Enter")
    page.click("#run-search")
    sid = int(wait_status(page, "/4096 nodes created").split("session ", 1)[1].split(":", 1)[0])
    page.evaluate(RECORD_STATUS)
    page.click("#run-search")
    # the running search redraws the status line every 1.5 s, so the refusal may be on screen for less than a poll:
    # every value the page writes into the status box is recorded instead (this test timed out once under load)
    page.wait_for_function("(s) => window.statusSeen.some((v) => v.includes(s))",
                           arg=f"a search is already running (session {sid})", timeout=30_000)
    toast = page.locator(".toast-body").first
    toast.wait_for(timeout=30_000)
    assert f"a search is already running (session {sid})" in toast.inner_text()
    shot(page, "labeler-04-run-during-search")
    page.click("#stop-search")
    client, end = Client(url, verbose=False), time.time() + 300
    while client.predict(sid, api_name="/stop") and time.time() < end:  # true while the search runs
        time.sleep(1)  # (the page's "stopping…" may arrive after the search's last line, so the API is asked)
    assert not client.predict(sid, api_name="/stop")
    assert store.session(sid).config["budget"] == 4096
    assert max(s.id for s in store.list_sessions(None)) == sid  # the second Run started nothing


RECORD_STATUS = """() => {  // record every value written into the status box, however briefly it stays
  window.statusSeen = [];
  for (const proto of [HTMLTextAreaElement.prototype, HTMLInputElement.prototype]) {
    const d = Object.getOwnPropertyDescriptor(proto, 'value');
    Object.defineProperty(proto, 'value', {configurable: true, get() { return d.get.call(this); },
      set(v) { if (this.closest('#status')) window.statusSeen.push(String(v)); d.set.call(this, v); }});
  }
}"""


# -- item 13: imported steps say they have no factor; the rendered view shows the labels beside each step ----------
def test_imported_steps_read_true_and_the_rendered_view_shows_labels(app, page):
    url, store = app
    tree = ReasoningTree(Problem("imported-labels", "What is $1+2$?", answer="3"))
    a = tree.add_child("0", Step("We add $1+2$.", None), origin="imported")
    b = tree.add_child(a, Step("The answer is 3.", None, terminal=True, answer="3"), origin="imported")
    sid = stored(store, tree, "imported-labels")
    store.rate(sid, a, "bob <b>x</b>", -1, unsure=True)
    store.rate(sid, b, "alice", 1)
    store.set_auto_labels(sid, [AutoLabel(b, rollouts=4, successes=3)])
    open_session(page, url, sid, len(tree))
    click_node(page, b)
    assert info(page).startswith(f"node {b} · depth 2 · imported step, no factor")
    assert "(root)" not in info(page)
    view = page.locator("#math-view")
    page.wait_for_function("() => (document.querySelector('#math-view') || {}).innerText?.includes('alice')",
                           timeout=10_000)
    text = view.inner_text()
    assert f"node {a} · imported · human: bob <b>x</b> -1?" in text, text
    assert "human: alice +1 · auto: rollouts 3/4 = 0.75 (rollout)" in text, text
    assert view.locator("b").count() == 0  # the name's markup is text
    shot(page, "labeler-05-imported-labels")
    assert page.dialogs == []
