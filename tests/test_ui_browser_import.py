"""Browser test of the page's import (issue 22, items 3 and 13): a PRM800K file imported with the format left at its
default is read as PRM800K, and importing it again adds nothing and says so."""
from __future__ import annotations

import shutil

import pytest

pytest.importorskip("playwright")

from helpers.browser import import_report, shot  # noqa: E402
from helpers.data import PRM800K  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def report_says(page, needle: str) -> str:
    return import_report(page, needle, timeout=60_000)


def test_a_prm800k_file_is_detected_and_imported_once(app, page, tmp_path):
    url, store = app
    path = shutil.copy(PRM800K, tmp_path / "labels.jsonl")
    before = store.counts()["sessions"]
    page.goto(url)
    page.get_by_role("tab", name="Export / import").click()
    page.locator("#import-file input[type=file]").set_input_files(str(path))
    page.locator("#import-file a[download='labels.jsonl']").wait_for(timeout=30_000)  # uploaded
    assert page.locator("#import-format input").input_value() == "detect from the file"

    page.click("#import-validate")
    assert report_says(page, "valid: ").startswith("detected format prm800k; valid: ")
    page.click("#import-button")
    first = report_says(page, "imported 6 new problems")
    assert first.startswith("detected format prm800k: imported 6 new problems, 6 sessions, 73 steps, 71 labels"), first
    assert store.counts()["sessions"] == before + 6

    page.click("#import-button")  # the same file again
    again = report_says(page, "nothing new")
    assert again.startswith("detected format prm800k: imported 0 new problems, 6 already present, 0 sessions, "
                            "0 steps, 0 labels; nothing new: all 6 traces were imported before (in sessions "), again
    assert store.counts()["sessions"] == before + 6
    shot(page, "import-01-reimport")
    assert page.dialogs == []
