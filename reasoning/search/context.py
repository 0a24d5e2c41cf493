"""What every search algorithm shares: budgeted expansion, batched scoring, backup and answer choice."""
from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence

from ..aggregation import aggregate
from ..factors import Catalog, ThoughtFactor
from ..limits import model_text
from ..protocols import Domain, Generator, Scorer
from ..tree import ReasoningTree, samples
from .config import SearchConfig, SearchEvent, SearchResult


class SearchContext:
    """One search run over one tree. Holds no global state, so searches in other threads never interfere."""

    def __init__(
        self,
        tree: ReasoningTree,
        generator: Generator,
        scorer: Scorer,
        domain: Domain,
        catalog: Catalog,
        config: SearchConfig,
        stop: threading.Event | None = None,
    ):
        self.tree, self.generator, self.scorer, self.domain, self.config = tree, generator, scorer, domain, config
        factors = catalog.enabled if config.factors is None else tuple(catalog.get(n) for n in config.factors)
        if not factors:
            raise ValueError("no thought factor is enabled")
        self.factors: tuple[ThoughtFactor, ...] = factors
        self.rng = random.Random(config.seed)
        self.stop = stop or threading.Event()
        self.created = 0
        self.tokens = 0
        self.iteration = 0
        self.merged: list[str] = []  # siblings that the last expand's duplicate samples were merged into
        self.started = time.perf_counter()
        self._provenance = {
            "generator": _safe_provenance(generator),
            "scorer": _safe_provenance(scorer),
            "config": config.to_dict(),
        }

    # -- budget ----------------------------------------------------------------------------------
    @property
    def remaining(self) -> int:
        return self.config.budget - self.created

    @property
    def stall_limit(self) -> int:
        """Iterations in a row without a new node after which a search gives up (every sample repeated a node)."""
        return 4 * self.config.budget + 16

    @property
    def done(self) -> bool:
        return self.remaining <= 0 or self.stop.is_set()

    def event(self, kind: str, nodes: Sequence[str], **data) -> SearchEvent:
        return SearchEvent(kind, self.iteration, tuple(nodes), self.created, self.config.budget, data=data)

    # -- model calls -----------------------------------------------------------------------------
    def prior(self, nid: str) -> dict[str, float]:
        """P(S, a) over the enabled factors at `nid`, computed once and kept on the node."""
        attrs = self.tree.node(nid)
        cached = attrs["factor_prior"]
        if cached is None or any(f.name not in cached for f in self.factors):
            probs = self.generator.factor_prior(self.tree.state(nid), self.factors)
            cached = {f.name: float(p) for f, p in zip(self.factors, probs, strict=True)}
            attrs["factor_prior"] = cached
        total = sum(cached[f.name] for f in self.factors) or 1.0
        return {f.name: cached[f.name] / total for f in self.factors}

    def sample_factor(self, nid: str) -> ThoughtFactor:
        prior = self.prior(nid)
        names = list(prior)
        return self.factor(self.rng.choices(names, weights=[prior[n] for n in names])[0])

    def factor(self, name: str) -> ThoughtFactor:
        for f in self.factors:
            if f.name == name:
                return f
        raise KeyError(name)

    def expand(self, nid: str, factor: ThoughtFactor, n: int, temperatures: Sequence[float] | None = None) -> list[str]:
        """Sample up to `n` steps under `factor` at `nid` (never past the budget) and add them as children.

        Returns the new nodes. With `merge_duplicates`, a step identical to a sibling (pruned ones included) is not
        added: it counts as one more sample of that sibling and is listed in `self.merged`; its tokens count, the
        budget does not."""
        self.merged = []
        n = min(n, self.remaining)
        if n <= 0:
            return []
        temps = list(temperatures if temperatures is not None else self.config.temperatures)
        groups: dict[float, int] = defaultdict(int)
        for i in range(n):
            groups[temps[i % len(temps)]] += 1
        state = self.tree.state(nid)
        prior = self.prior(nid).get(factor.name)
        siblings: dict[tuple[str, str], str] = {}
        if self.config.merge_duplicates:
            for k in self.tree.children(nid, include_pruned=True):
                siblings[(self.tree.node(k)["factor"], self.tree.node(k)["text"])] = k
        new: list[str] = []
        for temperature, count in groups.items():
            seed = self.rng.randrange(2**31)
            steps = self.generator.propose(state, factor, count, temperature=temperature, seed=seed)
            for step in steps[:count]:
                step = self.domain.observe(state, step.with_(factor=factor.name, text=model_text(step.text)))
                self.tokens += step.tokens
                twin = siblings.get((factor.name, step.text))
                if twin is not None:  # the same step again: one more sample of the existing node, no new node
                    with self.tree.lock:
                        attrs = self.tree.node(twin)
                        attrs["meta"] = {**(attrs["meta"] or {}), "samples": samples(attrs) + 1}
                    self.merged.append(twin)
                    continue
                provenance = {**self._provenance, "temperature": temperature, "seed": seed}
                new.append(
                    self.tree.add_child(
                        nid, step, prior=prior, iteration=self.iteration, provenance=provenance,
                        meta={"temperature": temperature},
                    )
                )
                if self.config.merge_duplicates:
                    siblings[(factor.name, step.text)] = new[-1]
        self.created += len(new)
        return new

    def score(self, nids: Sequence[str]) -> None:
        """Score the root-to-node paths of `nids` in one batched PRM call and store each node's step score."""
        if not nids:
            return
        paths = [self.tree.state(n).step_texts for n in nids]
        scores = self.scorer.score(self.tree.problem, paths)
        with self.tree.lock:
            for nid, path_scores in zip(nids, scores, strict=True):
                attrs = self.tree.node(nid)
                attrs["score"] = float(path_scores[-1])
                prefix = self.tree.path_scores(self.tree.parent(nid)) if self.tree.parent(nid) else []
                attrs["value"] = aggregate([*prefix, attrs["score"]], self.config.aggregation)

    def value(self, nid: str) -> float:
        v = self.tree.node(nid)["value"]
        return float(v) if v is not None else 0.0

    def dead(self, nid: str) -> bool:
        """A node that cannot be expanded: terminal, or at the depth limit."""
        a = self.tree.node(nid)
        return bool(a["terminal"]) or a["depth"] >= self.config.max_depth

    # -- the end -----------------------------------------------------------------------------------
    def result(self) -> SearchResult:
        node, value = self.choose_answer()
        answer = self.tree.node(node)["answer"] if node else None
        return SearchResult(
            answer=answer, node=node, value=value, nodes_created=self.created, generated_tokens=self.tokens,
            iterations=self.iteration, seconds=time.perf_counter() - self.started,
            algorithm=self.config.algorithm, stopped=self.stop.is_set(),
        )

    def choose_answer(self) -> tuple[str | None, float | None]:
        """Pick the final answer from model-side signals only (PRM values, visits), never the gold checker."""
        finals = [n for n in self.tree.terminals() if self.tree.node(n)["answer"] is not None]
        if not finals:
            return None, None
        how = self.config.answer_selection
        if how == "visits":
            best = max(finals, key=lambda n: (self.tree.node(n)["visits"], self.value(n)))
        elif how == "vote":
            votes: dict[str, float] = defaultdict(float)
            for n in finals:
                votes[str(self.tree.node(n)["answer"])] += self.value(n) * samples(self.tree.node(n))
            top = max(votes, key=votes.get)
            best = max((n for n in finals if str(self.tree.node(n)["answer"]) == top), key=self.value)
        else:
            best = max(finals, key=lambda n: (self.value(n), self.tree.node(n)["visits"]))
        return best, self.value(best)

    def finish(self) -> SearchEvent:
        result = self.result()
        ev = self.event("finished", [result.node] if result.node else [])
        ev.result = result
        return ev


def _safe_provenance(model) -> dict:
    getter = getattr(model, "provenance", None)
    return dict(getter()) if callable(getter) else {"name": getattr(model, "name", type(model).__name__)}


SearchFn = "Callable[[SearchContext, str], Iterator[SearchEvent]]"
Events = Iterator[SearchEvent]
