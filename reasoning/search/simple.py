"""Greedy decoding, best-of-N sampling and beam search over thought factors."""
from __future__ import annotations

from dataclasses import dataclass, field

from .context import Events, Job, SearchContext


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


@dataclass
class _Chain:
    """One solution being sampled by best-of-N: its search iteration, where it is and the nodes it added."""

    iteration: int
    nid: str
    depth: int = 0
    chain: list[str] = field(default_factory=list)
    merged_first: bool = False
    ended: bool = False


def best_of_n(ctx: SearchContext, start: str) -> Events:
    """Sample whole solutions from `start` (factor drawn from the prior at each step) until the budget is spent.

    `parallel_leaves` solutions are sampled side by side: each round asks the generator for the next step of every
    one of them in one call. A step that an earlier solution already wrote is merged into its node (see
    `merge_duplicates`) and the solution goes on from there, so solutions share their common beginnings as a tree.
    With one solution in flight this is the plain sequential best-of-N."""
    stalls, chains = 0, list[_Chain]()
    while True:
        while len(chains) < ctx.config.parallel_leaves and not ctx.done and stalls <= ctx.stall_limit:
            ctx.iteration += 1
            chains.append(_Chain(ctx.iteration, start))
        if not chains:
            break
        stepping = [c for c in chains if not ctx.done and not ctx.dead(c.nid)]
        for c, job in zip(stepping, ctx.run(_plan_steps(ctx, stepping)), strict=True):
            yield from _advance_chain(ctx, c, job)
        for c in chains:
            c.ended = c.ended or c not in stepping
        finished = [c for c in chains if c.ended]
        chains = [c for c in chains if not c.ended]
        for c in finished:
            if c.nid == start and not c.merged_first:
                return  # the generator wrote nothing at the start
            yield from _close_chain(ctx, c, start)
            stalls = 0 if c.chain else stalls + 1


def _plan_steps(ctx: SearchContext, stepping: list[_Chain]) -> list[Job]:
    """The next step of each solution in flight, as one job each (factor drawn from the prior)."""
    jobs = []
    for c in stepping:
        ctx.iteration, latest = c.iteration, ctx.iteration
        job = Job(c.nid, ctx.sample_factor(c.nid), 1, [_temperature(ctx, c.depth)], iteration=c.iteration)
        jobs.append(ctx.plan(job))
        ctx.iteration = latest
    return jobs


def _close_chain(ctx: SearchContext, c: _Chain, start: str) -> Events:
    """Score a finished solution's new steps and back its value up."""
    ctx.iteration, latest = c.iteration, ctx.iteration
    if c.chain:
        ctx.score(c.chain)
        yield ctx.event("scored", c.chain)
    if c.nid != start:  # (a first step merged into a pruned sibling goes nowhere)
        yield ctx.event("backed_up", ctx.tree.backup(c.nid, ctx.value(c.nid)))
    ctx.iteration = latest


def _advance_chain(ctx: SearchContext, c: _Chain, job: Job) -> Events:
    """Move a solution one step on: to its new node, or into the sibling its step repeated; else it ends."""
    c.depth += 1
    latest, ctx.iteration = ctx.iteration, c.iteration
    if job.new:
        yield ctx.event("expanded", job.new)
        c.nid = job.new[0]
        c.chain.append(c.nid)
    elif job.merged and ctx.tree.is_live(job.merged[0]):
        c.nid = job.merged[0]
    else:
        c.ended = True
    c.merged_first = c.merged_first or (bool(job.merged) and c.depth == 1)
    ctx.iteration = latest


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
        jobs = []
        for nid in live:
            draws: dict[str, int] = {}
            for _ in range(ctx.config.candidates):
                name = ctx.sample_factor(nid).name
                draws[name] = draws.get(name, 0) + 1
            jobs += [ctx.plan(Job(nid, ctx.factor(name), count)) for name, count in draws.items()]
        new: list[str] = []
        for job in ctx.run(jobs):  # the whole frontier in one generator call
            if job.new:
                new += job.new
                yield ctx.event("expanded", job.new, factor=job.factor.name)
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
