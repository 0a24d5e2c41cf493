"""Share a tree: `app.py export --format html` writes one self-contained page (plotly inside, no network) whose
hovers and trace show model text as text; the page works opened from disk in headless Chromium."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from reasoning.tree import ReasoningTree
from reasoning.types import Problem, Step
from storage import Store

ROOT = Path(__file__).resolve().parents[1]
XSS = ('<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2"> </script><!-- '
       '<a href="javascript:window.__xss=3">x</a> $\\href{javascript:alert(1)}{y}$')


def stored(tmp_path: Path) -> tuple[str, int]:
    db = f"sqlite:///{tmp_path / 'share.db'}"
    tree = ReasoningTree(Problem("share", "Use 4 7 8 8 to make 24.", domain="countdown"))
    a = tree.add_child("0", Step(XSS, "verify"), score=0.25, value=0.5)
    tree.add_child(a, Step("8-7=1 (left: 1 4 8)", "compute"), score=0.75, value=0.75)
    with Store(db) as store:
        sid = store.create_session(tree, name="<b>shared</b>", config={}, provenance={}, catalog=None)
        store.rate(sid, a, "alice", -1)
    return db, sid


def export(db: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "app.py"), "export", "--format", "html", "--db", db, *args],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)


def test_export_html_is_one_self_contained_escaped_page(tmp_path):
    db, sid = stored(tmp_path)
    out = tmp_path / "tree.html"
    proc = export(db, "--session", str(sid), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    page = out.read_text(encoding="utf-8")
    assert re.search(r"<script[^>]+src=", page) is None  # nothing loaded from the network
    assert "plotly.js v" in page or "Plotly" in page  # the offline bundle is inside
    assert "<script>window.__xss" not in page and "<img src=x" not in page and "<!-- <a" not in page
    data = page.split('<script type="application/json" id="tree-data">', 1)[1].split("</script>", 1)[0]
    nodes = json.loads(data)
    assert nodes["0.0"]["text"] == XSS and nodes["0.0"]["human"] == "alice -1"
    assert "&lt;b&gt;shared&lt;/b&gt;" in page


def test_export_html_needs_one_session_and_leaves_nothing_half_written(tmp_path):
    db, sid = stored(tmp_path)
    out = tmp_path / "none.html"
    proc = export(db, "--out", str(out))
    assert proc.returncode == 2 and "exactly one --session" in proc.stderr and not out.exists()
    proc = export(db, "--session", "999", "--out", str(out))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and not out.exists()
    assert not list(tmp_path.glob(".share-*"))


@pytest.mark.browser
def test_the_shared_page_works_offline_and_shows_a_clicked_trace_as_text(tmp_path, browser):
    db, sid = stored(tmp_path)
    out = tmp_path / "tree.html"
    assert export(db, "--session", str(sid), "--out", str(out)).returncode == 0
    context = browser.new_context(offline=True, viewport={"width": 1200, "height": 900})
    page = context.new_page()
    requests = []
    page.on("request", lambda r: requests.append(r.url) if not r.url.startswith(("file:", "data:")) else None)
    page.goto(out.as_uri())
    page.wait_for_function("() => { const gd = document.querySelector('.plotly-graph-div');"
                           " return gd && gd._fullLayout && gd.data.some((d) => d.name === 'nodes'); }")
    xy = page.evaluate("""() => { const gd = document.querySelector('.plotly-graph-div');
        const t = gd.data.find((d) => d.name === 'nodes'); const i = t.customdata.indexOf('0.0');
        const L = gd._fullLayout, box = gd.getBoundingClientRect();
        return [box.left + L._size.l + L.xaxis.d2p(t.x[i]), box.top + L._size.t + L.yaxis.d2p(t.y[i])]; }""")
    page.mouse.click(*xy)
    page.wait_for_function("() => document.getElementById('trace-title').textContent.endsWith('0.0')")
    assert XSS in page.locator("#trace").inner_text()
    assert page.locator("#trace img, #trace a, #trace script").count() == 0
    assert page.evaluate("() => window.__xss") is None and requests == []
    page.screenshot(path=str(tmp_path / "shared.png"))
    context.close()


def test_the_shared_page_carries_auto_labels_and_gold_checks(tmp_path):
    """Issue 13: colour by auto label works in the shared page too; its hovers and trace show the auto labels and
    the gold check of a finished path."""
    from storage.records import AutoLabel
    from ui.share import share_html

    db, sid = stored(tmp_path)
    with Store(db) as store:
        tree = store.load_tree(sid)
        store.set_auto_labels(sid, [AutoLabel("0.0.0", "rollout", 4, 3, 0.75, True)])
        page = share_html(tree, store.annotations(sid), title="t", color_by="auto",
                          auto_labels=store.auto_labels(sid))
    data = json.loads(page.split('<script type="application/json" id="tree-data">', 1)[1].split("</script>", 1)[0])
    assert data["0.0.0"]["auto"] == "rollouts 3/4 = 0.75 (rollout)" and data["0.0"]["auto"] == ""
    assert "gold" in data["0"] and "<th>auto</th>" in page
    hover = page.replace("\\u002f", "/")  # plotly writes the figure's / as \u002f
    assert "auto: rollouts 3/4 = 0.75 (rollout)" in hover and "auto label" in page  # the hover, the colour bar
