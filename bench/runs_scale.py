"""Runs at scale, a benchmark (not a timed test): the runs table and the comparison of two 1,000-problem runs, and a
database of 227,000 stored problems against the problem lookup of a search and the picker of a page open.

    python -m bench.runs_scale [--problems 227000] [--run-problems 1000] [--db URL]

Prints each time with the load average beside it, and the problem lookups before (every stored problem read and
scanned in Python, as `/search` and a page open did) and after (the database's own lookup), side by side in one run.
Targets: runs table and comparison < 1 s; a lookup and a picker that do not grow with the stored problems.
"""
from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from experiments.compare import compare, run_rows
from reasoning.tree import ReasoningTree
from reasoning.types import Problem, Step
from storage import Store
from storage.runs import Runs
from storage.store import _put_problems


def timed(fn: Callable[[], Any], repeat: int = 3) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def load() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def fill_problems(store: Store, n: int) -> list[Problem]:
    problems = [Problem(f"gsm-{i}", f"Problem {i}: a farmer has {i} apples and buys {i % 97} more. How many?",
                        str(i + i % 97)) for i in range(n)]
    for start in range(0, n, 20000):
        store._transact(lambda s, chunk=problems[start:start + 20000]: _put_problems(s, chunk))
    return problems


def fill_run(runs: Runs, problems: list[Problem], name: str, rate: float, seed: int) -> int:
    rng = random.Random(seed)
    rid = runs.create(name=name, problem_set="bench", problems=problems, config={"algorithm": name, "budget": 64,
                                                                               "seed": 0}, models={}, started_by="b")
    for p in problems:
        ok = rng.random() < rate
        t = ReasoningTree(p)
        t.add_child("0", Step("answer", "conclude", terminal=True, answer=p.answer if ok else "0"), score=0.5)
        runs.record(rid, p.id, {"answer": p.answer if ok else "0", "correct": ok, "nodes": 64, "tokens": 700,
                                "seconds": 2.0, "found": ok or rng.random() < 0.3, "depth": 6, "duplicates": 10,
                                "value": rng.random(), "factors": {"compute": [40, 10], "verify": [20, 5]}},
                    {"tree": t, "name": f"{name}: {p.id}"})
    runs.set_status(rid, "finished")
    return rid


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems", type=int, default=227_000)
    ap.add_argument("--run-problems", type=int, default=1000)
    ap.add_argument("--db", help="database URL (default: a fresh SQLite file)")
    args = ap.parse_args()
    url = args.db or f"sqlite:///{Path(tempfile.mkdtemp(prefix='rte-runs-bench-')) / 'bench.db'}"
    store, t0 = Store(url), time.perf_counter()
    problems = fill_problems(store, args.problems)
    runs = Runs(store)
    some = problems[: args.run_problems]
    a, b = fill_run(runs, some, "mcts", 0.85, 1), fill_run(runs, some, "best_of_n", 0.78, 2)
    print(f"filled {args.problems} problems and two runs of {args.run_problems} in {time.perf_counter() - t0:.0f} s "
          f"({url.split('://')[0]})")
    table, rows = timed(lambda: run_rows(runs.all()))
    print(f"runs table ({len(rows)} runs of {args.run_problems} problems): {table * 1000:.0f} ms  [{load()}]")
    cmp_s, c = timed(lambda: compare(runs, a, b))
    print(f"comparison of two {args.run_problems}-problem runs: {cmp_s * 1000:.0f} ms ({c.stats.n} shared, "
          f"p={c.stats.mcnemar_p:.3g})  [{load()}]")
    text = problems[len(problems) // 2].text
    before, _ = timed(lambda: [p for p in store.problems() if p.text == text], repeat=1)
    after, found = timed(lambda: store.problems(text=text, limit=20))
    assert [p.id for p in found] == [problems[len(problems) // 2].id]
    print(f"problem lookup of a search: scan {before * 1000:.0f} ms -> query {after * 1000:.1f} ms "
          f"({before / after:.0f}x)  [{load()}]")
    pick_before, _ = timed(lambda: list(dict.fromkeys(p.text for p in store.problems()))[:2000], repeat=1)
    pick_after, _ = timed(lambda: [p.text for p in store.problems(limit=2000)])
    print(f"problem picker of a page open: all {pick_before * 1000:.0f} ms -> first 2000 {pick_after * 1000:.1f} ms "
          f"({pick_before / pick_after:.0f}x)  [{load()}]")
    store.close()


if __name__ == "__main__":
    main()
