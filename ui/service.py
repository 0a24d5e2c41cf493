"""The explorer's actions as plain functions over ids: no Gradio here, so scripts and tests call them directly.

Each action validates its arguments (`ui.validate`), opens at most one storage unit of work, and returns plain
values. Live searches keep their tree in memory (`Explorer.live`) until they finish and are saved.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reasoning.domains import get_domain
from reasoning.factors import Catalog, ThoughtFactor, load_catalog
from reasoning.problems import ProblemFormatError, parse_problem_text, read_problems
from reasoning.search import ALGORITHMS, SearchConfig, iterate
from reasoning.search.config import ANSWER_SELECTIONS, DEFAULT_MAX_BUDGET
from reasoning.search.context import SearchContext
from reasoning.tree import ROOT, ReasoningTree
from reasoning.types import Problem, Step

from . import validate as v

log = logging.getLogger(__name__)

AGGREGATIONS = ("min", "prod", "last", "mean")
REDRAW_SECONDS = 0.3  # at most ~3 redraws a second while a search runs
SAVE_SECONDS = 3.0  # a running search is saved this often, so a crash loses little
MAX_EXPAND = 16
SUMMARY_FACTOR = ThoughtFactor("summarize", "Summarize the reasoning so far", cue="In short, ")
TRACE_HEADERS = ["#", "node", "factor", "origin", "step", "PRM", "value", "Q", "visits", "prior", "human"]
SIBLING_HEADERS = ["node", "factor", "step", "PRM", "value", "visits", "rating"]
SESSION_HEADERS = ["id", "name", "problem", "nodes", "labels", "updated", "deleted"]


@dataclass
class RunUpdate:
    """What a running search reports to the page: the session, its live tree, a status line, and done."""

    session_id: int
    tree: ReasoningTree
    status: str
    done: bool = False
    result: Any = None


@dataclass
class NodeView:
    """Everything the inspector shows about one node."""

    session_id: int
    node_id: str
    text: str
    trace: list[list[Any]]
    info: str
    version: int | None
    factor: str | None
    children: int


@dataclass
class Explorer:
    """The app's engine: models, storage and live searches, shared by every browser session (module level)."""

    generator: Any
    scorer: Any
    store: Any
    catalog: Catalog = field(default_factory=load_catalog)
    generator_dir: str = ""
    prm_dir: str = ""
    max_budget: int = DEFAULT_MAX_BUDGET
    # initial values of the search controls, per algorithm ({} for an algorithm: SearchConfig's defaults)
    search_defaults: dict[str, dict[str, Any]] = field(default_factory=dict)
    model_roots: tuple[str, ...] = ()  # folders whose model directories a web user may pick (besides the defaults)
    problem_sets: dict[str, list[Problem]] = field(default_factory=dict)
    live: dict[int, ReasoningTree] = field(default_factory=dict)
    stops: dict[int, threading.Event] = field(default_factory=dict)
    _models: dict[tuple[str, str], Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _export_root: Path | None = None

    def control_defaults(self, algorithm: str) -> dict[str, Any]:
        """The search settings the controls start from for `algorithm` (the demo's tuned ones on the demo models)."""
        return {**SearchConfig().to_dict(), **self.search_defaults.get(algorithm, {})}

    # -- models ----------------------------------------------------------------------------------

    def models(self, generator_dir: str | None, prm_dir: str | None) -> tuple[Any, Any]:
        """The generator and scorer for these directories; blank or the defaults give the loaded models."""
        gen = self._model("generator", generator_dir, self.generator_dir, self.generator)
        prm = self._model("prm", prm_dir, self.prm_dir, self.scorer)
        return gen, prm

    def _model(self, kind: str, path: str | None, default_path: str, default: Any) -> Any:
        path = (path or "").strip()
        if not path or path == default_path:
            return default
        v.need(len(path) <= 1000, f"{kind} directory path is too long")
        from reasoning.backends.http import is_url

        if is_url(path):
            return self._served_model(kind, path)
        resolved = Path(path).expanduser().resolve()
        roots = self.allowed_model_roots()
        # one answer for every path outside the roots, so the web cannot probe the server's file system
        v.need(any(resolved.is_relative_to(r) for r in roots) and resolved.is_dir(),
               f"{kind} directory {path} is not a model folder this server offers (allowed under: "
               f"{', '.join(str(r) for r in roots)}; start the app with REASONING_MODEL_ROOTS to add folders)")
        key = (kind, str(resolved))
        with self._lock:
            if key not in self._models and len(self._models) >= MAX_EXTRA_MODELS:
                self._models.pop(next(iter(self._models)))  # keep memory bounded: forget the oldest extra model
            if key not in self._models:
                from reasoning import backends  # only here: loading models needs torch

                loader = backends.load_generator if kind == "generator" else backends.load_scorer
                try:
                    self._models[key] = loader(key[1], catalog=self.catalog) if kind == "generator" else loader(key[1])
                except backends.ModelLoadError as exc:
                    raise v.UserError(str(exc)) from None
            return self._models[key]

    def _served_model(self, kind: str, url: str) -> Any:
        """A generator or PRM on a model server the operator offers (never any URL the web names: the app would
        send requests wherever it is told)."""
        offered = self.allowed_model_urls()
        v.need(url in offered, f"{kind} server {url} is not one this app offers (offered: "
                               f"{', '.join(offered) or 'none'}; start the app with REASONING_MODEL_URLS to add some)")
        key = (kind, url)
        with self._lock:
            if key not in self._models and len(self._models) >= MAX_EXTRA_MODELS:
                self._models.pop(next(iter(self._models)))
            if key not in self._models:
                from reasoning import backends

                try:
                    self._models[key] = (backends.load_generator(url, catalog=self.catalog) if kind == "generator"
                                         else backends.load_scorer(url))
                except backends.ServerError as exc:
                    raise v.UserError(str(exc)) from None
            return self._models[key]

    def allowed_model_urls(self) -> list[str]:
        """The model servers the web may pick: those the app started with and REASONING_MODEL_URLS (whitespace
        separated; one entry may list several servers of one model, comma separated)."""
        from reasoning.backends.http import is_url

        urls = [u for u in (self.generator_dir, self.prm_dir) if is_url(u)]
        urls += os.environ.get("REASONING_MODEL_URLS", "").split()
        return list(dict.fromkeys(u.strip() for u in urls if u.strip()))

    def allowed_model_roots(self) -> list[Path]:
        """The folders under which the web may load model directories: the demo models' folder, the folders
        of the models the app started with, and REASONING_MODEL_ROOTS (os.pathsep separated)."""
        from reasoning.backends import DEMO_GENERATOR_DIR
        from reasoning.backends.http import is_url

        roots = [DEMO_GENERATOR_DIR.parent,
                 *(Path(p).parent for p in (self.generator_dir, self.prm_dir) if p and not is_url(p))]
        roots += [Path(p) for p in self.model_roots]
        roots += [Path(p) for p in os.environ.get("REASONING_MODEL_ROOTS", "").split(os.pathsep) if p.strip()]
        return list(dict.fromkeys(r.expanduser().resolve() for r in roots))

    # -- problems, config, catalog ---------------------------------------------------------------
    def problem(self, text: str) -> Problem:
        text = v.text(text, "problem", limit=v.MAX_TEXT)
        for problems in self.problem_sets.values():
            for p in problems:
                if p.text == text.strip():
                    return p
        for p in self.store.problems():
            if p.text == text.strip():
                return p
        try:
            return parse_problem_text(text)
        except ProblemFormatError as exc:
            raise v.UserError(str(exc)) from None

    def add_problem_set(self, path: str, name: str | None = None) -> list[Problem]:
        try:
            problems = read_problems(path)
        except ProblemFormatError as exc:
            raise v.UserError(str(exc)) from None
        self.problem_sets[name or Path(path).stem] = problems
        return problems

    def problem_choices(self) -> list[str]:
        """Problem texts from the loaded problem sets and the problems stored in the database (imported sets)."""
        texts = [p.text for problems in self.problem_sets.values() for p in problems]
        try:
            texts += [p.text for p in self.store.problems()]
        except Exception:  # noqa: BLE001 - the picker is a convenience; an empty one is fine
            log.exception("cannot list stored problems")
        return list(dict.fromkeys(texts))[:2000]

    def config(
        self,
        algorithm: str = "mcts",
        budget: Any = 64,
        seed: Any = 0,
        candidates: Any = 3,
        temperature: Any = 1.0,
        c_puct: Any = 1.5,
        beam_width: Any = 4,
        max_depth: Any = 12,
        aggregation: str = "min",
        parallel_leaves: Any = 1,
        factors: list[str] | None = None,
        widen: Any = 0.0,
        fpu_reduction: Any = 0.0,
        answer_selection: str = "value",
        merge_duplicates: Any = True,
    ) -> SearchConfig:
        """A validated SearchConfig from loosely typed UI or API values."""
        v.choice(algorithm, "algorithm", ALGORITHMS)
        v.choice(aggregation, "aggregation", AGGREGATIONS)
        v.choice(answer_selection, "answer selection", ANSWER_SELECTIONS)
        try:
            return SearchConfig(
                algorithm=algorithm,
                budget=v.integer(budget, "budget", 1, self.max_budget),
                seed=v.integer(seed, "seed", 0, 2**31 - 1),
                candidates=v.integer(candidates, "candidates", 1, 64),
                temperatures=(v.number(temperature, "temperature", 0.0, 5.0),),
                c_puct=v.number(c_puct, "c_puct", 0.0, 100.0),
                beam_width=v.integer(beam_width, "beam width", 1, 256),
                max_depth=v.integer(max_depth, "max depth", 1, 256),
                aggregation=aggregation,
                parallel_leaves=v.integer(parallel_leaves, "parallel leaves", 1, 64),
                factors=tuple(factors) if factors else None,
                widen=v.number(widen, "widen", 0.0, 1.0),
                fpu_reduction=v.number(fpu_reduction, "fpu reduction", 0.0, 1.0),
                answer_selection=answer_selection,
                merge_duplicates=v.flag(merge_duplicates, "merge duplicates"),
                max_budget=self.max_budget,
            )
        except ValueError as exc:
            raise v.UserError(str(exc)) from None

    def catalog_rows(self, catalog: Catalog | None = None) -> list[list[Any]]:
        return [[f.name, f.enabled, f.cue, f.description] for f in (catalog or self.catalog)]

    def catalog_from_rows(self, rows: Any) -> Catalog:
        """The base catalog with the enabled flags and cues of the UI table applied (names cannot change)."""
        v.need(isinstance(rows, list), "catalog must be a list of rows [name, enabled, cue, ...]")
        cat = self.catalog
        enabled = []
        for row in rows:
            v.need(isinstance(row, list | tuple) and len(row) >= 3, "each catalog row needs name, enabled, cue")
            name, on, cue = row[0], row[1], row[2]
            v.need(name in cat.names, f"unknown thought factor {name!r}; the catalog has {cat.names}")
            if isinstance(on, str):
                on = on.strip().lower() in ("true", "1", "yes", "on")
            if bool(on):
                enabled.append(name)
            cue = v.text("" if cue is None else cue, f"cue of {name}", limit=200, allow_empty=True)
            cat = cat.with_cue(name, cue)
        v.need(bool(enabled), "enable at least one thought factor")
        return cat.with_enabled(enabled)

    # -- trees -----------------------------------------------------------------------------------
    def tree(self, session_id: Any) -> ReasoningTree:
        sid = v.session_id(session_id)
        live = self.live.get(sid)
        if live is not None:
            return live
        try:
            return self.store.load_tree(sid)
        except LookupError:
            raise v.UserError(f"session {sid} not found") from None

    def running(self, session_id: Any) -> bool:
        return v.session_id(session_id) in self.live

    def _not_running(self, sid: int) -> None:
        v.need(sid not in self.live, f"a search is running on session {sid}: stop it or wait for it to finish")

    def _editable(self, sid: int) -> None:
        """Changes to a tree need a session that exists, is not deleted and has no search running."""
        self._not_running(sid)
        try:
            deleted = self.store.session(sid).deleted
        except LookupError:
            raise v.UserError(f"session {sid} not found") from None
        v.need(not deleted, f"session {sid} is deleted: restore it before changing it")

    def _node(self, tree: ReasoningTree, node_id: Any) -> str:
        nid = v.node_id(node_id)
        v.need(nid in tree, f"no node {nid} in this session's tree")
        return nid

    # -- searching -------------------------------------------------------------------------------
    def run_search(
        self,
        problem_text: str,
        config: SearchConfig,
        catalog: Catalog | None = None,
        *,
        annotator: str = "anonymous",
        generator_dir: str | None = None,
        prm_dir: str | None = None,
        name: str | None = None,
    ) -> Iterator[RunUpdate]:
        """Start a new session on a problem and stream its growing tree."""
        problem = self.problem(problem_text)
        catalog = catalog or self.catalog
        generator, scorer = self.models(generator_dir, prm_dir)
        self._domain(problem)
        tree = ReasoningTree(problem)
        provenance = {
            "generator": _provenance(generator), "scorer": _provenance(scorer),
            "generator_dir": generator_dir or self.generator_dir, "prm_dir": prm_dir or self.prm_dir,
            "annotator": v.annotator(annotator),
        }
        sid = self.store.create_session(
            tree, name=(name or problem.text)[:120], config=config.to_dict(), provenance=provenance,
            catalog=catalog.to_dict(),
        )
        yield from self._drive(sid, tree, generator, scorer, config, catalog, ROOT)

    def resume(
        self, session_id: Any, node_id: Any, budget: Any, *, generator_dir: str | None = None,
        prm_dir: str | None = None,
    ) -> Iterator[RunUpdate]:
        """Continue a saved session's search from one node, with a new budget of nodes."""
        sid = v.session_id(session_id)
        self._editable(sid)
        tree = self.tree(sid)
        nid = self._node(tree, node_id)
        v.need(tree.is_live(nid), f"node {nid} is pruned; undo the prune before searching from it")
        info = self.session_info(sid)
        base = dict(info.config or {})
        base["budget"] = v.integer(budget, "budget", 1, self.max_budget)
        base["max_budget"] = self.max_budget
        try:
            config = SearchConfig(**{k: val for k, val in base.items() if k in SearchConfig.__dataclass_fields__})
        except (TypeError, ValueError) as exc:
            raise v.UserError(f"the session's stored search config is not usable: {exc}") from None
        generator, scorer = self.models(generator_dir, prm_dir)
        yield from self._drive(sid, tree, generator, scorer, config, self._session_catalog(info), nid)

    def _drive(self, sid, tree, generator, scorer, config, catalog, start) -> Iterator[RunUpdate]:
        stop = threading.Event()
        with self._lock:
            self._not_running(sid)
            self.live[sid], self.stops[sid] = tree, stop
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
                    self.store.save_tree(sid, tree)
                    last_save = now
                if now - last_draw >= REDRAW_SECONDS:
                    last_draw = now
                    yield RunUpdate(sid, tree, f"session {sid}: iteration {ev.iteration}, "
                                               f"{ev.created}/{ev.budget} nodes created")
        except ValueError as exc:
            raise v.UserError(str(exc)) from None
        finally:
            with self._lock:
                self.live.pop(sid, None)
                self.stops.pop(sid, None)
            self.store.save_tree(sid, tree)
        yield RunUpdate(sid, tree, _result_line(sid, tree, result), done=True, result=result)

    def stop(self, session_id: Any) -> bool:
        """Ask a running search to stop after its current step; False when none is running."""
        ev = self.stops.get(v.session_id(session_id))
        if ev is None:
            return False
        ev.set()
        return True

    # -- the inspector ---------------------------------------------------------------------------
    def inspect(self, session_id: Any, node_id: Any) -> NodeView:
        sid = v.session_id(session_id)
        tree = self.tree(sid)
        nid = self._node(tree, node_id)
        labels = self.label_summary(sid)
        rows = []
        for i, n in enumerate(tree.path(nid)):
            a = tree.node(n)
            rows.append([
                i, n, a["factor"] or "(problem)", a["origin"], a["text"], _r(a["score"]), _r(a["value"]),
                _r(tree.q(n)), a["visits"], _r(a["prior"]), labels.get(n, ""),
            ])
        a = tree.node(nid)
        info = (f"node {nid} · depth {a['depth']} · factor {a['factor'] or '(root)'} · {a['origin']}"
                f"{' · pruned' if not tree.is_live(nid) else ''}"
                f"{' · answer ' + str(a['answer']) if a['terminal'] else ''}")
        return NodeView(sid, nid, a["text"], rows, info, a.get("version"), a["factor"],
                        len(tree.children(nid, include_pruned=True)))

    def label_summary(self, sid: int) -> dict[str, str]:
        """`{node: "alice +1, bob -1?"}` from the stored human annotations (`?` marks unsure)."""
        out: dict[str, list[str]] = {}
        for ann in self.store.annotations(sid):
            mark = f"{ann.annotator} {ann.rating:+d}" if ann.rating else f"{ann.annotator} 0"
            out.setdefault(ann.node_id, []).append(mark + ("?" if ann.unsure else ""))
        return {k: ", ".join(vs) for k, vs in out.items()}

    def siblings(self, session_id: Any, node_id: Any) -> list[list[Any]]:
        """The children of a node with the current annotator-agnostic latest rating column left blank."""
        sid = v.session_id(session_id)
        tree = self.tree(sid)
        nid = self._node(tree, node_id)
        rows = []
        for c in tree.children(nid, include_pruned=False):
            a = tree.node(c)
            rows.append([c, a["factor"], a["text"], _r(a["score"]), _r(a["value"]), a["visits"], ""])
        return rows

    # -- labelling actions -----------------------------------------------------------------------
    def rate(self, session_id: Any, node_id: Any, rating: Any, *, annotator: Any = None, unsure: Any = False,
             note: Any = "", seconds: Any = None, expected_version: Any = None, action_id: Any = None):
        sid = v.session_id(session_id)
        self._editable(sid)
        tree = self.tree(sid)
        nid = self._node(tree, node_id)
        v.need(nid != ROOT, "the root is the problem itself; rate a step instead")
        secs = None if seconds is None else v.number(seconds, "seconds", 0.0, 86400.0)
        return self.store.rate(
            sid, nid, v.annotator(annotator), v.rating(rating), unsure=v.flag(unsure, "unsure"),
            note=v.text(note or "", "note", limit=v.MAX_NOTE, allow_empty=True), seconds=secs,
            action_id=v.action_id(action_id) or _action_id(), expected_version=v.version(expected_version),
        )

    def rate_children(self, session_id: Any, node_id: Any, rows: Any, *, annotator: Any = None) -> int:
        """Rate every child of a node at once from rows `[child id, ..., rating]`; blank ratings are skipped."""
        sid = v.session_id(session_id)
        self._editable(sid)
        tree = self.tree(sid)
        nid = self._node(tree, node_id)
        v.need(isinstance(rows, list), "ratings must be a list of rows [child id, ..., rating]")
        kids = set(tree.children(nid, include_pruned=True))
        todo = []
        for row in rows:
            v.need(isinstance(row, list | tuple) and len(row) >= 2, "each row needs a child id and a rating")
            child, rating = row[0], row[-1]
            v.need(isinstance(child, str) and child in kids, f"{child!r} is not a child of node {nid}")
            if rating is None or (isinstance(rating, str) and not rating.strip()):
                continue
            todo.append((child, v.rating(rating)))
        v.need(bool(todo), "no ratings to save: fill the rating column with -1, 0 or +1")
        return len(self.store.rate_many(sid, dict(todo), v.annotator(annotator), action_id=_action_id()))

    def edit(self, session_id: Any, node_id: Any, text: Any, *, annotator: Any = None) -> str:
        """Keep the step as is and add the edited text as a sibling (origin `edited`), scored by the PRM."""
        sid = v.session_id(session_id)
        self._editable(sid)
        tree = self.tree(sid)
        nid = self._node(tree, node_id)
        v.need(nid != ROOT, "the root is the problem; start a new search to change it")
        text = v.text(text, "step text")
        v.need(text.strip() != tree.node(nid)["text"].strip(), "the text is unchanged; edit it first")
        parent = tree.parent(nid)
        factor = tree.node(nid)["factor"]
        new = self._add_step(tree, sid, parent, text, factor, "edited", meta={"edited_from": nid})
        self.store.add_nodes(sid, tree, [new], kind="edit", annotator=v.annotator(annotator), action_id=_action_id())
        return new

    def add_human_step(self, session_id: Any, node_id: Any, text: Any, factor: Any = None, *,
                       annotator: Any = None) -> str:
        """A step written by a person under a node (origin `human`), scored by the PRM."""
        sid = v.session_id(session_id)
        self._editable(sid)
        tree = self.tree(sid)
        nid = self._node(tree, node_id)
        text = v.text(text, "step text")
        if factor in (None, ""):
            factor = None
        else:
            v.choice(factor, "factor", self.catalog.names)
        new = self._add_step(tree, sid, nid, text, factor, "human")
        self.store.add_nodes(sid, tree, [new], kind="human_step", annotator=v.annotator(annotator), action_id=_action_id())
        return new

    def expand(self, session_id: Any, node_id: Any, factor: Any, n: Any = 3, *, annotator: Any = None) -> list[str]:
        """Sample `n` children under a node with one chosen thought factor, scored by the PRM; returns the new ones
        (with the session's `merge_duplicates`, a sample identical to an existing child is not added again)."""
        sid = v.session_id(session_id)
        self._editable(sid)
        tree = self.tree(sid)
        nid = self._node(tree, node_id)
        v.choice(factor, "factor", self.catalog.names)
        count = v.integer(n, "number of children", 1, MAX_EXPAND)
        v.need(tree.is_live(nid), f"node {nid} is pruned; undo the prune before expanding it")
        v.need(not tree.node(nid)["terminal"], f"node {nid} is a final answer; expand a step before it")
        info = self.session_info(sid)
        ctx = self._context(tree, info, count)
        ctx.iteration = 1 + max(a["iteration"] for _, a in tree.graph.nodes(data=True))
        new = ctx.expand(nid, self.catalog.get(factor), count)
        ctx.score(new)
        self.store.add_nodes(sid, tree, new, kind="expand", annotator=v.annotator(annotator), action_id=_action_id())
        return new

    def prune(self, session_id: Any, node_id: Any, *, annotator: Any = None, expected_version: Any = None,
              action_id: Any = None):
        sid = v.session_id(session_id)
        self._editable(sid)
        tree = self.tree(sid)
        nid = self._node(tree, node_id)
        v.need(nid != ROOT, "the root cannot be pruned")
        action = v.action_id(action_id)
        v.need(action is not None or not tree.node(nid)["pruned"], f"node {nid} is already pruned")
        return self.store.prune(sid, nid, annotator=v.annotator(annotator), action_id=action or _action_id(),
                                expected_version=v.version(expected_version))

    def undo(self, session_id: Any, *, annotator: Any = None):
        sid = v.session_id(session_id)
        self._not_running(sid)
        return self.store.undo(sid, v.annotator(annotator))

    def summarize(self, session_id: Any, node_id: Any) -> str:
        """A short summary of the root-to-node trace, written by the generator under a `summarize` cue."""
        sid = v.session_id(session_id)
        tree = self.tree(sid)
        nid = self._node(tree, node_id)
        info = self.session_info(sid)
        generator, _ = self.models((info.provenance or {}).get("generator_dir"), None)
        steps = generator.propose(tree.state(nid), SUMMARY_FACTOR, 1, temperature=0.0, seed=0)
        return steps[0].text if steps else ""

    # -- sessions --------------------------------------------------------------------------------
    def session_info(self, session_id: Any):
        sid = v.session_id(session_id)
        try:
            return self.store.session(sid)
        except LookupError:
            raise v.UserError(f"session {sid} not found") from None

    def sessions(self, query: Any = "", include_deleted: Any = False) -> list[list[Any]]:
        query = v.text(query or "", "filter", limit=200, allow_empty=True).strip().lower()
        rows = []
        for s in self.store.list_sessions(query or None, include_deleted=v.flag(include_deleted, "include deleted")):
            rows.append([s.id, s.name, s.problem_text[:120], s.nodes, s.annotations,
                         s.updated.strftime("%Y-%m-%d %H:%M") if s.updated else "", "yes" if s.deleted else ""])
        return rows

    def rename(self, session_id: Any, name: Any, *, annotator: Any = None):
        sid = v.session_id(session_id)
        self.session_info(sid)
        return self.store.rename_session(sid, v.text(name, "name", limit=v.MAX_NAME).strip(), v.annotator(annotator),
                                         action_id=_action_id())

    def delete(self, session_id: Any, *, annotator: Any = None):
        sid = v.session_id(session_id)
        self._not_running(sid)
        self.session_info(sid)
        return self.store.delete_session(sid, v.annotator(annotator), action_id=_action_id())

    def restore(self, session_id: Any, *, annotator: Any = None):
        sid = v.session_id(session_id)
        self.session_info(sid)
        return self.store.restore_session(sid, v.annotator(annotator), action_id=_action_id())

    # -- export and import ----------------------------------------------------------------------
    def export(self, fmt: Any, *, labels: Any = "human", neutral: Any = "drop", soft: Any = False,
               all_paths: Any = False, session_ids: Any = None, file_format: Any = "jsonl",
               out_dir: str | Path | None = None, preview: int = 5) -> tuple[Path, dict, list[dict]]:
        """Write an export file (and its manifest) to a fresh temporary folder: (path, manifest, first records)."""
        from storage.export import FORMATS, WRITERS, export_records, write_export
        from storage.labels import NEUTRAL, SOURCES, LabelOptions

        fmt = v.choice(fmt, "format", list(FORMATS))
        file_format = v.choice(file_format, "file format", list(WRITERS))
        options = LabelOptions(labels=v.choice(labels, "labels", SOURCES), soft=v.flag(soft, "soft"),
                               neutral=v.choice(neutral, "neutral", list(NEUTRAL)),
                               all_paths=v.flag(all_paths, "all paths"))
        ids = None if not session_ids else [v.session_id(s) for s in _id_list(session_ids)]
        trees = self.store.labeled_trees(ids)
        folder = Path(out_dir) if out_dir else self._export_folder()
        out = folder / f"export-{fmt}.{'parquet' if file_format == 'parquet' else 'jsonl'}"
        manifest = write_export(trees, fmt, out, options, file_format=file_format)
        return out, manifest, export_records(trees, fmt, options)[:preview]

    def _export_folder(self) -> Path:
        """A new folder for one export under the app's export folder; only the newest KEEP_EXPORTS are kept."""
        with self._lock:
            if self._export_root is None:
                self._export_root = Path(tempfile.mkdtemp(prefix="rte-exports-"))
            old = sorted(self._export_root.iterdir(), key=lambda p: p.stat().st_mtime)
            for stale in old[: max(0, len(old) - KEEP_EXPORTS + 1)]:
                shutil.rmtree(stale, ignore_errors=True)
            return Path(tempfile.mkdtemp(dir=self._export_root))

    def validate_import(self, path: Any, fmt: Any) -> dict:
        """Read an import file without storing it: counts, or the first problem found (line and field)."""
        from storage.importers import IMPORTERS, read_import

        fmt = v.choice(fmt, "format", list(IMPORTERS))
        v.need(isinstance(path, str | Path) and Path(path).is_file(), "choose a file to import")
        batch = read_import(path, fmt)
        return {"format": fmt, "problems": len(batch.problems), "sessions": len(batch.trees),
                "nodes": sum(len(t.tree) - 1 for t in batch.trees),
                "labels": sum(len(t.annotations) for t in batch.trees)}

    def import_file(self, path: Any, fmt: Any) -> dict:
        from storage.importers import import_file

        self.validate_import(path, fmt)
        return import_file(self.store, path, fmt)

    # -- helpers ---------------------------------------------------------------------------------
    def _domain(self, problem: Problem):
        try:
            return get_domain(problem.domain)
        except ValueError as exc:
            raise v.UserError(str(exc)) from None

    def _session_catalog(self, info) -> Catalog:
        raw = getattr(info, "catalog", None)
        if isinstance(raw, dict):
            try:
                return Catalog.from_dict(raw)
            except ValueError:
                log.warning("session %s has an unreadable catalog; using the default", info.id)
        return self.catalog

    def _context(self, tree: ReasoningTree, info, budget: int) -> SearchContext:
        base = {k: val for k, val in (info.config or {}).items() if k in SearchConfig.__dataclass_fields__}
        base.update(budget=budget, factors=None, max_budget=self.max_budget)
        try:
            config = SearchConfig(**base)
        except (TypeError, ValueError):
            config = SearchConfig(budget=budget, max_budget=self.max_budget)
        generator, scorer = self.models((info.provenance or {}).get("generator_dir"),
                                        (info.provenance or {}).get("prm_dir"))
        return SearchContext(tree, generator, scorer, self._domain(tree.problem), self.catalog, config)

    def _add_step(self, tree: ReasoningTree, sid: int, parent: str, text: str, factor: str | None, origin: str,
                  meta: dict | None = None) -> str:
        """Add a user-written step under `parent`: the domain books it, the session's PRM scores it."""
        ctx = self._context(tree, self.session_info(sid), 1)
        step = ctx.domain.observe(tree.state(parent), Step(text, factor))
        iteration = 1 + max(a["iteration"] for _, a in tree.graph.nodes(data=True))
        nid = tree.add_child(parent, step, origin=origin, meta=meta, iteration=iteration)
        ctx.score([nid])
        return nid


def _id_list(value: Any) -> list[Any]:
    """Session ids from a list or from text such as `3, 5 8`."""
    if isinstance(value, str):
        return [x for x in value.replace(",", " ").split() if x]
    v.need(isinstance(value, list | tuple), "session ids must be a list")
    return list(value)


MAX_EXTRA_MODELS = 2
KEEP_EXPORTS = 8


def _action_id() -> str:
    return uuid.uuid4().hex


def _r(x: float | None, digits: int = 3) -> float | None:
    return None if x is None else round(float(x), digits)


def _provenance(model: Any) -> dict:
    getter = getattr(model, "provenance", None)
    try:
        return dict(getter()) if callable(getter) else {"name": getattr(model, "name", type(model).__name__)}
    except Exception:  # noqa: BLE001 - provenance is informative; never fail a search over it
        return {"name": getattr(model, "name", type(model).__name__)}


def _result_line(sid: int, tree: ReasoningTree, result) -> str:
    if result is None:
        return f"session {sid}: {len(tree)} nodes"
    answer = "no answer" if result.answer is None else f"answer {result.answer} (value {result.value:.3f})"
    how = "stopped" if result.stopped else "finished"
    return (f"session {sid}: {how} · {len(tree)} nodes · {result.nodes_created} created · {answer} · "
            f"{result.seconds:.1f} s")
