"""Issue 16, case 10, in headless Chromium: an error toast that echoes what was typed shows it as text, never as
markup (session ids `<b>B</b><a/href=//x.invalid>L</a>` on the Export tab made bold text and a live link)."""
from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("playwright")
from helpers.browser import click_node, open_session, shot  # noqa: E402

from reasoning.tree import ReasoningTree  # noqa: E402
from reasoning.types import Problem, Step  # noqa: E402
from storage.importers import import_file  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.slow]
MARKUP = "<b>B</b><a/href=//x.invalid>L</a>"


def test_an_error_toast_shows_echoed_markup_as_text(app, page):
    url, _ = app
    page.goto(url)
    page.get_by_role("tab", name="Export / import").click()
    page.locator("#export-scope").get_by_text("these ids").click()
    page.locator("#export-ids textarea, #export-ids input").first.fill(MARKUP)
    page.click("#export-button")
    toast = page.locator(".toast-body").first
    toast.wait_for(timeout=30_000)
    shot(page, "toast-escaped")
    assert "<b>B</b>" in toast.inner_text()  # the typed text, shown as typed
    assert toast.locator("b").count() == 0 and toast.locator("a").count() == 0
    assert page.locator("a[href*='x.invalid']").count() == 0


# -- the rendered (math typeset) view: model and imported text stays inert there too (issue 13) -----------------------
HOSTILE_PROBLEM = ("Use 1 2 3 4 to make 24. <script>window.__xss = 11</script> "
                   "$\\href{javascript:window.__xss=12}{x}$")
HOSTILE_STEPS = [
    '<img src="http://x.invalid/a.png" onerror="window.__xss = 13"> [x](javascript:window.__xss=14) '
    "![i](http://x.invalid/i.png) <http://x.invalid/auto> www.x.invalid",
    "\\href{javascript:window.__xss=15}{y} \\url{javascript:window.__xss=16} \\(\\url{javascript:window.__xss=17}\\) "
    '$$\\href{javascript:window.__xss=18}{z}$$ <a href="javascript:window.__xss=19">a</a>',
    "So $\\frac{1}{2}$ of 8*3*1 is 12, and it costs $\\$1.24$.",
]


def rendered(pg, needle: str) -> str:
    """The rendered view's text once it shows `needle`."""
    pg.wait_for_function("(s) => (document.querySelector('#math-view') || {}).innerText?.includes(s)", arg=needle,
                         timeout=30_000)
    return pg.locator("#math-view").inner_text()


def test_the_rendered_math_view_keeps_hostile_text_inert(app, page):
    url, store = app
    tree = ReasoningTree(Problem("math-xss", HOSTILE_PROBLEM, domain="countdown"))
    nid = "0"
    for i, text in enumerate(HOSTILE_STEPS):
        nid = tree.add_child(nid, Step(text, "compute"), score=0.5, value=0.5, iteration=i + 1)
    sid = store.create_session(tree, name="math xss", config={}, provenance={}, catalog=None)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    open_session(page, url, sid, len(tree))
    rendered(page, "window.__xss = 11")  # the problem shows as soon as the session opens
    click_node(page, nid)
    text = rendered(page, "8*3*1 is 12")
    view = page.locator("#math-view")
    shot(page, "08-math-view-hostile")
    for shown in ("<script>window.__xss = 11</script>", '<img src="http://x.invalid/a.png"',
                  "[x](javascript:window.__xss=14)", "\\url{javascript:window.__xss=16}",
                  '<a href="javascript:window.__xss=19">a</a>', "8*3*1 is 12"):
        assert shown in text, f"{shown!r} is shown as text"
    assert view.locator("script, img, a, iframe, object, embed, [onerror]").count() == 0
    assert page.locator("a[href^='javascript'], a[href*='x.invalid'], img[src*='x.invalid']").count() == 0
    # the math typeset: \frac and the escaped dollar of MATH's currency
    tex = view.locator(".katex annotation").all_text_contents()
    assert "\\frac{1}{2}" in tex and "\\$1.24" in tex
    assert not any("href" in t or "url" in t for t in tex), "a link command is never handed to KaTeX"
    assert page.evaluate("() => window.__xss") is None and page.dialogs == []
    assert not [u for u in requests if "x.invalid" in u]


def test_an_imported_prm800k_trace_renders_its_math(app, page):
    url, store = app
    data = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    if not data.is_dir():
        data = Path("/work/shared/data")
    sid = import_file(store, data / "prm800k_samples.jsonl", "prm800k")["sessions"][0]
    tree = store.load_tree(sid)
    deepest = max(tree.nodes(), key=lambda n: tree.node(n)["depth"])
    open_session(page, url, sid, len(tree))
    click_node(page, deepest)
    text = rendered(page, "Three pencils and a jumbo eraser cost")
    shot(page, "09-math-view-prm800k")
    assert "$\\$1.24$" not in text, "the problem's math is typeset, not raw"
    tex = page.locator("#math-view .katex annotation").all_text_contents()
    assert "\\$1.24" in tex and "3p+e=1.24" in tex
