"""Deterministic fakes of the generator and scorer protocols, for unit tests of the pure search algorithms only."""
from __future__ import annotations

import random

from reasoning.types import Step


class FakeGenerator:
    """Writes steps 's<depth>-<k>'; a 'conclude' step (or depth `answer_depth`) answers with its own label."""

    name = "fake-generator"

    def __init__(self, answer_depth: int = 3, prior: dict[str, float] | None = None):
        self.answer_depth = answer_depth
        self.prior = prior or {}
        self.calls = 0

    def factor_prior(self, state, factors):
        w = [self.prior.get(f.name, 1.0) for f in factors]
        return [x / sum(w) for x in w]

    def propose(self, state, factor, n, *, temperature=None, seed=None):
        self.calls += 1
        rng = random.Random(seed)
        depth = len(state.steps) + 1
        out = []
        for _ in range(n):
            label = f"{factor.name}:{depth}:{rng.randrange(1000)}"
            terminal = factor.name == "conclude" or depth >= self.answer_depth
            out.append(Step(f"step {label}", factor.name, tokens=3, terminal=terminal,
                            answer=label if terminal else None))
        return out

    def provenance(self):
        return {"name": self.name}


class FakeScorer:
    """Scores a step by a hash of its text, so values differ between siblings but are reproducible."""

    name = "fake-prm"

    def score(self, problem, paths):
        return [[(sum(map(ord, s)) % 97) / 96 for s in path] for path in paths]

    def provenance(self):
        return {"name": self.name}


class ScriptedGenerator(FakeGenerator):
    """Writes the given step texts, one per call in turn (each sample of a call the same), under any factor."""

    name = "scripted-generator"

    def __init__(self, texts: list[str]):
        super().__init__()
        self.texts = list(texts)

    def propose(self, state, factor, n, *, temperature=None, seed=None):
        text = self.texts[min(self.calls, len(self.texts) - 1)]
        self.calls += 1
        return [Step(text, factor.name, tokens=3) for _ in range(n)]
