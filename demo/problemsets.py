"""Seeded Countdown problem sets: every solvable multiset, shuffled, split apart by number multiset."""
from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

from reasoning.domains.countdown import solvable

DATA_DIR = Path(__file__).resolve().parent.parent / "reasoning" / "data"
SPLITS = ("train", "dev", "eval")


def solvable_multisets(size: int = 4, low: int = 1, high: int = 13, target: int = 24) -> list[tuple[int, ...]]:
    """Every sorted multiset of `size` numbers in [low, high] that can make `target`."""
    pool = itertools.combinations_with_replacement(range(low, high + 1), size)
    return [m for m in pool if solvable(m, target)]


def wide_multisets(high: int, data_dir: Path = DATA_DIR, size: int = 4, target: int = 24) -> list[tuple[int, ...]]:
    """Every solvable multiset of numbers in [1, `high`] that is in no split (never a dev or eval multiset, and no
    training one twice): more boards for the generator's traces."""
    in_splits = {tuple(sorted(m)) for split in SPLITS for m in load_split(split, data_dir)}
    return [m for m in solvable_multisets(size, 1, high, target) if m not in in_splits]


def make_splits(
    seed: int = 0, n_eval: int = 200, n_dev: int = 100, size: int = 4, low: int = 1, high: int = 13, target: int = 24
) -> dict[str, list[tuple[int, ...]]]:
    """Disjoint train/dev/eval lists of solvable multisets; the same seed always gives the same split."""
    multisets = solvable_multisets(size, low, high, target)
    if n_eval + n_dev >= len(multisets):
        raise ValueError(f"only {len(multisets)} solvable multisets; cannot hold out {n_eval + n_dev}")
    random.Random(seed).shuffle(multisets)
    return {
        "eval": multisets[:n_eval],
        "dev": multisets[n_eval : n_eval + n_dev],
        "train": multisets[n_eval + n_dev :],
    }


def records(split: str, multisets: list[tuple[int, ...]], target: int = 24) -> list[dict]:
    """Problem records in the project's JSONL format (ARCHITECTURE.md, "Contracts")."""
    return [
        {"id": f"countdown-{split}-{i:04d}", "domain": "countdown", "numbers": list(m), "target": target}
        for i, m in enumerate(multisets)
    ]


def write_splits(splits: dict[str, list[tuple[int, ...]]], out_dir: Path = DATA_DIR, target: int = 24) -> list[Path]:
    """Write `countdown_<split>.jsonl` for each split; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for split, multisets in splits.items():
        path = out_dir / f"countdown_{split}.jsonl"
        lines = [json.dumps(r) for r in records(split, multisets, target)]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        paths.append(path)
    return paths


def load_split(split: str, data_dir: Path = DATA_DIR) -> list[tuple[int, ...]]:
    path = data_dir / f"countdown_{split}.jsonl"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        raise ValueError(f"missing problem set {path}; run `python app.py train-demo` to make it") from None
    return [tuple(json.loads(line)["numbers"]) for line in lines if line.strip()]
