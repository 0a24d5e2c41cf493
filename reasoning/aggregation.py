"""Aggregation of per-step PRM scores into one path value."""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence


def _prod(scores: Sequence[float]) -> float:
    return math.prod(scores)


def _mean(scores: Sequence[float]) -> float:
    return sum(scores) / len(scores)


AGGREGATIONS: dict[str, Callable[[Sequence[float]], float]] = {
    "min": min,
    "prod": _prod,
    "last": lambda scores: scores[-1],
    "mean": _mean,
}


def aggregate(scores: Sequence[float], how: str = "min") -> float:
    """Fold one path's step scores into a value; an empty path is worth 0.0."""
    try:
        fold = AGGREGATIONS[how]
    except KeyError:
        raise ValueError(f"unknown aggregation {how!r}; choose one of {sorted(AGGREGATIONS)}") from None
    if not scores:
        return 0.0
    return float(fold(list(scores)))
