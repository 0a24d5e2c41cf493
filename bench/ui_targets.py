"""The explorer's targets, measured in headless Chromium; a benchmark, not a timed test.

    python bench/ui_targets.py [--tree FILE | --nodes 2000] [--budget 200] [--repeat 5] [--skip-search]

Serves the app in this process with the demo models and a throwaway SQLite database, stores a tree, and measures
as a user sees it. The tree is, by default, the 2,001-node tree a real search grew (MCTS at budget 2000 on 'Use 4 7 8
8 to make 24.' with the demo models, grown once and kept in tests/data/mcts_2000.json.gz, the shape the walkthrough
measured: bushy, 30 children at the root, 9 levels); `--nodes N` stores the former synthetic tree of N nodes
(mostly one long chain) instead. It measures opening the tree (Sessions -> Open until the plot shows it), a click on a
node (until the inspector shows its trace), a rating (until the status acknowledges it), whether the zoom survives
the rating, and a live search in the UI against the same search over the `/search` API (wall time, side by side in
one run, same problem, settings and seed; the nodes and answer of both are printed beside the times).
Targets: open < 1.5 s, click < 0.5 s, rating < 0.3 s, zoom kept, UI search <= 1.5x `/search`.
`--skip-search` leaves out the live search (minutes at budget 200) while iterating on the tree figures;
`--search-only` measures only the live search.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from playwright.sync_api import Page, sync_playwright  # noqa: E402

from reasoning.tree import ReasoningTree  # noqa: E402
from reasoning.types import Problem, Step  # noqa: E402
from storage import Store  # noqa: E402
from ui.testing import demo_models, serve  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
PROBLEM = "Use 3 5 7 9 to make 24."
GROWN = ROOT / "tests" / "data" / "mcts_2000.json.gz"
# The page draws the nodes that fit (ui/plots.py PAGE_COLUMNS), a few dozen of a 2,000-node tree: opened means the
# plot shows this session's tree (its title counts the tree's nodes).
NODES_JS = ("(n) => { const gd = document.querySelector('#tree-plot .js-plotly-plot');"
            " const t = gd && gd.data && gd.data.find((d) => d.name === 'nodes');"
            " const title = (gd && gd._fullLayout && gd._fullLayout.title && gd._fullLayout.title.text) || '';"
            " return t && t.x.length >= 10 && title.includes(' of ' + n + ' nodes'); }")


def grown_tree(store: Store, path: Path) -> tuple[int, int]:
    """The stored tree a real search grew (see the module docstring): its session id and size."""
    tree = ReasoningTree.from_dict(json.loads(gzip.decompress(path.read_bytes())))
    return store.create_session(tree, name=f"grown {len(tree)}", config={}, provenance={}, catalog=None), len(tree)


def big_tree(store: Store, n: int) -> int:
    tree = ReasoningTree(Problem(f"bench{n}", "Use 2 5 6 9 to make 24.", domain="countdown"))
    ids = ["0"]
    for i in range(n - 1):
        parent = ids[(i * 7) // 10]  # a bushy, deep tree like a long MCTS run
        nid = tree.add_child(parent, Step(f"step {i}", ("compute", "verify", "correct")[i % 3]),
                             score=(i % 10) / 10, value=(i % 10) / 10)
        tree.node(nid)["visits"] = 1 + (i % 5)
        ids.append(nid)
    return store.create_session(tree, name=f"bench {n}", config={}, provenance={}, catalog=None)


def status(page: Page) -> str:
    return page.locator("#status textarea, #status input").first.input_value()


def open_tree(page: Page, url: str, sid: int, nodes: int) -> float:
    page.goto(url)
    page.get_by_role("tab", name="Sessions").click()
    page.locator("#session-pick input").fill(str(sid))
    t0 = time.perf_counter()
    page.click("#session-open")
    page.wait_for_function(NODES_JS, arg=nodes, timeout=60_000, polling=20)
    return time.perf_counter() - t0


def node_xy(page: Page, depth: int, k: int) -> tuple[str, float, float]:
    return tuple(page.evaluate("""([depth, k]) => {
        const gd = document.querySelector('#tree-plot .js-plotly-plot');
        gd.scrollIntoView({block: 'center'});
        const t = gd.data.find((d) => d.name === 'nodes'), L = gd._fullLayout, box = gd.getBoundingClientRect();
        const [x0, x1] = L.xaxis.range, [y0, y1] = L.yaxis.range;  // only nodes inside the zoomed view
        const ids = t.customdata.map((id, i) => [id, i]).filter(([id, i]) => id.split('.').length === depth + 1
            && t.x[i] > x0 && t.x[i] < x1 && t.y[i] > y0 && t.y[i] < y1);
        const [id, i] = ids[k % ids.length];
        return [id, box.left + L._size.l + L.xaxis.d2p(t.x[i]), box.top + L._size.t + L.yaxis.d2p(t.y[i])]; }""",
                               [depth, k]))


def click_time(page: Page, k: int) -> tuple[str, float]:
    page.wait_for_timeout(400)  # apart from the last click by more than plotly's double click (300 ms)
    nid, x, y = node_xy(page, 1 + k % 3, k)
    t0 = time.perf_counter()
    page.mouse.click(x, y)
    page.wait_for_function("(id) => (document.querySelector('#node-info textarea, #node-info input') || {}).value"
                           "?.startsWith('node ' + id + ' ')", arg=nid, timeout=30_000, polling=10)
    return nid, time.perf_counter() - t0


def rate_time(page: Page, nid: str, rating: str) -> float:
    button, sign = ("#rate-good", "+1") if rating == "good" else ("#rate-bad", "-1")
    t0 = time.perf_counter()
    page.click(button)
    page.wait_for_function("(s) => (document.querySelector('#status textarea, #status input') || {}).value"
                           ".startsWith(s)", arg=f"rated node {nid} {sign}", timeout=30_000, polling=10)
    return time.perf_counter() - t0


def x_range(page: Page) -> list[float]:
    return page.evaluate("() => document.querySelector('#tree-plot .js-plotly-plot')._fullLayout.xaxis.range")


def ui_search(page: Page, url: str, budget: int) -> tuple[float, str]:
    page.goto(url)
    page.locator("#problem textarea").fill(PROBLEM)
    box = page.locator("#budget input[type=number]")
    box.fill(str(budget))
    box.press("Enter")
    t0 = time.perf_counter()
    page.click("#run-search")
    page.wait_for_function("() => /: (finished|stopped)/.test((document.querySelector('#status textarea') || {})"
                           ".value || '')", timeout=900_000, polling=50)
    return time.perf_counter() - t0, status(page)


def api_search(url: str, budget: int) -> tuple[float, dict]:
    from gradio_client import Client

    client = Client(url, verbose=False)
    t0 = time.perf_counter()
    out = client.predict(PROBLEM, api_name="/search", budget=budget, seed=0)
    return time.perf_counter() - t0, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tree", type=Path, default=GROWN, help="a stored tree (JSON, gzipped) grown by a search")
    ap.add_argument("--nodes", type=int, default=0, help="store the synthetic tree of this many nodes instead")
    ap.add_argument("--budget", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--skip-search", action="store_true", help="measure the tree only, not the live search")
    ap.add_argument("--search-only", action="store_true", help="measure the live search only, not the tree")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="rte-bench-ui-"))
    generator, scorer = demo_models()
    store = Store(f"sqlite:///{tmp / 'bench.db'}")
    sid, size = (big_tree(store, args.nodes), args.nodes) if args.nodes else grown_tree(store, args.tree)
    with serve(generator=generator, scorer=scorer, store=store) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 1100})
        if not args.search_only:
            opens = [open_tree(page, url, sid, size) for _ in range(args.repeat)]
            print("open:", [round(x, 2) for x in opens], flush=True)
            page.evaluate("() => Plotly.relayout(document.querySelector('#tree-plot .js-plotly-plot'),"
                          " {'xaxis.range': [0, 30], 'yaxis.range': [-4.5, 0.5]})")
            zoom = x_range(page)
            clicks, rates = [], []
            for k in range(args.repeat):
                nid, secs = click_time(page, k)
                clicks.append(secs)
                rates.append(rate_time(page, nid, "good" if k % 2 else "bad"))
                print(f"click {clicks[-1]:.2f} s, rate {rates[-1]:.2f} s", flush=True)
            page.wait_for_timeout(500)
            kept = all(abs(a - b) < 1e-6 for a, b in zip(x_range(page), zoom, strict=True))
            page.screenshot(path=str(tmp / "bench-large-tree.png"))
        if not args.skip_search:
            ui_secs, ui_status = ui_search(page, url, args.budget)
            api_secs, api_out = api_search(url, args.budget)
        browser.close()
    store.close()
    if not args.search_only:
        med = statistics.median
        print(f"tree of {size} nodes, {'synthetic' if args.nodes else args.tree.name} (median of {args.repeat}), "
              f"load {' '.join(f'{x:.2f}' for x in os.getloadavg())}:")
        print(f"  open  {med(opens):.2f} s   (target < 1.5 s; all: {', '.join(f'{x:.2f}' for x in opens)})")
        print(f"  click {med(clicks):.2f} s   (target < 0.5 s; all: {', '.join(f'{x:.2f}' for x in clicks)})")
        print(f"  rate  {med(rates):.2f} s   (target < 0.3 s; all: {', '.join(f'{x:.2f}' for x in rates)})")
        print(f"  zoom kept across clicks and ratings: {kept}")
        print(f"screenshot: {tmp / 'bench-large-tree.png'}")
    if not args.skip_search:
        print(f"live search, budget {args.budget}, '{PROBLEM}', seed 0:")
        print(f"  UI      {ui_secs:.1f} s  ({ui_status})")
        print(f"  /search {api_secs:.1f} s  ({api_out.get('status')})")
        print(f"  ratio UI / API = {ui_secs / api_secs:.2f} (target <= 1.5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
