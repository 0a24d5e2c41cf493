"""Plain value types shared by the search, the backends, storage and the UI."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any


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
