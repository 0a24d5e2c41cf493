"""The explorer's actions as plain functions over ids: no Gradio here, so scripts and tests call them directly.

`Explorer` is a thin facade over the services in `ui/services/` (one module per job: the model registry, sessions,
live runs, human ratings and edits, automatic labels, views, import/export). Each action validates its arguments
(`ui.validate`), opens at most one storage unit of work, and returns plain values. ARCHITECTURE.md, "The explorer",
draws the picture.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reasoning.factors import Catalog, load_catalog
from reasoning.problems import ProblemFormatError, parse_problem_text
from reasoning.protocols import Generator, Scorer
from reasoning.search.config import DEFAULT_MAX_BUDGET, SearchConfig
from reasoning.types import Problem

from . import validate as v
from .roles import Access
from .services import views
from .services.autolabel import AutoLabelJobs
from .services.experiments import RunJobs
from .services.models import ModelLoader, ModelRegistry, load_with_backends
from .services.ratings import MAX_EXPAND, Ratings
from .services.review_data import ReviewData
from .services.runs import LiveRuns, RunUpdate
from .services.sessions import Sessions
from .services.transfer import Transfer
from .services.views import SESSION_HEADERS, SIBLING_HEADERS, TRACE_HEADERS

log = logging.getLogger(__name__)

__all__ = ["MAX_EXPAND", "SESSION_HEADERS", "SIBLING_HEADERS", "TRACE_HEADERS", "Explorer", "NodeView", "RunUpdate"]


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


PICKER_PROBLEMS = 2000  # the problem picker offers the first stored problems; any other can be typed or pasted


@dataclass
class Explorer:
    """Models, storage and live searches, shared by every browser session of the running app."""

    generator: Generator
    scorer: Scorer
    store: Any  # storage.Store
    catalog: Catalog = field(default_factory=load_catalog)
    generator_dir: str = ""
    prm_dir: str = ""
    max_budget: int = DEFAULT_MAX_BUDGET
    model_roots: tuple[str, ...] = ()
    loader: ModelLoader = load_with_backends
    access: Access = field(default_factory=Access)  # who may do what (ui/roles.py); no login: everyone an admin

    def __post_init__(self) -> None:
        self.registry = ModelRegistry(self.generator, self.scorer, self.catalog, self.generator_dir, self.prm_dir,
                                      loader=self.loader, model_roots=self.model_roots)
        self.sessions_ = Sessions(self.store)
        self.runs = LiveRuns(self.sessions_, self.registry, self.max_budget)
        self.ratings = Ratings(self.sessions_, self.registry, self.catalog, self.max_budget)
        self.transfer = Transfer(self.store)
        self.review = ReviewData(self.store, self.registry)  # the review queue's inputs (ui/pages/review.py)
        self.autojobs = AutoLabelJobs(self.store, self.registry)  # rollouts and first-error search from the web
        self.experiments = RunJobs(self.store, self.registry, self.catalog, self.max_budget)  # the Runs page

    # -- models and settings -------------------------------------------------------------------------
    def models(self, generator_dir: str | None, prm_dir: str | None) -> tuple[Generator, Scorer]:
        return self.registry.pair(generator_dir, prm_dir)

    def use_prm(self, prm_dir: Any) -> str:
        """Switch the active PRM (new searches, the review queue, automatic labels) without a restart."""
        v.need(prm_dir is None or isinstance(prm_dir, str), "PRM directory must be text")
        return self.registry.use_prm(prm_dir)

    def control_defaults(self, algorithm: str, generator_dir: str | None = None) -> dict[str, Any]:
        """The search settings the controls start from for `algorithm`: the model's recommended ones."""
        return self.registry.control_defaults(algorithm, generator_dir)

    def config(self, values: Mapping[str, Any], *, generator_dir: str | None = None) -> SearchConfig:
        """A validated SearchConfig from loosely typed UI or API values; a setting left out (or None) takes the
        model's recommended value, then the declaration's default."""
        v.need(isinstance(values, Mapping), "search settings must be an object of setting names and values")
        algorithm = values.get("algorithm") or "mcts"
        try:
            defaults = self.registry.recommended(str(algorithm), generator_dir)
            return SearchConfig.from_values(values, defaults=defaults, max_budget=self.max_budget)
        except ValueError as exc:
            raise v.UserError(str(exc)) from None

    # -- problems and catalog ------------------------------------------------------------------------
    def problem(self, text: str) -> Problem:
        text = v.text(text, "problem", limit=v.MAX_PROBLEM)
        for p in self.store.problems(text=text.strip(), limit=20):  # a stored one brings its gold answer
            if _complete(p):
                return p
        try:
            return parse_problem_text(text)
        except ProblemFormatError as exc:
            raise v.UserError(str(exc)) from None

    def problem_choices(self) -> list[str]:
        """Problem texts stored in the database (imported sets)."""
        texts: list[str] = []
        try:
            texts = [p.text for p in self.store.problems(limit=PICKER_PROBLEMS)]
        except Exception:  # noqa: BLE001 - the picker is a convenience; an empty one is fine
            log.exception("cannot list stored problems")
        return list(dict.fromkeys(texts))[:PICKER_PROBLEMS]

    def catalog_rows(self, catalog: Catalog | None = None) -> list[list[Any]]:
        """The thought-factor table; with no catalog given, the factors the model recommends are the enabled ones."""
        if catalog is None:
            catalog = self.catalog
            recommended = self.control_defaults("mcts").get("factors")
            if recommended:
                catalog = catalog.with_enabled(set(recommended) & set(catalog.names))
        return [[f.name, f.enabled, f.cue, f.description] for f in catalog]

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

    # -- searching -----------------------------------------------------------------------------------
    def run_search(self, problem_text: str, config: SearchConfig, catalog: Catalog | None = None, *,
                   annotator: str = "anonymous", generator_dir: str | None = None, prm_dir: str | None = None,
                   name: str | None = None) -> Iterator[RunUpdate]:
        return self.runs.start(self.problem(problem_text), config, catalog or self.catalog, annotator=annotator,
                               generator_dir=generator_dir, prm_dir=prm_dir, name=name)

    def resume(self, session_id: Any, node_id: Any, budget: Any, *, generator_dir: str | None = None,
               prm_dir: str | None = None) -> Iterator[RunUpdate]:
        catalog = self._session_catalog(self.sessions_.info(session_id))
        return self.runs.resume(session_id, node_id, budget, catalog, generator_dir=generator_dir, prm_dir=prm_dir)

    def stop(self, session_id: Any) -> bool:
        return self.runs.stop(session_id)

    def running(self, session_id: Any) -> bool:
        return self.sessions_.running(session_id)

    # -- reading -------------------------------------------------------------------------------------
    def tree(self, session_id: Any):
        return self.sessions_.tree(session_id)

    def session_info(self, session_id: Any):
        return self.sessions_.info(session_id)

    def label_summary(self, sid: int) -> dict[str, str]:
        return views.label_summary(self.store.annotations(sid))

    def inspect(self, session_id: Any, node_id: Any) -> NodeView:
        t = self.sessions_.target(session_id, node_id, editable=False)
        autos = views.auto_marks(self.store.auto_labels(t.sid))
        rows = views.trace_rows(t.tree, t.nid, self.label_summary(t.sid), autos)
        a = t.tree.node(t.nid)
        return NodeView(t.sid, t.nid, a["text"], rows, views.node_info(t.tree, t.nid), a.get("version"),
                        a["factor"], len(t.tree.children(t.nid, include_pruned=True)))

    def siblings(self, session_id: Any, node_id: Any) -> list[list[Any]]:
        """The live children of a node (the children table)."""
        t = self.sessions_.target(session_id, node_id, editable=False)
        return views.children_rows(t.tree, t.nid)

    # -- human ratings and edits ---------------------------------------------------------------------
    def rate(self, session_id: Any, node_id: Any, rating: Any, **kwargs: Any):
        return self.ratings.rate(session_id, node_id, rating, **kwargs)

    def rate_children(self, session_id: Any, node_id: Any, rows: Any, *, annotator: Any = None) -> int:
        return self.ratings.rate_children(session_id, node_id, rows, annotator=annotator)

    def edit(self, session_id: Any, node_id: Any, text: Any, *, annotator: Any = None) -> str:
        return self.ratings.edit(session_id, node_id, text, annotator=annotator)

    def add_human_step(self, session_id: Any, node_id: Any, text: Any, factor: Any = None, *,
                       annotator: Any = None) -> str:
        return self.ratings.add_human_step(session_id, node_id, text, factor, annotator=annotator)

    def human_step_choices(self, session_id: Any, node_id: Any) -> tuple[list[str], str]:
        return self.ratings.human_step_choices(session_id, node_id)

    def expand(self, session_id: Any, node_id: Any, factor: Any, n: Any = 3, *, annotator: Any = None) -> list[str]:
        return self.ratings.expand(session_id, node_id, factor, n, annotator=annotator)

    def prune(self, session_id: Any, node_id: Any, **kwargs: Any):
        return self.ratings.prune(session_id, node_id, **kwargs)

    def undo(self, session_id: Any, *, annotator: Any = None):
        return self.ratings.undo(session_id, annotator=annotator)

    def summarize(self, session_id: Any, node_id: Any) -> str:
        return self.ratings.summarize(session_id, node_id)

    # -- sessions ------------------------------------------------------------------------------------
    def sessions(self, query: Any = "", include_deleted: Any = False) -> list[list[Any]]:
        return self.sessions_.rows(query, include_deleted)

    def rename(self, session_id: Any, name: Any, *, annotator: Any = None):
        return self.sessions_.rename(session_id, name, annotator=annotator)

    def delete(self, session_id: Any, *, annotator: Any = None):
        return self.sessions_.delete(session_id, annotator=annotator)

    def restore(self, session_id: Any, *, annotator: Any = None):
        return self.sessions_.restore(session_id, annotator=annotator)

    # -- export and import ---------------------------------------------------------------------------
    def export(self, fmt: Any, **kwargs: Any) -> tuple[Path, dict, list[dict]]:
        return self.transfer.export(fmt, **kwargs)

    def validate_import(self, path: Any, fmt: Any) -> dict:
        return self.transfer.validate_import(path, fmt)

    def import_file(self, path: Any, fmt: Any) -> dict:
        return self.transfer.import_file(path, fmt)

    # -- helpers -------------------------------------------------------------------------------------
    def _session_catalog(self, info: Any) -> Catalog:
        raw = getattr(info, "catalog", None)
        if isinstance(raw, dict):
            try:
                return Catalog.from_dict(raw)
            except ValueError:
                log.warning("session %s has an unreadable catalog; using the default", info.id)
        return self.catalog



def _complete(problem: Problem) -> bool:
    """Whether a stored problem carries what its domain needs (a Countdown problem stored from a tree built in
    code may lack its numbers: then the text is parsed instead)."""
    return problem.domain != "countdown" or "numbers" in (problem.meta or {})
