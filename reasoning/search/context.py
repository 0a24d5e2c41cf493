"""What every search algorithm shares: budgeted expansion, batched scoring, backup and answer choice."""
from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from ..aggregation import aggregate
from ..factors import Catalog, ThoughtFactor
from ..limits import model_text
from ..protocols import Critic, Domain, Generator, OutcomeScorer, Scorer, propose_batch, score_last
from ..tree import ReasoningTree, samples
from ..types import ExpansionRequest, State, Step, StepMeta
from .config import SearchConfig, SearchEvent, SearchResult


def search_factors(config: SearchConfig, catalog: Catalog) -> tuple[ThoughtFactor, ...]:
    """The thought factors a search under `config` expands with; a ValueError names an unknown or missing one, so a
    caller can check a config against its catalog before it stores anything."""
    if config.factors is None:
        factors = catalog.enabled
    else:
        unknown = [n for n in config.factors if n not in catalog.names]
        if unknown:
            raise ValueError(f"unknown thought factor {unknown[0]!r}; the catalog has {', '.join(catalog.names)}")
        factors = tuple(catalog.get(n) for n in config.factors)
    if not factors:
        raise ValueError("no thought factor is enabled")
    return factors


@dataclass
class Job:
    """One node to expand inside a batch: `n` candidates under `factor`; `new`/`merged` are filled by the batch."""

    nid: str
    factor: ThoughtFactor
    n: int
    temperatures: Sequence[float] | None = None
    iteration: int | None = None  # the search iteration its nodes belong to (None: the current one)
    new: list[str] = field(default_factory=list)
    merged: list[str] = field(default_factory=list)
    requests: list[ExpansionRequest] = field(default_factory=list)


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
        orm: OutcomeScorer | None = None,
    ):
        self.tree, self.generator, self.scorer, self.domain, self.config = tree, generator, scorer, domain, config
        if config.answer_selection == "orm" and orm is None:
            raise ValueError("answer_selection 'orm' needs an outcome reward model (--orm DIR)")
        self.orm = orm
        self.factors: tuple[ThoughtFactor, ...] = search_factors(config, catalog)
        self.rng = random.Random(config.seed)
        self.stop = stop or threading.Event()
        self.created = 0
        self.tokens = 0
        self.iteration = 0
        self._reserved = 0  # budget promised to planned jobs not yet run
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
        done = self.expand_many([Job(nid, factor, n, temperatures)])[0]
        self.merged = done.merged
        return done.new

    def expand_many(self, jobs: Sequence[Job]) -> list[Job]:
        """Expand several nodes with ONE generator call (`propose_batch`), the way L leaves in flight need it.

        Requests are planned in order (each draws its seed from the search's RNG, so a run is reproducible for a
        given seed and batch size; with one job this is exactly `expand`), and the budget is reserved up front so
        a batch never overshoots it. Results are applied in the same order; each job's `new` and `merged` are set.
        """
        for job in jobs:
            self.plan(job)
        return self.run(jobs)

    def plan(self, job: Job) -> Job:
        """Draw the job's request seeds now (in call order, for reproducibility) and reserve its share of the budget,
        so that a batch never overshoots it; `run` then sends every planned job in one call."""
        job.new, job.merged, job.requests = [], [], []
        count = min(job.n, self.remaining - self._reserved)
        if count > 0:
            self._reserved += count
            job.requests = self._requests(self.tree.state(job.nid), job, count)
        return job

    def run(self, jobs: Sequence[Job]) -> list[Job]:
        """One `propose_batch` call for every planned job's requests; results are applied in job order."""
        self._reserved = 0
        requests = [r for job in jobs for r in job.requests]
        if not requests:
            return list(jobs)
        answers = iter(propose_batch(self.generator, requests))
        for job in jobs:
            for request in job.requests:
                self._add(job, request, next(answers))
        return list(jobs)

    def _requests(self, state: State, job: Job, n: int) -> list[ExpansionRequest]:
        """One request per temperature among the job's `n` candidates. Temperatures cycle over every sample of the
        node's factor already in the tree, so that MCTS, which widens a factor one candidate at a time, still draws at
        each temperature in turn (counting from this call alone, it would only use the first). Leaves in flight in
        the same batch are not in the tree yet: two at one node and factor start at the same temperature."""
        temps = list(job.temperatures if job.temperatures is not None else self.config.temperatures)
        drawn = 0
        if len(temps) > 1:
            drawn = sum(samples(self.tree.node(k)) for k in self.tree.children(job.nid, include_pruned=True)
                        if self.tree.node(k)["factor"] == job.factor.name)
        groups: dict[float, int] = defaultdict(int)
        for i in range(n):
            groups[temps[(drawn + i) % len(temps)]] += 1
        return [
            ExpansionRequest(state, job.factor, count, temperature=t, seed=self.rng.randrange(2**31),
                             prior_over=self.factors)
            for t, count in groups.items()
        ]

    def _add(self, job: Job, request: ExpansionRequest, steps: Sequence[Step]) -> None:
        """Observe each returned step and add it under the job's node, or merge it into an identical sibling."""
        nid, factor, state = job.nid, job.factor, request.state
        prior = self.prior(nid).get(factor.name)
        siblings: dict[tuple[str | None, str], str] = {}
        if self.config.merge_duplicates:
            for k in self.tree.children(nid, include_pruned=True):
                siblings[(self.tree.node(k)["factor"], self.tree.node(k)["text"])] = k
        for raw in steps[: request.n]:
            step = self.domain.observe(state, raw.with_(factor=factor.name, text=model_text(raw.text)))
            self.tokens += step.tokens
            twin = siblings.get((factor.name, step.text))
            if twin is not None:  # the same step again: one more sample of the existing node, no new node
                with self.tree.lock:
                    attrs = self.tree.node(twin)
                    attrs["meta"] = {**(attrs["meta"] or {}), "samples": samples(attrs) + 1}
                job.merged.append(twin)
                continue
            provenance = {**self._provenance, "temperature": request.temperature, "seed": request.seed}
            meta: StepMeta = {"temperature": request.temperature}
            if raw.meta.get("token_ids") is not None:
                meta["token_ids"] = list(raw.meta["token_ids"])
            if step.meta.get("invalid"):  # the domain's flag (a Countdown operand not left, a wrong result)
                meta["invalid"] = step.meta["invalid"]
            child = self.tree.add_child(
                nid, step, prior=prior, iteration=self.iteration if job.iteration is None else job.iteration,
                provenance=provenance, meta=meta,
                factor_prior=_next_prior(request, raw, step),
            )
            job.new.append(child)
            self.created += 1
            if self.config.merge_duplicates:
                siblings[(factor.name, step.text)] = child

    def score(self, nids: Sequence[str]) -> None:
        """Score the last step of each root-to-node path of `nids` in one PRM call and store each node's step score
        (only new nodes reach here: the scores of their ancestors are already on the tree)."""
        if not nids:
            return
        paths = [self.tree.state(n).step_texts for n in nids]
        scores = score_last(self.scorer, self.tree.problem, paths)
        critic = self.scorer if isinstance(self.scorer, Critic) else None  # a generative PRM's judgement too
        with self.tree.lock:
            for nid, path, last in zip(nids, paths, scores, strict=True):
                attrs = self.tree.node(nid)
                attrs["score"] = score = float(last)
                if critic is not None:
                    said = critic.critiques(self.tree.problem, path)[-1]
                    attrs["meta"] = {**(attrs["meta"] or {}), "critique": said.critique, "verdict": said.verdict}
                prefix = self.tree.path_scores(parent) if (parent := self.tree.parent(nid)) else []
                attrs["value"] = 0.0 if self.rejected(nid) else aggregate([*prefix, score], self.config.aggregation)

    def value(self, nid: str) -> float:
        v = self.tree.node(nid)["value"]
        return float(v) if v is not None else 0.0

    def dead(self, nid: str) -> bool:
        """A node that cannot be expanded: terminal, at the depth limit, or a step the domain rejected."""
        a = self.tree.node(nid)
        return bool(a["terminal"]) or a["depth"] >= self.config.max_depth or self.rejected(nid)

    def rejected(self, nid: str) -> bool:
        """A step the domain flagged invalid, under `invalid_steps` 'dead' (see `rejection`)."""
        return rejection(self.tree, nid, self.config) is not None

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
        finals = [n for n in self.tree.terminals() if self.tree.node(n)["answer"] is not None
                  and not any(self.rejected(m) for m in self.tree.path(n))]
        if not finals:
            return None, None
        how = self.config.answer_selection
        if how == "orm":
            best = max(finals, key=lambda n: (self.outcome_score(n), self.value(n)))
        elif how == "visits":
            best = max(finals, key=lambda n: (self.tree.node(n)["visits"], self.value(n)))
        elif how == "vote":
            votes: dict[str, float] = defaultdict(float)
            for n in finals:
                votes[str(self.tree.node(n)["answer"])] += self.value(n) * samples(self.tree.node(n))
            top = max(votes, key=votes.__getitem__)
            best = max((n for n in finals if str(self.tree.node(n)["answer"]) == top), key=self.value)
        else:
            best = max(finals, key=lambda n: (self.value(n), self.tree.node(n)["visits"]))
        return best, self.value(best)

    def outcome_score(self, nid: str) -> float:
        """The ORM's score of the whole root-to-`nid` path, computed once and kept in the node's meta."""
        attrs = self.tree.node(nid)
        meta = attrs["meta"] or {}
        if "orm_score" not in meta:
            if self.orm is None:
                raise ValueError("answer selection 'orm' needs an outcome reward model (--orm DIR)")
            (got,) = self.orm.score_outcomes(self.tree.problem, [self.tree.state(nid).step_texts])
            meta = {**meta, "orm_score": float(got)}
            with self.tree.lock:
                attrs["meta"] = meta
        return float(meta["orm_score"])

    def finish(self) -> SearchEvent:
        result = self.result()
        ev = self.event("finished", [result.node] if result.node else [])
        ev.result = result
        return ev


def rejection(tree: ReasoningTree, nid: str, config: SearchConfig) -> str | None:
    """Why the domain flagged node `nid` invalid (Countdown's calculator could not book it) when `invalid_steps` is
    'dead', else None. Such a path ends there with value 0 and no answer on it is chosen: it is the environment's word
    on the step's arithmetic, like an interpreter's error, never the gold answer."""
    return tree.invalid(nid) if config.invalid_steps == "dead" else None


def _next_prior(request: ExpansionRequest, raw: Step, observed: Step) -> dict[str, float] | None:
    """The child's factor prior as the generator read it while writing the step, when it did and when the domain
    left the step's text as written (a rewritten step is another state: its prior is asked for when needed)."""
    probs = raw.meta.get("next_prior")
    if probs is None or request.prior_over is None or observed.text != raw.text:
        return None
    if len(probs) != len(request.prior_over):
        return None
    return {f.name: float(p) for f, p in zip(request.prior_over, probs, strict=True)}


def _safe_provenance(model) -> dict:
    getter = getattr(model, "provenance", None)
    return dict(getter()) if callable(getter) else {"name": getattr(model, "name", type(model).__name__)}


Events = Iterator[SearchEvent]
