"""Import speed: a generated problems file of N records read and stored in one transaction (all or nothing).

    python bench/bench_import.py --problems 227000 [--db URL]

Prints the seconds to read, the seconds to store, and the rows found afterwards; the file and (by default) the SQLite
database are made in a temporary folder and removed.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from storage.importers import read_import  # noqa: E402
from storage.store import Store  # noqa: E402


def write_problems(path: Path, n: int) -> None:
    """`n` distinct GSM8K-sized math problems with answers, one JSON record per line."""
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            text = (f"Problem {i}: a shop sells {i % 97 + 2} boxes of {i % 13 + 3} pencils each morning and "
                    f"{i % 7 + 1} boxes each afternoon. How many pencils does it sell in {i % 5 + 2} days?")
            f.write(json.dumps({"id": f"gen-{i}", "problem": text, "answer": str(i)}) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--problems", type=int, default=227_000, help="records to generate")
    p.add_argument("--db", help="database URL (default: a fresh SQLite file in a temporary folder)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="rte-bench-import-") as tmp:
        src = Path(tmp) / "problems.jsonl"
        write_problems(src, args.problems)
        size = src.stat().st_size / 1e6
        with Store(args.db or f"sqlite:///{tmp}/explorer.db") as store:
            t0 = time.perf_counter()
            batch = read_import(src, "problems")
            t1 = time.perf_counter()
            store.import_trees(batch.problems, batch.trees, annotator="imported:problems",
                               source={"format": "problems", "file": src.name})
            t2 = time.perf_counter()
            stored = store.counts()["problems"]
        print(f"{args.problems} problems ({size:.1f} MB): read {t1 - t0:.1f} s, stored {t2 - t1:.1f} s, "
              f"total {t2 - t0:.1f} s; {stored} problems in the database")
    return 0


if __name__ == "__main__":
    sys.exit(main())
