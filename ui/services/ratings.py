"""Human ratings and edits of a tree: rate, rate children, edit, write, expand, prune, undo, summarize.

Each resolves its target with `Sessions.target` (session exists, editable, node in the tree), validates its own
values, and makes one storage unit of work, so an acknowledged action is committed.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from reasoning.factors import Catalog, ThoughtFactor
from reasoning.search.context import SearchContext
from reasoning.tree import ROOT, ReasoningTree
from reasoning.types import State, Step
from storage import StaleTreeError

from .. import validate as v
from .models import ModelRegistry
from .runs import domain_of, stored_config
from .sessions import Sessions, new_action_id
from .views import human_step_factor, next_iteration

T = TypeVar("T")
MAX_EXPAND = 16
SUMMARY_FACTOR = ThoughtFactor("summarize", "Summarize the reasoning so far", cue="In short, ")


@dataclass
class Ratings:
    sessions: Sessions
    models: ModelRegistry
    catalog: Catalog
    max_budget: int

    def rate(self, session_id: Any, node_id: Any, rating: Any, *, annotator: Any = None, unsure: Any = False,
             note: Any = "", seconds: Any = None, expected_version: Any = None, action_id: Any = None,
             adjudicated: Any = False):
        """Rate one step. Touches only the rows it needs: the session's deleted flag, the node, the annotation and
        the action log, all checked inside the rating's own transaction; the tree is never loaded (with 16
        annotators, loading it per rating made acknowledgement take seconds). `adjudicated`: the rating is an
        adjudicator's decision, which settles the step's label in every export."""
        sid, nid = v.session_id(session_id), v.node_id(node_id)
        v.need(nid != ROOT, "the root is the problem itself; rate a step instead")
        self.sessions.not_running(sid)
        secs = None if seconds is None else v.number(seconds, "seconds", 0.0, 86400.0)
        with self.sessions.found(sid, nid):
            return self.sessions.store.rate(
                sid, nid, v.annotator(annotator), v.rating(rating), unsure=v.flag(unsure, "unsure"),
                note=v.text(note or "", "note", limit=v.MAX_NOTE, allow_empty=True), seconds=secs,
                action_id=v.action_id(action_id) or new_action_id(), expected_version=v.version(expected_version),
                live_session=True, adjudicated=v.flag(adjudicated, "adjudicated"),
            )

    def rate_children(self, session_id: Any, node_id: Any, rows: Any, *, annotator: Any = None) -> int:
        """Rate children of a node at once from rows `[child id, ..., rating]`; blank ratings are skipped."""
        sid = v.session_id(session_id)
        self.sessions.editable(sid)
        t = self.sessions.target(sid, node_id, editable=False)  # ratings leave the tree as it is: the cached one
        v.need(isinstance(rows, list), "ratings must be a list of rows [child id, ..., rating]")
        kids = set(t.tree.children(t.nid, include_pruned=True))
        todo = []
        for row in rows:
            v.need(isinstance(row, list | tuple) and len(row) >= 2, "each row needs a child id and a rating")
            child, rating = row[0], row[-1]
            v.need(isinstance(child, str) and child in kids, f"{child!r} is not a child of node {t.nid}")
            if rating is None or (isinstance(rating, str) and not rating.strip()):
                continue
            todo.append((child, v.rating(rating)))
        v.need(bool(todo), "no ratings to save: fill the rating column with -1, 0 or +1")
        return len(self.sessions.store.rate_many(t.sid, dict(todo), v.annotator(annotator),
                                                 action_id=new_action_id()))

    def edit(self, session_id: Any, node_id: Any, text: Any, *, annotator: Any = None) -> str:
        """Keep the step as is and add the edited text as a sibling (origin `edited`), scored by the PRM."""
        return _fresh_retry(lambda: self._edit(session_id, node_id, text, annotator))

    def _edit(self, session_id: Any, node_id: Any, text: Any, annotator: Any) -> str:
        t = self.sessions.target(session_id, node_id)
        v.need(t.nid != ROOT, "the root is the problem; start a new search to change it")
        text = v.text(text, "step text")
        v.need(text.strip() != t.tree.node(t.nid)["text"].strip(), "the text is unchanged; edit it first")
        parent = t.tree.parent(t.nid)
        assert parent is not None  # not the root
        new = self._add_step(t.tree, t.sid, parent, text, t.tree.node(t.nid)["factor"], "edited",
                             meta={"edited_from": t.nid})
        with self.sessions.changing(t.sid):
            self.sessions.store.add_nodes(t.sid, t.tree, [new], kind="edit", annotator=v.annotator(annotator),
                                          action_id=new_action_id())
        return new

    def add_human_step(self, session_id: Any, node_id: Any, text: Any, factor: Any = None, *,
                       annotator: Any = None) -> str:
        """A step written by a person under a node (origin `human`), scored by the PRM. `factor` is one of the
        session's catalog; left out, the one `human_step_choices` offers first. The domain reads it as it reads a
        generated step (a final answer ends the path, its answer recorded); where that would drop or change what
        was typed, the step is refused with the reason (`read_typed`)."""
        return _fresh_retry(lambda: self._add_human_step(session_id, node_id, text, factor, annotator))

    def _add_human_step(self, session_id: Any, node_id: Any, text: Any, factor: Any, annotator: Any) -> str:
        t = self.sessions.target(session_id, node_id)
        text = v.text(text, "step text")
        names = self.session_catalog(t.sid).names
        if factor in (None, ""):
            factor = human_step_factor(t.tree, t.nid, names)
        else:
            v.need(isinstance(factor, str) and factor in names,
                   f"factor must be one of this session's factors {names}, got {str(factor)[:40]!r}")
        new = self._add_step(t.tree, t.sid, t.nid, text, factor, "human")
        with self.sessions.changing(t.sid):
            self.sessions.store.add_nodes(t.sid, t.tree, [new], kind="human_step", annotator=v.annotator(annotator),
                                          action_id=new_action_id())
        return new

    def human_step_choices(self, session_id: Any, node_id: Any) -> tuple[list[str], str]:
        """The factors a hand-written step under a node may take (the session's catalog) and the default one."""
        t = self.sessions.target(session_id, node_id, editable=False)
        names = self.session_catalog(t.sid).names
        return names, human_step_factor(t.tree, t.nid, names)

    def session_catalog(self, sid: int) -> Catalog:
        """The catalog a session was searched with (stored with it), else the app's (imported sessions have none)."""
        raw = getattr(self.sessions.info(sid), "catalog", None)
        if isinstance(raw, dict):
            try:
                return Catalog.from_dict(raw)
            except ValueError:
                pass
        return self.catalog

    def expand(self, session_id: Any, node_id: Any, factor: Any, n: Any = 3, *, annotator: Any = None) -> list[str]:
        """Sample `n` children under a node with one chosen thought factor, scored by the PRM; returns the new ones
        (with the session's `merge_duplicates`, a sample identical to an existing child is not added again)."""
        return _fresh_retry(lambda: self._expand(session_id, node_id, factor, n, annotator))

    def _expand(self, session_id: Any, node_id: Any, factor: Any, n: Any, annotator: Any) -> list[str]:
        t = self.sessions.target(session_id, node_id)
        v.choice(factor, "factor", self.catalog.names)
        count = v.integer(n, "number of children", 1, MAX_EXPAND)
        v.need(t.tree.is_live(t.nid), f"node {t.nid} is pruned; undo the prune before expanding it")
        v.need(not t.tree.node(t.nid)["terminal"], f"node {t.nid} is a final answer; expand a step before it")
        ctx = self._context(t.tree, t.sid, count)
        ctx.iteration = next_iteration(t.tree)
        new = ctx.expand(t.nid, self.catalog.get(factor), count)
        ctx.score(new)
        with self.sessions.changing(t.sid):
            self.sessions.store.add_nodes(t.sid, t.tree, new, kind="expand", annotator=v.annotator(annotator),
                                          action_id=new_action_id())
        return new

    def prune(self, session_id: Any, node_id: Any, *, annotator: Any = None, expected_version: Any = None,
              action_id: Any = None):
        """Prune a node's subtree; like `rate`, checked inside its own transaction without loading the tree."""
        sid, nid = v.session_id(session_id), v.node_id(node_id)
        v.need(nid != ROOT, "the root cannot be pruned")
        self.sessions.not_running(sid)
        action = v.action_id(action_id)
        with self.sessions.found(sid, nid), self.sessions.changing(sid):
            return self.sessions.store.prune(sid, nid, annotator=v.annotator(annotator),
                                             action_id=action or new_action_id(),
                                             expected_version=v.version(expected_version), live_session=True,
                                             if_unpruned=action is None)

    def undo(self, session_id: Any, *, annotator: Any = None):
        sid = v.session_id(session_id)
        self.sessions.not_running(sid)
        with self.sessions.changing(sid):
            return self.sessions.store.undo(sid, v.annotator(annotator))

    def summarize(self, session_id: Any, node_id: Any) -> str:
        """A short summary of the root-to-node trace, written by the generator under a `summarize` cue."""
        t = self.sessions.target(session_id, node_id, editable=False)
        info = self.sessions.info(t.sid)
        generator, _ = self.models.pair((info.provenance or {}).get("generator_dir"), None)
        steps = generator.propose(t.tree.state(t.nid), SUMMARY_FACTOR, 1, temperature=0.0, seed=0)
        return steps[0].text if steps else ""

    # -- helpers -------------------------------------------------------------------------------------
    def _context(self, tree: ReasoningTree, sid: int, budget: int) -> SearchContext:
        """A search context over a stored session with its own models and config (budget `budget`)."""
        info = self.sessions.info(sid)
        config = stored_config(info, max_budget=self.max_budget, budget=budget, factors=None)
        generator, scorer = self.models.pair((info.provenance or {}).get("generator_dir"),
                                             (info.provenance or {}).get("prm_dir"))
        return SearchContext(tree, generator, scorer, domain_of(tree.problem), self.catalog, config)

    def _add_step(self, tree: ReasoningTree, sid: int, parent: str, text: str, factor: str | None, origin: str,
                  meta: dict | None = None) -> str:
        """Add a user-written step under `parent`: the domain books it, the session's PRM scores it."""
        ctx = self._context(tree, sid, 1)
        step = Step(text, factor)
        step = read_typed(ctx.domain, tree.state(parent), step) if origin == "human" else \
            ctx.domain.observe(tree.state(parent), step)
        if step.meta.get("invalid"):  # the domain's flag, as on a generated step (ARCHITECTURE.md, "Core concepts")
            meta = {**(meta or {}), "invalid": step.meta["invalid"]}
        nid = tree.add_child(parent, step, origin=origin, meta=meta, iteration=next_iteration(tree))
        ctx.score([nid])
        return nid


def _fresh_retry(change: Callable[[], T], attempts: int = 3) -> T:
    """A change that adds nodes, made again on a freshly loaded tree when another server stored nodes under the same
    parent first (their ids came from the same stale copy: `StaleTreeError`). `Sessions.changing` has dropped the
    cached tree by then, so the next attempt reads the stored one."""
    for attempt in range(attempts):
        try:
            return change()
        except StaleTreeError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def read_typed(domain: Any, state: State, step: Step) -> Step:
    """A typed step as its domain books it: the domain's own `read_typed` where it has one (it refuses, in one line,
    what booking would change), else `observe`; either way every typed character must be kept (a domain may add its
    note after them), so nothing typed is dropped without a word."""
    try:
        read = getattr(domain, "read_typed", None)
        booked = read(state, step) if read is not None else domain.observe(state, step)
    except ValueError as exc:
        raise v.UserError(str(exc)) from None
    v.need(" ".join(booked.text.split()).startswith(" ".join(step.text.split())),
           f"the {domain.name} domain would store this step as {booked.text[:200]!r}, dropping part of what was "
           "typed: write it as the domain reads it")
    return booked
