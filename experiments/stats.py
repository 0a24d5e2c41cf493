"""The statistics of runs, from scipy: Wilson intervals for a solve rate, and a paired comparison of two runs on the
problems they share (wins, losses, ties, the difference with a paired bootstrap interval, McNemar's exact p)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 2000


def wilson(successes: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The Wilson score interval of a solve rate (0, 0 for no problems)."""
    if n == 0:
        return (0.0, 0.0)
    from scipy.stats import binomtest

    ci = binomtest(successes, n).proportion_ci(confidence_level=confidence, method="wilson")
    return (float(ci.low), float(ci.high))


@dataclass(frozen=True)
class Paired:
    """Two runs on their shared problems: `a` and `b` solved, per problem."""

    n: int
    wins: int  # a solved, b did not
    losses: int  # b solved, a did not
    ties_solved: int
    ties_unsolved: int
    rate_a: float
    rate_b: float
    difference: float  # rate_a - rate_b
    interval: tuple[float, float]  # paired bootstrap interval of the difference
    mcnemar_p: float  # exact (binomial) McNemar test on the discordant pairs

    @property
    def ties(self) -> int:
        return self.ties_solved + self.ties_unsolved


def paired(a: list[bool], b: list[bool], *, confidence: float = CONFIDENCE, seed: int = 0) -> Paired:
    """Compare two runs' outcomes on the same problems (a[i] and b[i] are one problem)."""
    if len(a) != len(b):
        raise ValueError("paired outcomes need one value per shared problem in each run")
    if not a:
        raise ValueError("the runs share no problem: nothing to compare")
    from scipy.stats import binomtest, bootstrap

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    wins, losses = int(((x == 1) & (y == 0)).sum()), int(((x == 0) & (y == 1)).sum())
    both, neither = int(((x == 1) & (y == 1)).sum()), int(((x == 0) & (y == 0)).sum())
    diff = float(x.mean() - y.mean())
    discordant = wins + losses
    p = 1.0 if discordant == 0 else float(binomtest(wins, discordant, 0.5).pvalue)
    if discordant == 0 or len(x) < 2:
        interval = (diff, diff)  # every resample gives the same difference
    else:
        res = bootstrap((x, y), lambda u, v, axis=-1: u.mean(axis=axis) - v.mean(axis=axis), paired=True,
                        vectorized=True, n_resamples=BOOTSTRAP_RESAMPLES, confidence_level=confidence,
                        method="percentile", rng=np.random.default_rng(seed))
        interval = (float(res.confidence_interval.low), float(res.confidence_interval.high))
    return Paired(len(x), wins, losses, both, neither, float(x.mean()), float(y.mean()), diff, interval, p)
