"""Sessions: finding a session's tree (live or stored), the checks every change needs, and session CRUD.

`Sessions.target` is the one preamble of every labeling command: it resolves and checks the session and node.
"""
from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from reasoning.tree import ReasoningTree

from .. import validate as v
from .views import session_rows

# A session's search state, kept in its meta JSON ("search"). A session stored as running that runs in no search of
# this server (the server stopped while it ran) reads as interrupted: it can be resumed from any node.
RUNNING, FINISHED, STOPPED, INTERRUPTED = "running", "finished", "stopped", "interrupted"


def new_action_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Target:
    """A checked (session, tree, node) that a command acts on."""

    sid: int
    tree: ReasoningTree
    nid: str


@dataclass
class Sessions:
    store: Any  # storage.Store (ui may not import storage's engine at module level; see ARCHITECTURE.md)
    live: dict[int, ReasoningTree] = field(default_factory=dict)  # searches running now, by session
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Stored trees read by the page, loaded once and kept until a change made through the services drops them
    # (`changed`/`changing`): a click used to load a 2,000-node tree three times. Commands that change a tree load
    # their own fresh copy (`target(editable=True)`), so a failed change never leaves a half-changed cached tree.
    # Each kept with the store's stamp of it (`Store.tree_stamp`), compared at every read, so a change written by
    # another process is seen on the next read.
    cache: OrderedDict[int, tuple[ReasoningTree, Any]] = field(default_factory=OrderedDict)
    cache_size: int = 8

    def info(self, session_id: Any):
        sid = v.session_id(session_id)
        try:
            return self.store.session(sid)
        except LookupError:
            raise v.UserError(f"session {sid} not found") from None

    def tree(self, session_id: Any, *, fresh: bool = False) -> ReasoningTree:
        """The session's tree: the live one while a search runs, else the cached stored one (read only), or with
        `fresh` a newly loaded copy the caller may change."""
        sid = v.session_id(session_id)
        live = self.live.get(sid)
        if live is not None:
            return live
        stamp = None if fresh else self.store.tree_stamp(sid)  # before the load: a change after it reloads again
        if stamp is not None:
            with self.lock:
                cached = self.cache.get(sid)
                if cached is not None and cached[1] == stamp:  # not changed since it was kept, by this process or
                    self.cache.move_to_end(sid)  # another (a second server on the database, a CLI command)
                    return cached[0]
        try:
            tree = self.store.load_tree(sid)
        except LookupError:
            raise v.UserError(f"session {sid} not found") from None
        if stamp is not None:
            self._keep(sid, tree, stamp)
        return tree

    def _keep(self, sid: int, tree: ReasoningTree, stamp: Any) -> None:
        with self.lock:
            if sid in self.live:  # a search started meanwhile: its live tree is the one to read
                return
            self.cache[sid] = (tree, stamp)
            while len(self.cache) > self.cache_size:
                self.cache.popitem(last=False)

    def changed(self, sid: int) -> None:
        """Forget the cached tree of a session whose stored tree changed (or is about to)."""
        with self.lock:
            self.cache.pop(sid, None)

    @contextmanager
    def changing(self, sid: int) -> Iterator[None]:
        """Around a change of a stored tree: the cache is dropped before it and again after it (also when it fails),
        so a reader that cached the tree in between never keeps the old one."""
        self.changed(sid)
        try:
            yield
        finally:
            self.changed(sid)

    def running(self, session_id: Any) -> bool:
        return v.session_id(session_id) in self.live

    def search_state(self, info: Any) -> str:
        """What became of a session's search: running, finished, stopped, interrupted, or "" (none ran here)."""
        state = (getattr(info, "meta", None) or {}).get("search", "")
        return INTERRUPTED if state == RUNNING and info.id not in self.live else state

    def mark(self, sid: int, state: str) -> None:
        """Store a session's search state (RUNNING when a search starts, how it ended when it ends)."""
        self.store.update_session_meta(sid, search=state)

    def not_running(self, sid: int) -> None:
        v.need(sid not in self.live, f"a search is running on session {sid}: stop it or wait for it to finish")

    def editable(self, sid: int) -> None:
        """Changes to a tree need a session that exists, is not deleted and has no search running."""
        self.not_running(sid)
        v.need(not self.info(sid).deleted, f"session {sid} is deleted: restore it before changing it")

    def target(self, session_id: Any, node_id: Any, *, editable: bool = True) -> Target:
        """The session and node a command names, checked: the session exists (and, for a change, is editable) and
        the node is in its tree."""
        sid = v.session_id(session_id)
        if editable:
            self.editable(sid)
        tree = self.tree(sid, fresh=editable)
        nid = v.node_id(node_id)
        v.need(nid in tree, f"no node {nid} in this session's tree")
        return Target(sid, tree, nid)

    @contextmanager
    def found(self, sid: int, nid: str) -> Iterator[None]:
        """Storage's "no such session / node" (checked inside an action's transaction) in the words `target` uses."""
        try:
            yield
        except LookupError as exc:
            if "no session" in str(exc):
                raise v.UserError(f"session {sid} not found") from None
            raise v.UserError(f"no node {nid} in this session's tree") from None

    # -- CRUD ----------------------------------------------------------------------------------------
    def rows(self, query: Any = "", include_deleted: Any = False) -> list[list[Any]]:
        query = v.text(query or "", "filter", limit=200, allow_empty=True).strip().lower()
        found = self.store.list_sessions(query or None, include_deleted=v.flag(include_deleted, "include deleted"))
        return session_rows(found, self.search_state)

    def rename(self, session_id: Any, name: Any, *, annotator: Any = None):
        sid = v.session_id(session_id)
        self.info(sid)
        return self.store.rename_session(sid, v.text(name, "name", limit=v.MAX_NAME).strip(), v.annotator(annotator),
                                         action_id=new_action_id())

    def delete(self, session_id: Any, *, annotator: Any = None):
        sid = v.session_id(session_id)
        self.not_running(sid)
        self.info(sid)
        return self.store.delete_session(sid, v.annotator(annotator), action_id=new_action_id())

    def restore(self, session_id: Any, *, annotator: Any = None):
        sid = v.session_id(session_id)
        self.info(sid)
        return self.store.restore_session(sid, v.annotator(annotator), action_id=new_action_id())
