"""OmegaPRM's first-error search: binary search over a path's prefixes for the first step no rollout recovers from.

Under Math-Shepherd's reading, a step is right while some continuation from it still reaches the gold answer (its
Monte-Carlo value is above zero) and wrong from the first step whose value is zero. Assuming that reading is
monotone along the path (once lost, a path stays lost), the first error is found by bisection: each round rolls out
from the middle prefix of the unresolved range. A path of n steps needs at most ⌈log2(n + 1)⌉ rounds, one fewer when
its last step states a wrong final answer (the checker says so without rollouts).
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from ..protocols import Generator
from ..types import State
from .rollouts import Estimate, Progress, RolloutConfig, Stopped, estimate, reached_gold

RoundCallback = Callable[[int, int, Estimate], None]  # (round, step index, its estimate)


@dataclass(frozen=True)
class FirstError:
    """The result of a search on one path: `index` of the first wrong step (0-based), or -1 when none is found.

    `measured` holds the rollout estimate of every step that was rolled out (or checked, for a final answer)."""

    index: int
    steps: int
    measured: dict[int, Estimate] = field(default_factory=dict)

    @property
    def rounds(self) -> int:
        return len(self.measured)

    def verdict(self, i: int) -> bool | None:
        """Step `i` is right before the first error, wrong at it; None after it (ProcessBench leaves those open)."""
        if self.index < 0 or i < self.index:
            return True
        return False if i == self.index else None


def find_first_error(generator: Generator, path: State, config: RolloutConfig, *,
                     on_round: RoundCallback | None = None, progress: Progress | None = None,
                     stop: threading.Event | None = None) -> FirstError:
    """Bisect `path` (its steps, root excluded) for the first step whose rollouts never reach the gold answer."""
    n = len(path.steps)
    if n == 0:
        raise ValueError("first-error search needs a path with at least one step")
    measured: dict[int, Estimate] = {}
    lo, hi = 0, n  # the first error lies in [lo, hi); hi == n means "no error"
    last = path.steps[-1]
    if last.terminal:  # a final answer is checked directly: wrong means the error is at the last step or before
        final = Estimate(1, int(reached_gold(path)), terminal=True, answers=(last.answer,))
        measured[n - 1] = final
        if on_round is not None:
            on_round(1, n - 1, final)
        if final.hard:  # a right answer: the path has no error a rollout could show
            return FirstError(-1, n, measured)
        hi = n - 1
    while lo < hi:
        if stop is not None and stop.is_set():
            raise Stopped("stopped")
        mid = (lo + hi) // 2
        prefix = State(path.problem, path.steps[: mid + 1])
        (got,) = estimate(generator, [prefix], config, progress=progress, stop=stop)
        measured[mid] = got
        if on_round is not None:
            on_round(len(measured), mid, got)
        if got.hard:
            lo = mid + 1
        else:
            hi = mid
    return FirstError(lo if lo < n else -1, n, measured)
