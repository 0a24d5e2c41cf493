"""Behaviour unchanged, measured: the trees two checkouts grow at the same seeds, compared node for node.

    git worktree add /tmp/before <commit>
    python tools/tree_parity.py /tmp/before . --out /tmp/parity

Runs `solve` in each checkout (this interpreter, one thread) for every algorithm under three configurations on the
first three held-out problems, each into its own SQLite database, then compares every stored node column but the
creation time (the checkouts' own paths in the provenance are made equal first) and the results files. Prints one
line per configuration and exits 1 when any differs. For a refactor that must not change what the search does.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

ALGORITHMS = ("greedy", "best_of_n", "beam", "mcts")
CONFIGS = (["--budget", "16", "--seed", "0"],
           ["--budget", "24", "--seed", "7", "--temperatures", "0.7,1.0"],
           ["--budget", "32", "--seed", "3", "--no-kv-reuse"])


def grow(checkout: Path, out: Path, problems: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for alg in ALGORITHMS:
        for i, cfg in enumerate(CONFIGS, 1):
            name = f"{alg}-{i}"
            subprocess.run([sys.executable, "app.py", "solve", "--problems", str(problems), "--out",
                            str(out / f"{name}.jsonl"), "--algorithm", alg, *cfg, "--db",
                            f"sqlite:///{out / name}.db", "--quiet"], cwd=checkout, env=env, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def rows(db: Path, checkout: Path) -> tuple[list[str], list[tuple]]:
    con = sqlite3.connect(db)
    try:
        cols = [r[1] for r in con.execute("PRAGMA table_info(nodes)") if r[1] not in ("created", "id")]
        found = con.execute(f"SELECT {','.join(cols)} FROM nodes ORDER BY session_id, node_id").fetchall()
    finally:
        con.close()
    here = str(checkout.resolve()) + "/"
    return cols, [tuple(v.replace(here, "<checkout>/") if isinstance(v, str) else v for v in r) for r in found]


def results(path: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in path.read_text().splitlines()]


def compare(a: Path, b: Path, checkout_a: Path, checkout_b: Path) -> int:
    different = 0
    for db in sorted(a.glob("*.db")):
        (cols_a, ra), (cols_b, rb) = rows(db, checkout_a), rows(b / db.name, checkout_b)
        common = [c for c in cols_a if c in cols_b]
        pa = [tuple(r[cols_a.index(c)] for c in common) for r in ra]
        pb = [tuple(r[cols_b.index(c)] for c in common) for r in rb]
        same = pa == pb and results(db.with_suffix(".jsonl")) == results((b / db.name).with_suffix(".jsonl"))
        digest = hashlib.sha256(json.dumps(pa, default=str).encode()).hexdigest()[:12]
        print(f"{db.stem:12} {len(pa):4} / {len(pb):4} nodes  {digest}  {'identical' if same else 'DIFFERENT'}")
        different += not same
    print(f"{len(list(a.glob('*.db'))) - different} identical, {different} different")
    return 1 if different else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("before", type=Path, help="a checkout (e.g. a git worktree of the commit before a refactor)")
    p.add_argument("after", type=Path, help="the other checkout")
    p.add_argument("--out", type=Path, required=True, help="a new folder for the two sets of databases")
    args = p.parse_args()
    problems = args.out / "problems.jsonl"
    args.out.mkdir(parents=True, exist_ok=True)
    source = args.after / "reasoning" / "data" / "countdown_eval.jsonl"
    problems.write_text("".join(source.read_text().splitlines(keepends=True)[:3]))
    grow(args.before, args.out / "before", problems)
    grow(args.after, args.out / "after", problems)
    return compare(args.out / "before", args.out / "after", args.before, args.after)


if __name__ == "__main__":
    sys.exit(main())
