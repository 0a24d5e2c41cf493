"""Plain value types shared by the search, the backends, storage and the UI."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # factors.py has no reason to import types.py, but keep this module import-free of it anyway
    from .factors import ThoughtFactor


@dataclass(frozen=True)
class Problem:
    """One problem to solve. `domain` picks the checker and the prompt format ("math" or "countdown")."""

    id: str
    text: str
    answer: str | None = None
    domain: str = "math"
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    """One reasoning step as written by a model or a person.

    `text` is what the step says, cue included and factor tags excluded; a domain tool (the Countdown
    calculator) may have appended its bookkeeping. `score` is filled in by a scorer, `terminal` and
    `answer` by the domain.
    """

    text: str
    factor: str | None = None
    tokens: int = 0
    logprob: float | None = None
    terminal: bool = False
    answer: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def with_(self, **changes: Any) -> Step:
        return replace(self, **changes)


@dataclass(frozen=True)
class State:
    """What the generator sees: the problem and the steps taken so far (root first)."""

    problem: Problem
    steps: tuple[Step, ...] = ()

    def extend(self, step: Step) -> State:
        return State(self.problem, self.steps + (step,))

    @property
    def step_texts(self) -> list[str]:
        return [s.text for s in self.steps]


@dataclass(frozen=True)
class ExpansionRequest:
    """One expansion asked of a generator inside a batch: `n` continuations of `state` under `factor`.

    `temperature` None means the backend's default, 0 greedy; `seed` makes the draw reproducible (the search derives
    one per request). With `prior_over`, each returned step carries `meta["next_prior"]`: the normalised P(S', a)
    over those factors at the state after that step, read from the same forward pass that wrote it where the backend
    can, so the search never spends a separate pass on a new child's factor prior.
    """

    state: State
    factor: ThoughtFactor
    n: int
    temperature: float | None = None
    seed: int | None = None
    prior_over: tuple[ThoughtFactor, ...] | None = None
