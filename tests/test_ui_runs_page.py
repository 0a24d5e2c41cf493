"""The Runs page in headless Chromium, on the demo models: start a 20-problem run from the page, stop it, resume it,
start a second run with another algorithm, compare the two, open a problem where they differ and see both trees side
by side; the page's comparison line is `runs compare`'s, word for word."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("playwright")

from helpers.browser import pick, shot, value, wait_value  # noqa: E402

from storage.runs import Runs  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[1]


def fill(page, elem_id: str, text: str) -> None:
    box = page.locator(f"#{elem_id} input, #{elem_id} textarea").first
    box.fill(text)
    box.press("Tab")


def wait_run(runs: Runs, rid: int, done: int | None = None, status: str | None = None, timeout: float = 300):
    end = time.time() + timeout
    while time.time() < end:
        info = runs.info(rid)
        if (done is None or info.done >= done) and (status is None or info.status == status):
            return info
        time.sleep(0.3)
    raise AssertionError(f"run {rid} never reached done>={done} status={status}: {runs.info(rid)}")


def test_start_stop_resume_compare_and_open_both_trees(app, page):
    url, store = app
    runs = Runs(store)
    page.goto(url)
    page.get_by_role("tab", name="Runs").click()
    page.wait_for_function("() => (document.querySelector('#run-set input') || {}).value?.includes('countdown')")
    pick(page, "run-set", "countdown-eval (200 problems)")
    fill(page, "run-limit", "20")
    pick(page, "run-algorithm", "greedy")
    fill(page, "run-budget", "8")
    fill(page, "run-name", "greedy-8")
    page.click("#run-start")
    wait_value(page, "runs-message", "started run")
    rid_a = int(value(page, "runs-message").rsplit(" ", 1)[1])
    wait_run(runs, rid_a, done=3)
    page.click("#run-stop")
    wait_value(page, "runs-message", f"stopping run {rid_a}")
    stopped = wait_run(runs, rid_a, status="stopped")
    assert 3 <= stopped.done < 20, stopped
    page.wait_for_function("(n) => document.querySelector('#run-progress').innerText.includes(n)",
                           arg=f"{stopped.done} of 20 problems")
    page.click("#run-resume")
    wait_value(page, "runs-message", f"resumed run {rid_a}")
    finished = wait_run(runs, rid_a, status="finished")
    assert finished.done == 20
    results = runs.results(rid_a)
    assert sorted(r.problem_id for r in results) == sorted({r.problem_id for r in results})  # each problem once
    assert all(r.status == "done" and r.session_id for r in results)

    pick(page, "run-algorithm", "best_of_n")
    fill(page, "run-name", "bon-8")
    page.click("#run-start")
    page.wait_for_function("(a) => !(document.querySelector('#runs-message textarea') || {}).value?.endsWith(' ' + a)",
                           arg=str(rid_a))
    wait_value(page, "runs-message", "started run")
    rid_b = int(value(page, "runs-message").rsplit(" ", 1)[1])
    wait_run(runs, rid_b, status="finished")
    page.click("#runs-refresh")
    page.wait_for_function("() => document.querySelector('#runs-table').innerText.includes('bon-8')")
    fill(page, "compare-a", str(rid_a))
    fill(page, "compare-b", str(rid_b))
    page.click("#runs-compare")
    line = wait_value(page, "compare-line", "shared problems")
    cli = subprocess.run([sys.executable, str(ROOT / "app.py"), "runs", "--db", store.url, "compare", str(rid_a),
                          str(rid_b)], capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr
    assert line.splitlines()[0] in cli.stdout, (line, cli.stdout)
    assert line.startswith("20 shared problems")
    # a problem where they differ: both trees side by side
    page.locator("#compare-diffs [role=gridcell][data-row='0']").first.click()
    for side in ("a", "b"):
        page.wait_for_function(
            "(id) => { const gd = document.querySelector('#compare-tree-' + id + ' .js-plotly-plot');"
            " const t = gd && gd.data && gd.data.find((d) => d.name === 'nodes'); return t && t.x.length > 1; }",
            arg=side, timeout=30_000)
    shot(page, "runs-compare")
    page.click("#runs-report")
    page.wait_for_selector("#runs-report-file a", timeout=60_000)
    assert page.dialogs == []
