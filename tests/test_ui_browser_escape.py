"""Issue 16, case 10, in headless Chromium: an error toast that echoes what was typed shows it as text, never as
markup (session ids `<b>B</b><a/href=//x.invalid>L</a>` on the Export tab made bold text and a live link)."""
from __future__ import annotations

import pytest

pytest.importorskip("playwright")
from test_ui_browser import app, browser, page, shot  # noqa: E402, F401 - the same served app, browser and page

pytestmark = [pytest.mark.browser, pytest.mark.slow]
MARKUP = "<b>B</b><a/href=//x.invalid>L</a>"


def test_an_error_toast_shows_echoed_markup_as_text(app, page):  # noqa: F811
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
