"""The two small protocols the search depends on (and nothing else): a generator and a step scorer."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from .factors import ThoughtFactor
from .types import Critique, ExpansionRequest, Problem, State, Step


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

    def propose_batch(self, requests: Sequence[ExpansionRequest]) -> list[list[Step]]:
        """Every request answered in one call (one list per request, in order, each as `propose` returns it).

        A request with `prior_over` gets `meta["next_prior"]` on each of its steps: the normalised P(S', a) over
        those factors after that step, read from the pass that wrote the step where the backend can. Optional for
        a backend: call it through `reasoning.protocols.propose_batch`, which loops `propose` when it is missing.
        """
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

    def score_last(self, problem: Problem, paths: Sequence[Sequence[str]]) -> list[float]:
        """The last step's score of each (non-empty) path: what a search needs for its new nodes, so a backend
        may skip reading the earlier steps. Optional: call it through `reasoning.protocols.score_last`."""
        ...

    def provenance(self) -> dict[str, Any]:
        ...


@runtime_checkable
class Critic(Protocol):
    """Optional beside `Scorer`: a scorer that judges each step in words (the generative PRM). A search stores the
    critique and verdict behind each new node's score in the node's meta (`StepMeta`)."""

    def critiques(self, problem: Problem, path: Sequence[str]) -> list[Critique]:
        """One `Critique` per step of `path`, the ones behind `score`'s numbers."""
        ...


def propose_batch(generator: Generator, requests: Sequence[ExpansionRequest]) -> list[list[Step]]:
    """`generator.propose_batch(requests)` where the generator has it, else one `propose` call per request.

    The fallback adds no `meta["next_prior"]`: a search asks `factor_prior` for such a child when it needs it.
    """
    batched = getattr(generator, "propose_batch", None)
    if callable(batched):
        out = batched(list(requests))
        if len(out) != len(requests):
            raise ValueError(f"{generator.name}: propose_batch answered {len(out)} of {len(requests)} requests")
        return [list(steps) for steps in out]
    return [
        list(generator.propose(r.state, r.factor, r.n, temperature=r.temperature, seed=r.seed)) for r in requests
    ]


def score_last(scorer: Scorer, problem: Problem, paths: Sequence[Sequence[str]]) -> list[float]:
    """`scorer.score_last(problem, paths)` where the scorer has it, else the last entry of `scorer.score`."""
    if any(not p for p in paths):
        raise ValueError("score_last needs a non-empty path (at least one step) for every entry")
    last = getattr(scorer, "score_last", None)
    if callable(last):
        out = [float(x) for x in last(problem, paths)]
    else:
        out = [float(s[-1]) for s in scorer.score(problem, paths)]
    if len(out) != len(paths):
        raise ValueError(f"{scorer.name}: scored {len(out)} of {len(paths)} paths")
    return out


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


@runtime_checkable
class OutcomeScorer(Protocol):
    """An outcome reward model: one score in [0, 1] per whole solution (used to choose among finished paths)."""

    name: str

    def score_outcomes(self, problem: Problem, paths: Sequence[Sequence[str]]) -> list[float]:
        ...

    def provenance(self) -> dict[str, Any]:
        ...
