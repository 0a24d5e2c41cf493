"""Greedy decoding, best-of-N sampling and beam search over thought factors."""
from __future__ import annotations

from .context import Events, SearchContext


def greedy(ctx: SearchContext, start: str) -> Events:
    """Follow the most likely factor and the greedy continuation until an answer, the depth limit or the budget."""
    nid = start
    while not ctx.done and not ctx.dead(nid):
        ctx.iteration += 1
        prior = ctx.prior(nid)
        factor = ctx.factor(max(prior, key=prior.__getitem__))
        new = ctx.expand(nid, factor, 1, temperatures=[0.0])
        if not new:
            if not _live_twin(ctx):
                break
            nid = ctx.merged[0]  # resumed: this greedy step is already in the tree, go on from it
            continue
        yield ctx.event("expanded", new, factor=factor.name)
        ctx.score(new)
        yield ctx.event("scored", new)
        nid = new[0]
        yield ctx.event("backed_up", ctx.tree.backup(nid, ctx.value(nid)))


def best_of_n(ctx: SearchContext, start: str) -> Events:
    """Sample whole solutions from `start` (factor drawn from the prior at each step) until the budget is spent.

    A step that an earlier solution already wrote is merged into its node (see `merge_duplicates`) and the solution
    goes on from there, so solutions share their common beginnings as a tree."""
    stalls = 0
    while not ctx.done and stalls <= ctx.stall_limit:
        ctx.iteration += 1
        nid, chain, depth = start, [], 0
        while not ctx.done and not ctx.dead(nid):
            new = ctx.expand(nid, ctx.sample_factor(nid), 1, temperatures=[_temperature(ctx, depth)])
            depth += 1
            if new:
                yield ctx.event("expanded", new)
                nid = new[0]
                chain.append(nid)
            elif _live_twin(ctx):
                nid = ctx.merged[0]
            else:
                break
        if nid == start and not ctx.merged:
            break  # the generator wrote nothing at the start
        if chain:
            ctx.score(chain)
            yield ctx.event("scored", chain)
        if nid != start:  # (a first step merged into a pruned sibling goes nowhere)
            yield ctx.event("backed_up", ctx.tree.backup(nid, ctx.value(nid)))
        stalls = 0 if chain else stalls + 1


def _live_twin(ctx: SearchContext) -> bool:
    """Whether the last expand merged its sample into a sibling that is not pruned (a path may go on from it)."""
    return bool(ctx.merged) and ctx.tree.is_live(ctx.merged[0])


def _temperature(ctx: SearchContext, i: int) -> float:
    temps = ctx.config.temperatures
    return temps[(ctx.iteration + i) % len(temps)]


def beam(ctx: SearchContext, start: str) -> Events:
    """Keep the `beam_width` best paths by PRM value; each live beam node gets `candidates` sampled steps."""
    frontier = [start]
    while not ctx.done:
        ctx.iteration += 1
        live = [n for n in frontier if not ctx.dead(n)]
        if not live:
            break
        new: list[str] = []
        for nid in live:
            draws: dict[str, int] = {}
            for _ in range(ctx.config.candidates):
                name = ctx.sample_factor(nid).name
                draws[name] = draws.get(name, 0) + 1
            for name, count in draws.items():
                added = ctx.expand(nid, ctx.factor(name), count)
                if added:
                    new += added
                    yield ctx.event("expanded", added, factor=name)
        if not new:
            break
        ctx.score(new)
        yield ctx.event("scored", new)
        pool = new + [n for n in frontier if ctx.dead(n)]
        pool.sort(key=lambda n: (ctx.value(n), -ctx.tree.node(n)["created"]), reverse=True)
        frontier = pool[: ctx.config.beam_width]
        for nid in frontier:
            if nid in new:
                yield ctx.event("backed_up", ctx.tree.backup(nid, ctx.value(nid)))
