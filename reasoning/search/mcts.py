"""MCTS over thought factors: PUCT picks a factor with the prior P(S,a), then k sampled continuations under it
are all scored by the PRM (best-of-N per factor), and the best one's value V(S) is backed up (AlphaZero style)."""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from ..tree import samples
from .context import Events, Job, SearchContext


def puct(q: float, prior: float, parent_visits: int, visits: int, c: float) -> float:
    """Q + c * P * sqrt(N(S)) / (1 + N(S, a)); the +1 under the root lets the prior speak on the first visit."""
    return q + c * prior * math.sqrt(parent_visits + 1) / (1 + visits)


@dataclass
class FactorStats:
    prior: float
    visits: int
    value_sum: float
    children: list[str]

    def q(self, default: float) -> float:
        return self.value_sum / self.visits if self.visits else default


class _Tracker:
    """Virtual loss bookkeeping for leaves in flight within one iteration: the nodes on their paths, and the
    candidates already asked for under each (node, factor), which count as drawn samples and as visits of value 0."""

    def __init__(self) -> None:
        self.visits: Counter[str] = Counter()
        self.pending: Counter[tuple[str, str]] = Counter()

    def add(self, path: list[str]) -> None:
        self.visits.update(path)


def factor_stats(ctx: SearchContext, nid: str, vl: _Tracker) -> dict[str, FactorStats]:
    prior = ctx.prior(nid)
    stats = {name: FactorStats(p, vl.pending[(nid, name)], 0.0, []) for name, p in prior.items()}
    for child in ctx.tree.children(nid):
        a = ctx.tree.node(child)
        if a["factor"] in stats:
            s = stats[a["factor"]]
            s.children.append(child)
            s.visits += a["visits"] + vl.visits[child]
            s.value_sum += a["value_sum"]
    return stats


def child_q(ctx: SearchContext, nid: str, vl: _Tracker) -> float:
    a = ctx.tree.node(nid)
    visits = a["visits"] + vl.visits[nid]
    return a["value_sum"] / visits if visits else ctx.value(nid)


def exhausted(ctx: SearchContext, nid: str, memo: dict[str, bool]) -> bool:
    """True when no expansion is left anywhere below `nid`."""
    if nid in memo:
        return memo[nid]
    if ctx.dead(nid):
        memo[nid] = True
        return True
    attrs = ctx.tree.node(nid)
    if attrs["factor_prior"] is None:
        memo[nid] = False
        return False
    kids = ctx.tree.children(nid)
    expanded = {ctx.tree.node(c)["factor"] for c in ctx.tree.children(nid, include_pruned=True)}
    memo[nid] = all(f.name in expanded for f in ctx.factors) and all(exhausted(ctx, c, memo) for c in kids)
    return memo[nid]


def widen_room(ctx: SearchContext, stats: FactorStats, pending: int = 0) -> int:
    """How many more candidates progressive widening lets a tried factor sample: its samples may number
    `candidates * (1 + N(S, a)) ** widen`, so well-visited factors get new moves while weak ones do not. Samples
    merged into an existing child count, so a factor whose draws keep repeating one step stops being widened; so do
    the `pending` candidates already asked for in this round (leaves in flight)."""
    if ctx.config.widen <= 0:
        return 0
    limit = math.ceil(ctx.config.candidates * (1 + stats.visits) ** ctx.config.widen)
    drawn = sum(samples(ctx.tree.node(k)) for k in stats.children) + pending
    return max(0, min(ctx.config.candidates, limit - drawn))


def select(ctx: SearchContext, start: str, vl: _Tracker) -> tuple[list[str], str | None, int]:
    """Walk down by PUCT from `start`; returns the path, the factor to expand at its end (None: re-visit a leaf)
    and how many candidates to sample under it."""
    path, c = ctx.tree.path(start), ctx.config.c_puct
    memo: dict[str, bool] = {}
    while True:
        nid = path[-1]
        if ctx.dead(nid):
            return path, None, 0
        stats = factor_stats(ctx, nid, vl)
        expanded = {ctx.tree.node(k)["factor"] for k in ctx.tree.children(nid, include_pruned=True)}
        parent_visits = sum(s.visits for s in stats.values())
        fpu = child_q(ctx, nid, vl) - ctx.config.fpu_reduction  # first-play urgency of an untried factor
        options, room = [], {}
        for name, s in stats.items():
            pending = vl.pending[(nid, name)]
            if name in expanded or pending:  # a factor asked for in this round may still widen, never restart
                room[name] = widen_room(ctx, s, pending)
                if not room[name] and (name not in expanded or all(exhausted(ctx, k, memo) for k in s.children)):
                    continue
            options.append((puct(s.q(fpu), s.prior, parent_visits, s.visits, c), name))
        if not options:
            return path, None, 0
        name = max(options)[1]
        if name not in room:
            return path, name, ctx.config.candidates
        if room[name]:
            return path, name, room[name]
        kids = [k for k in stats[name].children if not exhausted(ctx, k, memo)]
        fvisits = stats[name].visits
        path.append(max(kids, key=lambda k: puct(
            child_q(ctx, k, vl), 1.0 / len(kids), fvisits,
            ctx.tree.node(k)["visits"] + vl.visits[k], c)))


def mcts(ctx: SearchContext, start: str) -> Events:
    stalls = 0
    while not ctx.done:
        ctx.iteration += 1
        leaves = _select_leaves(ctx, start)
        # every leaf's candidates in ONE generator call, then every new node in ONE PRM call
        jobs = [Job(path[-1], ctx.factor(factor), n) for path, factor, n in leaves if factor]
        done = iter(ctx.expand_many(jobs))
        new_by_leaf: list[list[str]] = [next(done).new if factor else [] for _, factor, _ in leaves]
        for (_, factor, _), added in zip(leaves, new_by_leaf, strict=True):
            if added:
                yield ctx.event("expanded", added, factor=factor)
        fresh = [n for added in new_by_leaf for n in added]
        if fresh:
            ctx.score(fresh)
            yield ctx.event("scored", fresh)
        yield from _back_up(ctx, leaves, new_by_leaf)
        stalls = 0 if fresh else stalls + 1
        if (not fresh and ctx.config.widen <= 0 and exhausted(ctx, start, {})) or stalls > ctx.stall_limit:
            break


def _select_leaves(ctx: SearchContext, start: str) -> list[tuple[list[str], str | None, int]]:
    """`parallel_leaves` selections from `start`, each under the virtual loss of the ones before it."""
    vl = _Tracker()
    leaves: list[tuple[list[str], str | None, int]] = []
    for _ in range(ctx.config.parallel_leaves):
        path, factor, n = select(ctx, start, vl)
        leaves.append((path, factor, n))
        vl.add(path)
        if factor is not None:
            vl.pending[(path[-1], factor)] += n
    return leaves


def _back_up(ctx: SearchContext, leaves: list[tuple[list[str], str | None, int]],
             new_by_leaf: list[list[str]]) -> Events:
    for (path, _, _), added in zip(leaves, new_by_leaf, strict=True):
        if added:  # best-of-N per factor: the best candidate is visited, the others wait with their PRM value
            best = max(added, key=lambda n: (ctx.value(n), -ctx.tree.node(n)["created"]))
            yield ctx.event("backed_up", ctx.tree.backup(best, ctx.value(best)))
        elif ctx.dead(path[-1]):
            yield ctx.event("backed_up", ctx.tree.backup(path[-1], ctx.value(path[-1])))
