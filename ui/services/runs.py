"""Live runs: a search on a new session, or resumed from a node, streamed to the page as it grows.

A running search keeps its tree in memory (`Sessions.live`) and is saved every SAVE_SECONDS and when it ends, so a
crash loses little.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from reasoning.domains import get_domain
from reasoning.factors import Catalog
from reasoning.search import SearchConfig, iterate
from reasoning.tree import ROOT, ReasoningTree
from reasoning.types import Problem

from .. import validate as v
from .models import ModelRegistry, provenance
from .sessions import Sessions
from .views import result_line

REDRAW_SECONDS = 0.3  # at most ~3 redraws a second while a search runs
SAVE_SECONDS = 3.0  # a running search is saved this often


@dataclass
class RunUpdate:
    """What a running search reports to the page: the session, its live tree, a status line, and done."""

    session_id: int
    tree: ReasoningTree
    status: str
    done: bool = False
    result: Any = None


def domain_of(problem: Problem):
    try:
        return get_domain(problem.domain)
    except ValueError as exc:
        raise v.UserError(str(exc)) from None


@dataclass
class LiveRuns:
    sessions: Sessions
    models: ModelRegistry
    max_budget: int
    stops: dict[int, threading.Event] = field(default_factory=dict)

    def start(self, problem: Problem, config: SearchConfig, catalog: Catalog, *, annotator: str,
              generator_dir: str | None = None, prm_dir: str | None = None,
              name: str | None = None) -> Iterator[RunUpdate]:
        """Start a new session on a problem and stream its growing tree."""
        generator, scorer = self.models.pair(generator_dir, prm_dir)
        domain_of(problem)
        tree = ReasoningTree(problem)
        prov = {
            "generator": provenance(generator), "scorer": provenance(scorer),
            "generator_dir": generator_dir or self.models.generator_dir, "prm_dir": prm_dir or self.models.active_prm_dir,
            "annotator": v.annotator(annotator),
        }
        sid = self.sessions.store.create_session(
            tree, name=(name or problem.text)[:120], config=config.to_dict(), provenance=prov,
            catalog=catalog.to_dict(),
        )
        yield from self._drive(sid, tree, generator, scorer, config, catalog, ROOT)

    def resume(self, session_id: Any, node_id: Any, budget: Any, catalog: Catalog, *,
               generator_dir: str | None = None, prm_dir: str | None = None) -> Iterator[RunUpdate]:
        """Continue a saved session's search from one node, with a new budget of nodes."""
        t = self.sessions.target(session_id, node_id)
        v.need(t.tree.is_live(t.nid), f"node {t.nid} is pruned; undo the prune before searching from it")
        info = self.sessions.info(t.sid)
        config = stored_config(info, max_budget=self.max_budget,
                               budget=v.integer(budget, "budget", 1, self.max_budget))
        generator, scorer = self.models.pair(generator_dir, prm_dir)
        yield from self._drive(t.sid, t.tree, generator, scorer, config, catalog, t.nid)

    def stop(self, session_id: Any) -> bool:
        """Ask a running search to stop after its current step; False when none is running."""
        ev = self.stops.get(v.session_id(session_id))
        if ev is None:
            return False
        ev.set()
        return True

    def _drive(self, sid: int, tree: ReasoningTree, generator, scorer, config: SearchConfig, catalog: Catalog,
               start: str) -> Iterator[RunUpdate]:
        stop = threading.Event()
        with self.sessions.lock:
            self.sessions.not_running(sid)
            self.sessions.live[sid], self.stops[sid] = tree, stop
        last_draw = last_save = time.monotonic()
        result = None
        try:
            events = iterate(tree, generator, scorer, config, catalog=catalog, start=start, stop=stop)
            yield RunUpdate(sid, tree, f"session {sid}: searching…")
            for ev in events:
                now = time.monotonic()
                if ev.kind == "finished":
                    result = ev.result
                    break
                if now - last_save >= SAVE_SECONDS:
                    self.sessions.store.save_tree(sid, tree)
                    last_save = now
                if now - last_draw >= REDRAW_SECONDS:
                    last_draw = now
                    yield RunUpdate(sid, tree, f"session {sid}: iteration {ev.iteration}, "
                                               f"{ev.created}/{ev.budget} nodes created")
        except ValueError as exc:
            raise v.UserError(str(exc)) from None
        finally:
            with self.sessions.lock:
                self.sessions.live.pop(sid, None)
                self.stops.pop(sid, None)
            self.sessions.store.save_tree(sid, tree)
        yield RunUpdate(sid, tree, result_line(sid, tree, result), done=True, result=result)


def stored_config(info: Any, *, max_budget: int, **overrides: Any) -> SearchConfig:
    """The search config a session was stored with, plus `overrides` (the one place a stored config is read)."""
    try:
        return SearchConfig.from_stored(getattr(info, "config", None), max_budget=max_budget, **overrides)
    except ValueError as exc:
        raise v.UserError(f"the session's stored search config is not usable: {exc}") from None
