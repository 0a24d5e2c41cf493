"""The two small protocols the search depends on (and nothing else): a generator and a step scorer."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from .factors import ThoughtFactor
from .types import Problem, State, Step


@runtime_checkable
class Generator(Protocol):
    """Writes reasoning steps."""

    name: str

    def factor_prior(self, state: State, factors: Sequence[ThoughtFactor]) -> list[float]:
        """P(S, a) over `factors` after `state`, normalised to sum to 1, from one batched pass."""
        ...

    def propose(
        self,
        state: State,
        factor: ThoughtFactor,
        n: int,
        *,
        temperature: float | None = None,
        seed: int | None = None,
    ) -> list[Step]:
        """`n` continuations of `state` under `factor`; temperature 0 means greedy decoding."""
        ...

    def provenance(self) -> dict[str, Any]:
        """Model id, weights sha256 and sampling parameters, for storage."""
        ...


@runtime_checkable
class Scorer(Protocol):
    """A process reward model: one score in [0, 1] per step per path."""

    name: str

    def score(self, problem: Problem, paths: Sequence[Sequence[str]]) -> list[list[float]]:
        ...

    def provenance(self) -> dict[str, Any]:
        ...


@runtime_checkable
class Domain(Protocol):
    """A problem domain: how a problem reads to a model, what a step's tool output is, and the gold checker."""

    name: str

    def prompt(self, problem: Problem) -> str:
        """The problem as models read it."""
        ...

    def observe(self, state: State, step: Step) -> Step:
        """Apply tool bookkeeping to a fresh step and decide whether it is terminal and what it answers."""
        ...

    def check(self, problem: Problem, answer: str | None) -> bool:
        """The gold checker: used for reporting only, never by a search to choose its answer."""
        ...
