"""Benchmark: time to build the tree figure for 2,000- and 20,000-node trees, and the app's first page load.

Run: .venv/bin/python bench/bench_figure.py [--no-page]
Targets: 2,000 nodes < 150 ms, 20,000 nodes < 1.5 s, first page load < 3 s.
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reasoning.tree import ROOT, ReasoningTree  # noqa: E402
from reasoning.types import Problem, Step  # noqa: E402
from ui.figure import tree_figure  # noqa: E402

FACTORS = ("restate", "decompose", "propose", "compute", "verify", "correct", "conclude")
TARGETS = {2_000: 0.150, 20_000: 1.5}
PAGE_TARGET = 3.0


def synthetic_tree(n: int, seed: int = 0, max_depth: int = 12) -> ReasoningTree:
    """An MCTS-shaped tree of `n` nodes: wide near the root, a few terminals, some pruned subtrees."""
    rng = random.Random(seed)
    tree = ReasoningTree(Problem("bench", "Use 4 7 8 8 to make 24.", domain="countdown"))
    open_nodes = [ROOT]
    while len(tree) < n:
        parent = rng.choice(open_nodes[-200:]) if rng.random() < 0.7 else rng.choice(open_nodes)
        factor = rng.choice(FACTORS)
        depth = tree.node(parent)["depth"] + 1
        terminal = factor == "conclude" or depth >= max_depth
        text = f"step {len(tree)}: 8 - 7 = 1 <b>not bold</b> " + "x" * rng.randrange(80)
        nid = tree.add_child(parent, Step(text, factor, terminal=terminal, answer="24" if terminal else None),
                             prior=rng.random(), iteration=len(tree) // 4)
        a = tree.node(nid)
        a["score"] = rng.random()
        a["value"] = rng.random()
        a["visits"] = rng.randrange(6)
        a["value_sum"] = a["visits"] * rng.random()
        a["pruned"] = rng.random() < 0.01
        if not terminal:
            open_nodes.append(nid)
    return tree


def time_figure(n: int, repeats: int = 3) -> float:
    tree = synthetic_tree(n)
    tree_figure(tree)  # warm-up (imports, plotly validators)
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        tree_figure(tree)
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def time_figure_json(n: int) -> float:
    """Figure build plus its JSON serialisation (what gr.Plot sends)."""
    tree = synthetic_tree(n)
    t0 = time.perf_counter()
    tree_figure(tree).to_json()
    return time.perf_counter() - t0


def time_first_page_load() -> float | None:
    """Seconds from navigation until the tree plot and the Run button are on screen, app served in-process."""
    import tempfile

    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    from storage import Store
    from ui.testing import demo_models, serve

    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        store = Store(f"sqlite:///{tmp}/bench.db")
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        generator, scorer = demo_models()  # the page load runs no search, but the app is served as users get it
        with serve(generator=generator, scorer=scorer, store=store) as url:
            page = browser.new_page()
            page.goto(url)  # warm-up: the server compiles and caches its assets on the first request
            page = browser.new_page()
            t0 = time.perf_counter()
            page.goto(url)
            page.wait_for_selector("#run-search", state="visible")
            page.wait_for_selector("#tree-plot .js-plotly-plot", state="attached")
            took = time.perf_counter() - t0
        browser.close()
        store.close()
    return took


CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-page", action="store_true", help="skip the first-page-load measurement")
    args = parser.parse_args()
    for n, target in TARGETS.items():
        took = time_figure(n)
        print(f"figure {n:>6} nodes: {took * 1000:8.1f} ms  target {target * 1000:6.0f} ms  "
              f"ratio {took / target:5.2f}  ({'ok' if took <= target else 'SLOW'})")
        print(f"  with to_json:      {time_figure_json(n) * 1000:8.1f} ms")
    if not args.no_page:
        took = time_first_page_load()
        if took is None:
            print("first page load: playwright not installed, skipped")
        else:
            print(f"first page load:     {took:8.2f} s   target {PAGE_TARGET:6.1f} s   ratio {took / PAGE_TARGET:5.2f}  "
                  f"({'ok' if took <= PAGE_TARGET else 'SLOW'})")


if __name__ == "__main__":
    main()
