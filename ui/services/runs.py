"""Live runs: a search on a new session, or resumed from a node, streamed to the page as it grows.

A running search grows its tree in a worker thread (in memory, `Sessions.live`), saved every SAVE_SECONDS and when it
ends, so a crash loses little; the page and the API read snapshots of it and never hold the search back. A search runs
to its end (or its Stop) whether or not anyone still reads it: closing the page does not stop it. Its state (running,
finished, stopped; interrupted when the server stopped under it) is stored with the session (`Sessions.mark`).
"""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from reasoning.domains import get_domain
from reasoning.factors import Catalog
from reasoning.search import SearchConfig, iterate, rejection, search_factors
from reasoning.tree import ROOT, ReasoningTree
from reasoning.types import Problem

from .. import validate as v
from .models import ModelRegistry, provenance
from .sessions import FINISHED, INTERRUPTED, RUNNING, STOPPED, Sessions
from .views import result_line

REDRAW_SECONDS = 1.5  # a snapshot reaches the page at most every 1.5 s while a search runs (BENCHMARKS.md, explorer)
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


def checked_search(config: SearchConfig, catalog: Catalog) -> None:
    """What the search would refuse once started, refused before its session is stored (a refused `/search` left
    an empty session behind): an unknown thought factor, and ORM answer selection (the explorer loads no ORM)."""
    v.need(config.answer_selection != "orm", "answer_selection 'orm' needs an outcome reward model, which the "
           "explorer does not load (use `python app.py search --orm DIR`)")
    try:
        search_factors(config, catalog)
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
        checked_search(config, catalog)  # before the session is stored: a refused search leaves nothing behind
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
        why = rejection(t.tree, t.nid, config)
        v.need(why is None, f"node {t.nid} is a step the calculator rejected ({why}); resume from a node above it")
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
        """Run the search in a worker thread and report snapshots of its tree at most every REDRAW_SECONDS.

        The search never waits for its reader: the page's redraws, the API's draining and a slow or stalled
        consumer only decide how often a snapshot is taken, not how fast the tree grows (defect 6: run inside
        the page's generator, every redraw held the search back, 4.25x slower than `/search`).
        """
        stop = threading.Event()
        with self.sessions.lock:
            self.sessions.not_running(sid)
            self.sessions.live[sid], self.stops[sid] = tree, stop
            self.sessions.cache.pop(sid, None)  # the live tree is read while it runs; the stored one will change
        run = _Run(sid, tree, stop, status=f"session {sid}: searching…")
        try:
            self.sessions.mark(sid, RUNNING)
            events = iterate(tree, generator, scorer, config, catalog=catalog, start=start, stop=stop)
        except ValueError as exc:
            run.error = exc
            self._finish(run)
            raise v.UserError(str(exc)) from None
        worker = threading.Thread(target=self._work, args=(run, events), name=f"search-{sid}", daemon=True)
        worker.start()
        yield RunUpdate(sid, tree.snapshot(), run.status)
        # A reader that goes away here (the page closed, the generator dropped) leaves the worker running to its end.
        yield from _poll(run)
        if run.error is not None:
            if isinstance(run.error, ValueError):
                raise v.UserError(str(run.error)) from None
            raise run.error
        yield RunUpdate(sid, tree, result_line(sid, tree, run.result), done=True, result=run.result)

    def _work(self, run: _Run, events: Iterator[Any]) -> None:
        """The worker thread: grow the tree, save it every SAVE_SECONDS, and tell readers after each event."""
        last_save = time.monotonic()
        try:
            for ev in events:
                if ev.kind == "finished":
                    run.result = ev.result
                    break
                if time.monotonic() - last_save >= SAVE_SECONDS:
                    self.sessions.store.save_tree(run.sid, run.tree)
                    last_save = time.monotonic()
                run.report(f"session {run.sid}: iteration {ev.iteration}, {ev.created}/{ev.budget} nodes created")
        except BaseException as exc:  # handed to the reader, which raises it on the page or the API
            run.error = exc
        finally:
            self._finish(run)

    def _finish(self, run: _Run) -> None:
        """Save the tree and how the search ended, then forget the run (readers load the saved tree from then on) and
        wake readers."""
        try:
            self.sessions.store.save_tree(run.sid, run.tree)
            self.sessions.mark(run.sid, _ending(run))
        except BaseException as exc:
            run.error = run.error or exc
        finally:
            with self.sessions.lock:
                self.sessions.live.pop(run.sid, None)
                self.stops.pop(run.sid, None)
                self.sessions.cache.pop(run.sid, None)
            run.report(run.status, done=True)


@dataclass
class _Run:
    """A search running in a worker thread, as its readers see it: the latest status, a change count, done."""

    sid: int
    tree: ReasoningTree
    stop: threading.Event
    status: str
    changes: int = 0
    done: bool = False
    result: Any = None
    error: BaseException | None = None
    changed: threading.Condition = field(default_factory=threading.Condition)

    def report(self, status: str, *, done: bool = False) -> None:
        with self.changed:
            self.status, self.done = status, self.done or done
            self.changes += 1
            self.changed.notify_all()


def _ending(run: _Run) -> str:
    """The state a search ended in: a failed one can be resumed like one the server lost."""
    if run.error is not None:
        return INTERRUPTED
    stopped = run.stop.is_set() or bool(getattr(run.result, "stopped", False))
    return STOPPED if stopped else FINISHED


def _poll(run: _Run) -> Iterator[RunUpdate]:
    """Yield a snapshot whenever the tree changed, at most once per REDRAW_SECONDS; returns True at the end.

    A snapshot is a copy, so the reader can draw it while the worker goes on growing the live tree.
    """
    seen = 0
    while True:
        with run.changed:
            run.changed.wait_for(lambda seen=seen: run.done or run.changes > seen)
            seen, status, done = run.changes, run.status, run.done
        if done:
            return True
        drawn = time.monotonic()
        yield RunUpdate(run.sid, run.tree.snapshot(), status)
        with run.changed:  # bound the rate, but wake at once when the search ends
            run.changed.wait_for(lambda: run.done, timeout=max(0.0, REDRAW_SECONDS - (time.monotonic() - drawn)))


def stored_config(info: Any, *, max_budget: int, **overrides: Any) -> SearchConfig:
    """The search config a session was stored with, plus `overrides` (the one place a stored config is read)."""
    try:
        return SearchConfig.from_stored(getattr(info, "config", None), max_budget=max_budget, **overrides)
    except ValueError as exc:
        raise v.UserError(f"the session's stored search config is not usable: {exc}") from None
