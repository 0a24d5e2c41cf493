"""Plain value types shared by the search, the backends, storage and the UI."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypedDict

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


class StepMeta(TypedDict, total=False):
    """What a step's `meta` (and a tree node's, `NodeAttrs.meta`) carries between the layers; every key optional.

    Written by the generator: `token_ids` (the ids it wrote, the prefix of the step's children), `stop` (why it
    stopped: "eos", "context", a stop string), `next_prior` (P(S', a) over the request's `prior_over`, read from the
    same pass). By the domain: `invalid` (what is wrong, in words), and Countdown's `valid` and `left` (the numbers
    left after the step). By the search: `temperature`, `samples` (identical samples merged into the node),
    `critique` and `verdict` (a `Critic`'s judgement of the step), `orm_score` (the outcome model's score of the
    path). By the UI: `edited_from` (the node an edit copied). By imports: `source` ("human", "processbench", a
    solution's source), `id` (the record's id), `correct` (the solution's final answer checked by its source).
    """

    token_ids: list[int]
    stop: str | None
    next_prior: list[float]
    invalid: str | None
    valid: bool
    left: list[str]
    temperature: float | None
    samples: int
    critique: str
    verdict: str
    orm_score: float
    edited_from: str
    source: str
    id: Any
    correct: bool


@dataclass(frozen=True)
class Critique:
    """A `Critic`'s judgement of one step (`reasoning.protocols.Critic`): the words, the verdict, P(correct)."""

    step: int
    critique: str
    verdict: str  # "correct" or "incorrect": the more likely one, as written into the verification
    p_correct: float


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
    meta: StepMeta = field(default_factory=lambda: StepMeta())

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
