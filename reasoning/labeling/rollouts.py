"""Math-Shepherd Monte-Carlo rollouts: run a state on with the loaded generator until it answers, many times.

From a node, N continuations are written step by step (each step: a factor drawn from the generator's own prior
P(S, a), then one `propose` under it, then the domain's `observe`, exactly as a search writes a step). The soft value
of the node is the share of continuations whose final answer the domain's gold checker accepts; the hard label is
whether any does (Math-Shepherd's "hard estimation"). All unfinished rollouts of all nodes asked at once advance
together, one round per step, through `propose_batch` (one request per distinct state and factor: copies of one
state drawing the same factor share a request, so the backend decodes them from one prefill).
"""
from __future__ import annotations

import math
import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..domains import get_domain
from ..factors import ThoughtFactor
from ..protocols import Domain, Generator, propose_batch
from ..types import ExpansionRequest, State, Step

Progress = Callable[[int, int], None]  # (finished rollouts, all rollouts)


class Stopped(Exception):
    """Raised when the caller's stop Event is set between rounds; nothing half-computed is returned."""


@dataclass(frozen=True)
class RolloutConfig:
    """How rollouts are sampled. `factors` are the ones a rollout may use (the catalog's enabled ones)."""

    factors: tuple[ThoughtFactor, ...]
    n: int = 8
    temperature: float = 0.7
    max_steps: int = 12  # steps a rollout may add below its node before it counts as a failure
    seed: int | None = 0

    def __post_init__(self) -> None:
        if not self.factors:
            raise ValueError("rollouts need at least one enabled thought factor")
        if not 1 <= self.n <= 1024:
            raise ValueError(f"rollouts per node must be in 1..1024, got {self.n}")
        if not math.isfinite(self.temperature) or self.temperature < 0:
            raise ValueError(f"rollout temperature must be a finite number >= 0, got {self.temperature}")
        if self.max_steps < 1:
            raise ValueError(f"rollout max steps must be at least 1, got {self.max_steps}")

    def provenance(self) -> dict[str, Any]:
        return {"n": self.n, "temperature": self.temperature, "max_steps": self.max_steps, "seed": self.seed,
                "factors": [f.name for f in self.factors]}


@dataclass(frozen=True)
class Estimate:
    """The Monte-Carlo estimate of one node: `successes` of `rollouts` continuations reached the gold answer.

    A node that already answers is not rolled out: its one "rollout" is its own answer (`terminal`)."""

    rollouts: int
    successes: int
    terminal: bool = False
    answers: tuple[str | None, ...] = field(default=(), compare=False)

    @property
    def value(self) -> float:
        return self.successes / self.rollouts if self.rollouts else 0.0

    @property
    def hard(self) -> bool:
        return self.successes > 0


def finished(state: State, limit: int) -> bool:
    return bool(state.steps and state.steps[-1].terminal) or len(state.steps) >= limit


def reached_gold(state: State) -> bool:
    """Whether a finished state answers the problem right (the gold checker: for labels, never for a search)."""
    last = state.steps[-1] if state.steps else None
    return bool(last and last.terminal and get_domain(state.problem.domain).check(state.problem, last.answer))


def state_key(state: State) -> tuple:
    """What tells two states apart: the problem and each step's factor and text."""
    return (state.problem.id, tuple((s.factor, s.text) for s in state.steps))


def complete(generator: Generator, states: Sequence[State], config: RolloutConfig, *,
             progress: Progress | None = None, stop: threading.Event | None = None) -> list[State]:
    """Run every state on until it answers or has `max_steps` more steps; all of them advance in one batch a round."""
    rng = random.Random(config.seed)
    domain_of = {s.problem.domain: get_domain(s.problem.domain) for s in states}
    done = list(states)
    limits = [len(s.steps) + config.max_steps for s in states]
    todo = [i for i, s in enumerate(done) if not finished(s, limits[i])]
    total = len(done)
    while todo:
        if stop is not None and stop.is_set():
            raise Stopped("stopped")
        groups = _requests(generator, [done[i] for i in todo], todo, config, rng)
        answers = propose_batch(generator, [g[0] for g in groups])
        for (request, members), steps in zip(groups, answers, strict=True):
            if len(steps) != len(members):
                raise ValueError(f"{generator.name}: asked for {len(members)} steps, got {len(steps)}")
            domain = domain_of[request.state.problem.domain]
            for i, step in zip(members, steps, strict=True):
                done[i] = request.state.extend(_observed(domain, request, step))
        todo = [i for i in todo if not finished(done[i], limits[i])]
        if progress is not None:
            progress(total - len(todo), total)
    return done


def _observed(domain: Domain, request: ExpansionRequest, step: Step) -> Step:
    """The step as the domain books it. A step whose text the domain rewrote (Countdown's remaining numbers) is
    another state than the one the generator read its `next_prior` at, so that prior is dropped and asked for
    again, as a search does (`search.context._next_prior`)."""
    observed = domain.observe(request.state, step.with_(factor=request.factor.name))
    if observed.text == step.text or "next_prior" not in observed.meta:
        return observed
    return observed.with_(meta={k: v for k, v in observed.meta.items() if k != "next_prior"})


def _requests(generator: Generator, states: list[State], index: list[int], config: RolloutConfig,
              rng: random.Random) -> list[tuple[ExpansionRequest, list[int]]]:
    """One request per distinct (state, drawn factor), with the rollout indices it serves."""
    priors: dict[tuple, list[float]] = {}
    groups: dict[tuple, list[int]] = {}
    first: dict[tuple, State] = {}
    for i, state in zip(index, states, strict=True):
        key = state_key(state)
        if key not in priors:
            priors[key] = _prior(generator, state, config.factors)
            first[key] = state
        k = rng.choices(range(len(config.factors)), weights=priors[key])[0]
        groups.setdefault((key, k), []).append(i)
    out = []
    for (key, k), members in groups.items():
        seed = rng.randrange(2**31)
        request = ExpansionRequest(first[key], config.factors[k], len(members), config.temperature, seed,
                                   prior_over=config.factors)
        out.append((request, members))
    return out


def _prior(generator: Generator, state: State, factors: tuple[ThoughtFactor, ...]) -> list[float]:
    """P(S, a) over `factors`: carried by the last step when the backend wrote it in the same pass, else asked."""
    if state.steps:
        carried = (state.steps[-1].meta or {}).get("next_prior")
        if isinstance(carried, Sequence) and len(carried) == len(factors):
            return [max(0.0, float(p)) for p in carried]
    prior = generator.factor_prior(state, factors)
    return prior if sum(prior) > 0 else [1.0] * len(factors)


def estimate(generator: Generator, states: Sequence[State], config: RolloutConfig, *,
             progress: Progress | None = None, stop: threading.Event | None = None) -> list[Estimate]:
    """The rollout estimate of each state (each one's last step is the node being labeled), all in one batch."""
    out: list[Estimate | None] = [None] * len(states)
    starts, owners = [], []
    for i, state in enumerate(states):
        if not state.steps:
            raise ValueError("a rollout estimate needs a node below the root (a state with at least one step)")
        last = state.steps[-1]
        if last.terminal:
            out[i] = Estimate(1, int(reached_gold(state)), terminal=True, answers=(last.answer,))
            continue
        starts += [state] * config.n
        owners += [i] * config.n
    finals = complete(generator, starts, config, progress=progress, stop=stop) if starts else []
    by_owner: dict[int, list[State]] = {}
    for i, final in zip(owners, finals, strict=True):
        by_owner.setdefault(i, []).append(final)
    for i, rolled in by_owner.items():
        answers = tuple(r.steps[-1].answer if r.steps[-1].terminal else None for r in rolled)
        out[i] = Estimate(len(rolled), sum(reached_gold(r) for r in rolled), answers=answers)
    return [e for e in out if e is not None]
