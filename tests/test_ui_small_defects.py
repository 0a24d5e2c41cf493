"""Browser tests of issue 13's smaller defects (item 10): each drives the user's path in headless Chromium against
the app served on the demo models (`app`, `page`: tests/conftest.py) and checks what the page says and what the
database holds."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("playwright")

from gradio_client import Client  # noqa: E402
from helpers.browser import click_node, hover_node, import_report, open_session, pick, shot, wait_status  # noqa: E402

from reasoning.tree import ReasoningTree  # noqa: E402
from reasoning.types import Problem, Step  # noqa: E402
from storage import Store  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def small_tree(store: Store, name: str, catalog: dict | None = None) -> tuple[int, ReasoningTree]:
    """A stored Countdown session: root, two first steps, and two children (both `compute`) under the first one."""
    tree = ReasoningTree(Problem(name, "Use 4 7 8 8 to make 24.", domain="countdown",
                                 meta={"numbers": [4, 7, 8, 8], "target": 24}))
    a = tree.add_child("0", Step("8+7=15 (left: 4 8 15)", "compute"), score=0.5, value=0.5)
    tree.add_child("0", Step("8-4=4 (left: 4 7 8)", "compute"), score=0.3, value=0.3)
    for text in ("15-8=7 (left: 4 7)", "8/4=2 (left: 2 15)"):
        tree.add_child(a, Step(text, "compute"), score=0.4, value=0.4)
    return store.create_session(tree, name=name, config={}, provenance={}, catalog=catalog), tree


def dropdown_value(page, elem_id: str, value: str) -> None:
    page.wait_for_function("([sel, v]) => (document.querySelector(sel) || {}).value === v",
                           arg=[f"#{elem_id} input", value], timeout=10_000)


# -- a human step takes the factor the user chooses ----------------------------------------------------------------
def test_a_human_step_takes_the_factor_the_user_chooses(app, page):
    url, store = app
    sid, tree = small_tree(store, "human-factor")
    open_session(page, url, sid, len(tree))
    click_node(page, "0.0")
    dropdown_value(page, "human-factor", "compute")  # what the search did under 0.0, not the catalog's first
    pick(page, "human-factor", "verify")
    page.locator("#node-text textarea").fill("Let me check: 15 is not 24 yet")
    page.click("#human-step")
    new = wait_status(page, "added human step").split("added human step ", 1)[1].split(" ", 1)[0]
    stored = store.load_tree(sid).node(new)
    assert (stored["factor"], stored["origin"], stored["text"]) == ("verify", "human",
                                                                    "Let me check: 15 is not 24 yet")
    shot(page, "small-01-human-factor")
    assert page.dialogs == []


def test_the_human_step_endpoint_takes_a_factor_of_the_sessions_catalog(app):
    url, store = app
    catalog = {"name": "mine", "factors": [{"name": "compute"}, {"name": "guess"}]}
    sid, _ = small_tree(store, "human-factor-api", catalog=catalog)
    client = Client(url, verbose=False)
    new = client.predict(sid, "0.1", "8*3=24", "guess", "alice", api_name="/human_step")
    assert store.load_tree(sid).node(new)["factor"] == "guess"
    default = client.predict(sid, "0.0.0", "7*4=28", "", "alice", api_name="/human_step")
    assert store.load_tree(sid).node(default)["factor"] == "compute"  # left out: the factor 0.0.0 has
    with pytest.raises(Exception, match=r"factor must be one of this session's factors \['compute', 'guess'\]"):
        client.predict(sid, "0.1", "7-4=3", "verify", "alice", api_name="/human_step")


# -- undoing an expansion names the expanded node and removes the children it added -------------------------------
def plot_count(page, n: int) -> None:
    page.wait_for_function(
        "(n) => { const gd = document.querySelector('#tree-plot .js-plotly-plot');"
        " const t = gd && gd.data && gd.data.find((d) => d.name === 'nodes'); return t && t.x.length === n; }",
        arg=n, timeout=30_000)


def test_undoing_an_expansion_removes_its_children(app, page):
    url, store = app
    sid, tree = small_tree(store, "undo-expand")
    open_session(page, url, sid, len(tree))
    click_node(page, "0.0")
    page.click("#rate-good")
    wait_status(page, "rated node 0.0 +1")
    click_node(page, "0.1")
    pick(page, "expand-factor", "compute")
    page.locator("#expand-n input").fill("2")
    page.click("#expand")
    line = wait_status(page, "expanded 0.1 with compute", timeout=120)
    new = line.split(": ", 1)[1].split(" (", 1)[0].split(", ")
    assert new and all(n.startswith("0.1.") for n in new), line
    plot_count(page, len(tree) + len(new))
    page.click("#undo")
    wait_status(page, f"undid your expansion of node 0.1: removed {', '.join(new)}")
    plot_count(page, len(tree))  # removed from the tree view, not greyed
    stored = store.load_tree(sid)
    assert sorted(stored.nodes()) == sorted(tree.nodes())
    assert [(a.node_id, a.rating) for a in store.annotations(sid)] == [("0.0", 1)]
    shot(page, "small-02-undo-expand")
    assert page.dialogs == []


# -- an imported problem set is offered at once; a re-import counts what was new ------------------------------------
def test_an_imported_problem_set_is_offered_at_once_and_a_reimport_adds_nothing(app, page, tmp_path):
    url, store = app
    texts = ["A baker sells 17 rolls in the morning and 25 in the afternoon. How many rolls? (picker test)",
             "Tom has 9 marbles and gives away 4. How many are left? (picker test)"]
    path = tmp_path / "picker-set.jsonl"
    path.write_text("".join(json.dumps({"id": f"picker-{i}", "problem": t, "answer": a}) + "\n"
                            for i, (t, a) in enumerate(zip(texts, ["42", "5"], strict=True))))
    page.goto(url)
    page.get_by_role("tab", name="Export / import").click()
    page.locator("#import-file input[type=file]").set_input_files(str(path))
    page.locator("#import-file a[download='picker-set.jsonl']").wait_for(timeout=30_000)  # uploaded
    pick(page, "import-format", "problems")
    page.click("#import-button")
    assert import_report(page, "imported 2 new problems").startswith("imported 2 new problems, 0 sessions")

    page.get_by_role("tab", name="Explore").click()  # no restart: the picker lists the set now
    pick(page, "problem-pick", texts[1])
    page.wait_for_function("(t) => document.querySelector('#problem textarea').value === t", arg=texts[1])
    shot(page, "small-03-picker")

    page.get_by_role("tab", name="Export / import").click()
    page.click("#import-button")  # the same file again
    line = import_report(page, "imported 0 new problems")
    assert line.startswith("imported 0 new problems, 2 already present, 0 sessions"), line
    assert [p.id for p in store.problems()].count("picker-0") == 1
    assert page.dialogs == []


# -- the export summary counts the records, steps and labels of every format ---------------------------------------
def test_the_export_summary_counts_steps_and_labels_for_every_format(app, page):
    url, store = app
    tree = ReasoningTree(Problem("export-counts", "Use 4 7 8 8 to make 24.", domain="countdown",
                                 meta={"numbers": [4, 7, 8, 8], "target": 24}))
    a = tree.add_child("0", Step("8-7=1 (left: 1 4 8)", "compute"), score=0.6, value=0.6)
    b = tree.add_child("0", Step("8+7=15 (left: 4 8 15)", "compute"), score=0.3, value=0.3)
    t = tree.add_child(a, Step("(4-1)*8=24 (answer: (4-(8-7))*8)", "conclude", terminal=True,
                               answer="(4-(8-7))*8"), score=0.9, value=0.9)
    sid = store.create_session(tree, name="export-counts", config={}, provenance={}, catalog=None)
    for node, rating in ((a, 1), (t, 1), (b, -1)):
        store.rate(sid, node, "ann", rating)
    open_session(page, url, sid, len(tree))
    page.get_by_role("tab", name="Export / import").click()
    expected = {  # records, steps, good, neutral, bad
        "trl": (2, 3, 2, 0, 1), "prm800k": (2, 5, 3, 0, 2), "math-shepherd": (2, 3, 2, 0, 1),
        "processbench": (2, 3, 2, 0, 1), "pairs": (1, 2, 1, 0, 1), "sft": (1, 2, 2, 0, 0),
    }
    for fmt, (n, steps, good, neutral, bad) in expected.items():
        pick(page, "export-format", fmt)
        page.click("#export-button")
        want = f"{n} {fmt} records from 1 session · {steps} steps: {good} good, {neutral} neutral, {bad} bad"
        page.wait_for_function("(s) => (document.querySelector('#export-summary textarea') || {}).value"
                               "?.startsWith(s)", arg=want, timeout=30_000)
    shot(page, "small-05-export-summary")
    assert page.dialogs == []


# -- invalid bookkeeping is flagged on the node, for human and generated steps alike ---------------------------------
def test_a_step_using_a_number_twice_is_flagged_in_the_inspector_trace_and_hover(app, page):
    url, store = app
    sid, tree = small_tree(store, "invalid-step")
    open_session(page, url, sid, len(tree))
    click_node(page, "0")
    page.locator("#node-text textarea").fill("7+7=14")
    page.click("#human-step")
    new = wait_status(page, "added human step").split("added human step ", 1)[1].split(" ", 1)[0]
    why = "7 is used twice but the numbers left (4 7 8 8) hold one 7"
    stored = store.load_tree(sid).node(new)
    assert stored["text"] == "7+7=14 (left: 4 8 8 14)" and stored["meta"]["invalid"] == why
    page.wait_for_function("(w) => document.querySelector('#node-info textarea, #node-info input').value"
                           ".includes('⚠ invalid: ' + w)", arg=why, timeout=10_000)
    assert f"⚠ invalid: {why}" in page.locator("#trace-table").inner_text()
    hover_node(page, new)
    assert f"⚠ invalid: {why}" in page.locator("#tree-plot .hoverlayer").text_content()
    shot(page, "small-06-invalid-step")
    click_node(page, "0.1")  # a valid step carries no flag
    assert "invalid" not in page.locator("#node-info textarea, #node-info input").first.input_value()
    assert page.dialogs == []


# -- the drawn best path never runs through a step the calculator rejected ---------------------------------------------
BEST_PATH_IDS = """() => {
    const gd = document.querySelector('#tree-plot .js-plotly-plot');
    const nodes = gd.data.find((d) => d.name === 'nodes'), best = gd.data.find((d) => d.name === 'best path');
    if (!nodes || !best) return null;
    return best.x.map((x, i) => nodes.customdata[nodes.x.findIndex((nx, j) => nx === x && nodes.y[j] === best.y[i])]);
}"""


def test_the_drawn_best_path_skips_an_answer_reached_through_a_step_the_calculator_rejected(app, page):
    """The PRM scores a path through the slip `8-7=2` (8-7 is 1) higher than the right path; the page drew it as the
    best path, while the search never answers through a rejected step. Now the right path is drawn."""
    from reasoning.domains import get_domain

    url, store = app
    domain = get_domain("countdown")
    tree = ReasoningTree(Problem("slip-best", "Use 4 7 8 8 to make 24.", domain="countdown",
                                 meta={"numbers": [4, 7, 8, 8], "target": 24}))

    def add(parent: str, text: str, score: float) -> str:
        step = domain.observe(tree.state(parent), Step(text, "compute"))
        meta = {"invalid": step.meta["invalid"]} if step.meta.get("invalid") else None
        return tree.add_child(parent, step, score=score, value=score, meta=meta)

    slip = add("0", "8-7=2", 0.95)
    add(add(slip, "8/2=4", 0.95), "4*4=16", 0.95)
    right = [add("0", "8-4=4", 0.6)]
    right.append(add(right[-1], "7-4=3", 0.6))
    right.append(add(right[-1], "8*3=24", 0.6))
    assert tree.invalid(slip) == "8-7 is 1, not 2" and tree.node(right[-1])["terminal"]
    sid = store.create_session(tree, name="slip-best", config={}, provenance={}, catalog=None)
    open_session(page, url, sid, len(tree))
    assert page.evaluate(BEST_PATH_IDS) == ["0", *right]
    shot(page, "small-07-best-path-skips-slip")
    assert page.dialogs == []
