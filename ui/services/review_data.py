"""The review queue's inputs read from the store: trees, human ratings, rollout labels and the active PRM's scores.

The scores shown are the active PRM's (`ModelRegistry.use_prm`): a session searched with another PRM is re-scored
with the active one (one batched `score` call over its leaf paths, cached per session, size and PRM), so switching
PRM in the UI changes the queue's order without a restart. Pure ordering lives in `ui/services/review.py`.
"""
from __future__ import annotations

import logging
import threading
from collections import defaultdict

from reasoning.protocols import Scorer
from reasoning.tree import ROOT, ReasoningTree
from storage.store import Store

from .models import ModelRegistry
from .review import ReviewSource

log = logging.getLogger(__name__)
MAX_SESSIONS = 200  # the newest sessions the queue reads (a shared server's page must stay responsive)
MAX_CACHE = 400


def problem_set(info_provenance: dict | None, tree: ReasoningTree) -> str:
    """The problem set a session belongs to: the imported file's name, else the problem's domain."""
    imported = (info_provenance or {}).get("import")
    if isinstance(imported, dict) and imported.get("file"):
        return f"{imported.get('format', 'import')}: {imported['file']}"
    return tree.problem.domain or "math"


def leaf_paths(tree: ReasoningTree) -> list[list[str]]:
    """Every live root-to-leaf path (without the root); together they cover every live step."""
    paths = []
    for nid in tree.nodes(include_pruned=False):
        if nid != ROOT and tree.is_live(nid) and not tree.children(nid):
            paths.append(tree.path(nid)[1:])
    return paths


def rescore(tree: ReasoningTree, scorer: Scorer) -> dict[str, float | None]:
    """Every live step's score under `scorer`, from one batched call over the leaf paths."""
    paths = leaf_paths(tree)
    if not paths:
        return {}
    texts = [[tree.node(n)["text"] or "" for n in path] for path in paths]
    out: dict[str, float | None] = {}
    for path, scores in zip(paths, scorer.score(tree.problem, texts), strict=True):
        out.update({n: float(s) for n, s in zip(path, scores, strict=True)})
    return out


class ReviewData:
    """Reads the sources of the queue for the review page and the API."""

    def __init__(self, store: Store, registry: ModelRegistry):
        self.store = store
        self.registry = registry
        self._cache: dict[tuple[int, int, str], dict[str, float | None]] = {}
        self._lock = threading.Lock()

    def sources(self, session_id: int | None = None, among: list[int] | None = None) -> list[ReviewSource]:
        """One session's sources, or the newest MAX_SESSIONS sessions'; `among` reads only those sessions (an
        annotator's assigned ones, however old), and with `session_id` that session only if it is among them."""
        if among is not None:
            ids = [s for s in among if session_id in (None, s)]
            infos = [self.store.session(s) for s in ids[:MAX_SESSIONS]]
        else:
            infos = [self.store.session(session_id)] if session_id else self.store.list_sessions()[:MAX_SESSIONS]
        out = []
        for info in infos:
            tree = self.store.load_tree(info.id)
            ratings: dict[str, dict[str, int]] = defaultdict(dict)
            decided: dict[str, tuple[str, int]] = {}
            for a in self.store.annotations(info.id):
                ratings[a.node_id][a.annotator] = a.rating
                if a.adjudicated:
                    decided[a.node_id] = (a.annotator, a.rating)
            rollouts = {a.node_id: (a.successes, a.rollouts) for a in self.store.auto_labels(info.id)
                        if a.method == "rollout" and a.rollouts}
            out.append(ReviewSource(info.id, problem_set(info.provenance, tree), tree, dict(ratings), rollouts,
                                    self._scores(info.id, info.provenance, tree), decided))
        return out

    def _scores(self, session_id: int, prov: dict | None, tree: ReasoningTree) -> dict[str, float | None] | None:
        """None (the stored scores) when the active PRM scored the session; else the active PRM's scores."""
        active = self.registry.active_prm_dir
        if (prov or {}).get("prm_dir", self.registry.prm_dir) == active and "import" not in (prov or {}):
            return None
        key = (session_id, len(tree), active)
        with self._lock:
            if key not in self._cache:
                if len(self._cache) >= MAX_CACHE:
                    self._cache.pop(next(iter(self._cache)))
                self._cache[key] = rescore(tree, self.registry.active_scorer())
            return self._cache[key]
