"""The web's rate path, side by side in one run: the row-level path (`Explorer.rate` now) against the path it replaced
(resolve the session and load the whole tree with `Sessions.target`, then the same one-row write).

    python bench/bench_rate_path.py [--db URL] [--nodes 400] [--ratings 200]

Prints the median and p95 milliseconds of each and their ratio, on a session of --nodes nodes. Both paths write the
same rows; only the reads before the write differ.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reasoning.tree import ReasoningTree  # noqa: E402
from reasoning.types import Problem, Step  # noqa: E402
from storage.store import Store  # noqa: E402
from ui.service import Explorer  # noqa: E402


def big_tree(nodes: int) -> ReasoningTree:
    """A tree of `nodes` nodes, 8 children per node, breadth first."""
    tree = ReasoningTree(Problem("bench-rate", "Use 4 7 8 8 to make 24."))
    frontier, i = ["0"], 0
    while len(tree) < nodes:
        parent = frontier.pop(0)
        for _ in range(8):
            if len(tree) >= nodes:
                break
            frontier.append(tree.add_child(parent, Step(f"step {i}: 8-7=1", factor="compute")))
            i += 1
    return tree


def timed(fn, n: int) -> list[float]:
    out = []
    for k in range(n):
        t0 = time.perf_counter()
        fn(k)
        out.append(1000 * (time.perf_counter() - t0))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--db", help="database URL (default: a SQLite file in a temporary folder)")
    p.add_argument("--nodes", type=int, default=400)
    p.add_argument("--ratings", type=int, default=200)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="rte-bench-rate-") as tmp, \
            Store(args.db or f"sqlite:///{tmp}/bench.db") as store:
        engine = Explorer(None, None, store)  # type: ignore[arg-type] - rating uses no model
        tree = big_tree(args.nodes)
        sid = store.create_session(tree)
        ids = [n for n in tree.nodes() if n != "0"]

        def new_path(k: int) -> None:
            engine.rate(sid, ids[k % len(ids)], (k % 3) - 1, annotator="bench-new")

        def old_path(k: int) -> None:
            engine.sessions_.target(sid, ids[k % len(ids)])  # what every rating did before: the whole tree
            engine.rate(sid, ids[k % len(ids)], (k % 3) - 1, annotator="bench-old")

        new_path(0), old_path(0)  # warm up both
        rows = {}
        for name, fn in (("row-level (now)", new_path), ("whole tree (before)", old_path)):
            ms = timed(fn, args.ratings)
            rows[name] = (statistics.median(ms), sorted(ms)[int(0.95 * (len(ms) - 1))])
        print(f"{args.ratings} ratings on a session of {len(tree)} nodes ({store.engine.dialect.name}):")
        for name, (p50, p95) in rows.items():
            print(f"  {name:<20} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms")
        (n50, n95), (o50, o95) = rows.values()
        print(f"  before / now: p50 {o50 / n50:.1f}x, p95 {o95 / n95:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
