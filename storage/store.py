"""The Store: every user action is one committed transaction, idempotent by action id, checked by version."""
from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar, cast

from sqlalchemy import CursorResult, Table, delete, func, insert, or_, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from reasoning.limits import MAX_DB_INT, TextError, check_encodable
from reasoning.tree import NODE_DEFAULTS, ROOT, ReasoningTree
from reasoning.types import Problem

from .engine import default_url, make_engine, normalize_url, upgrade
from .models import ActionRow, AnnotationRow, AutoLabelRow, NodeRow, ProblemRow, SessionRow, utcnow
from .records import (
    RATINGS,
    Action,
    Annotation,
    AutoLabel,
    ConflictError,
    LabeledTree,
    NodeState,
    NotFoundError,
    SessionInfo,
    StaleTreeError,
    StorageError,
    TextRuleError,
)

T = TypeVar("T")
Logged = tuple[dict[str, Any], ActionRow | None]  # an action's result and its log row

NODE_FIELDS = tuple(k for k in NODE_DEFAULTS if k != "parent")
# What a running search may change on a node it already saved; text, origin and pruned belong to the user.
STATS_FIELDS = ("prior", "visits", "value_sum", "score", "value", "terminal", "answer", "tokens", "iteration",
                "factor_prior", "provenance", "meta")
ADD_KINDS = ("edit", "human_step", "expand")
ATTEMPTS = 5
CHUNK = 2000  # ids per IN (...) lookup and rows per executemany batch in bulk imports


class _Race(Exception):
    """A concurrent writer moved a row between our read and our write; the transaction is run again."""


def _new_action_id() -> str:
    return uuid.uuid4().hex


def _jsonable(obj: Any) -> Any:
    return obj.to_dict() if hasattr(obj, "to_dict") else obj


class Store:
    """Sessions, trees, annotations, auto labels and the action log in SQLite (default) or PostgreSQL."""

    def __init__(self, url: str | None = None, *, migrate: bool = True, create: bool = True):
        """`create=False` (commands that only read) refuses a SQLite file that does not exist instead of making an
        empty database (and its folder) where a mistyped `--db` points."""
        self.url = normalize_url(url or default_url())
        if not create:
            _must_exist(self.url)
        try:
            self.engine = make_engine(self.url)
            if migrate:
                upgrade(self.engine)
        except (SQLAlchemyError, OSError) as exc:  # the driver's words alone do not say which database
            where = make_url(self.url).render_as_string(hide_password=True)
            raise StorageError(f"cannot open the database {where}: {_one_line(exc)}") from None
        self._writer = sessionmaker(self.engine, expire_on_commit=False)
        self._reader = sessionmaker(self.engine.execution_options(readonly=True), expire_on_commit=False)
        # SQLite has one writer at a time: queue this process's writers here instead of in SQLite's busy sleeps.
        self._write_lock = threading.Lock() if self.engine.dialect.name == "sqlite" else nullcontext()

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transactions --------------------------------------------------------------------------
    @contextmanager
    def write(self) -> Iterator[Session]:
        """One write transaction, committed when the block ends without an error."""
        with self._write_lock, self._writer.begin() as s:
            yield s

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._reader.begin() as s:
            yield s

    def _transact(self, work: Callable[[Session], T]) -> T:
        """Run `work` in one write transaction, again when it lost a race (unique key, lock, moved version)."""
        for attempt in range(ATTEMPTS):
            try:
                with self.write() as s:
                    return work(s)
            except (_Race, IntegrityError, OperationalError) as exc:
                if attempt == ATTEMPTS - 1 or not _retryable(exc):
                    raise StorageError(f"database write failed: {_one_line(exc)}") from exc
                time.sleep(0.005 * (attempt + 1))
        raise AssertionError("unreachable")

    def _action(self, action_id: str | None, work: Callable[[Session], Logged],
                scope: tuple[int | None, str | None, str, str]) -> dict[str, Any]:
        """A logged user action: a retry with the same `action_id` returns the first result and changes nothing.

        `scope` is (session id, node id or None for any, annotator, kind): an id already used for a different
        action is a ConflictError, never a silent success that stored nothing."""
        aid = action_id or _new_action_id()

        def run(s: Session) -> dict[str, Any]:
            done = s.scalar(select(ActionRow).where(ActionRow.action_id == aid))
            if done is not None:
                _same_action(done, scope)
                if done.result is None:
                    raise ConflictError(f"action {aid} was logged without its result; it cannot be retried")
                return done.result
            result, entry = work(s)
            if entry is not None:
                entry.action_id, entry.result = aid, result
                s.add(entry)
            return result

        return self._transact(run)

    # -- problems and sessions -----------------------------------------------------------------
    def save_problem(self, problem: Problem) -> None:
        self._transact(lambda s: _put_problem(s, problem))

    def problems(self, *, text: str | None = None, limit: int | None = None) -> list[Problem]:
        """Stored problems in the order they came, all of them or (`text`) those with exactly this text, at most
        `limit`: the lookup is the database's, so 200,000 stored problems cost a search or a page open no scan here."""
        stmt = select(ProblemRow).order_by(ProblemRow.created, ProblemRow.id)
        if text is not None:
            stmt = stmt.where(ProblemRow.text == text)
        with self.read() as s:
            return [_problem(r) for r in s.scalars(stmt.limit(limit))]

    def create_session(self, tree: ReasoningTree, *, name: str = "", config: Any = None,
                       provenance: dict[str, Any] | None = None, catalog: Any = None,
                       meta: dict[str, Any] | None = None) -> int:
        """Store a new session with its problem and every node of `tree`; returns the session id."""

        def work(s: Session) -> int:
            return _insert_session(s, tree, name=name, config=_jsonable(config), provenance=provenance,
                                   catalog=_jsonable(catalog), meta=meta)

        return self._transact(work)

    def create_sessions(self, sessions: list[dict[str, Any]], *, then: Callable[[], None] | None = None) -> list[int]:
        """Store many sessions (each the keyword arguments of `create_session`) in ONE transaction; `then` runs
        inside it after the inserts, so a failure there (writing the run's results file, say) stores none of them."""

        def work(s: Session) -> list[int]:
            ids = [_insert_session(s, kw["tree"], name=kw.get("name", ""), config=_jsonable(kw.get("config")),
                                   provenance=kw.get("provenance"), catalog=_jsonable(kw.get("catalog")),
                                   meta=kw.get("meta")) for kw in sessions]
            if then is not None:
                then()
            return ids

        return self._transact(work)

    def session(self, session_id: int) -> SessionInfo:
        with self.read() as s:
            return _session_info(s, _session_row(s, session_id))

    def list_sessions(self, query: str | None = None, include_deleted: bool = False) -> list[SessionInfo]:
        """Sessions, newest first; `query` matches the name or the problem text, case-insensitively."""
        stmt = select(SessionRow).join(SessionRow.problem).order_by(SessionRow.id.desc())
        if not include_deleted:
            stmt = stmt.where(SessionRow.deleted.is_(False))
        if query:
            pattern = f"%{_like_literal(query.lower())}%"
            stmt = stmt.where(or_(func.lower(SessionRow.name).like(pattern, escape="\\"),
                                  func.lower(ProblemRow.text).like(pattern, escape="\\")))
        with self.read() as s:
            return [_session_info(s, row) for row in s.scalars(stmt)]

    def rename_session(self, session_id: int, name: str, annotator: str, *, action_id: str | None = None,
                       expected_version: int | None = None) -> SessionInfo:
        _clean(name, "session name")
        return self._session_change(session_id, annotator, "rename", {"name": name}, action_id, expected_version)

    def delete_session(self, session_id: int, annotator: str, *, action_id: str | None = None,
                       expected_version: int | None = None) -> SessionInfo:
        """Soft delete: the session is hidden from lists and exports until restored."""
        return self._session_change(session_id, annotator, "delete", {"deleted": True}, action_id, expected_version)

    def restore_session(self, session_id: int, annotator: str, *, action_id: str | None = None,
                        expected_version: int | None = None) -> SessionInfo:
        return self._session_change(session_id, annotator, "restore", {"deleted": False}, action_id, expected_version)

    def _session_change(self, session_id: int, annotator: str, kind: str, values: dict[str, Any],
                        action_id: str | None, expected_version: int | None) -> SessionInfo:
        def work(s: Session) -> Logged:
            row = _session_row(s, session_id)
            before = {k: getattr(row, k) for k in values}
            _bump(s, SessionRow, [SessionRow.id == session_id], expected_version, values)
            return {"session_id": session_id}, _entry(session_id, None, annotator, kind,
                                                      {"before": before, "after": values})

        self._action(action_id, work, (session_id, None, annotator, kind))
        return self.session(session_id)

    def update_session_meta(self, session_id: int, **values: Any) -> None:
        """Merge `values` into a session's meta JSON (not a user action: no log entry, no version bump)."""

        def work(s: Session) -> None:
            row = _session_row(s, session_id)
            row.meta = {**(row.meta or {}), **values}

        self._transact(work)

    # -- trees ---------------------------------------------------------------------------------
    def save_tree(self, session_id: int, tree: ReasoningTree) -> int:
        """Upsert every node of `tree` (new nodes whole, known nodes' search statistics only); returns nodes added."""
        snap = tree.snapshot()
        return self._transact(lambda s: _upsert_nodes(s, session_id, snap))

    def load_tree(self, session_id: int) -> ReasoningTree:
        with self.read() as s:
            row = _session_row(s, session_id)
            nodes = s.scalars(select(NodeRow).where(NodeRow.session_id == session_id)).all()
            return _tree(row.problem, nodes)

    def tree_stamp(self, session_id: int) -> tuple[int, int, int, float]:
        """A stamp of a session's stored tree that any change by any process moves: nodes added or removed (count),
        pruned or restored (versions), searched further (visits, value sums). One aggregate over the session's
        index range, no node loaded: a reader compares it before it uses a tree it kept (ui/services/sessions.py)."""
        with self.read() as s:
            n, versions, visits, values = s.execute(
                select(func.count(), func.coalesce(func.sum(NodeRow.version), 0),
                       func.coalesce(func.sum(NodeRow.visits), 0), func.coalesce(func.sum(NodeRow.value_sum), 0.0))
                .where(NodeRow.session_id == _sid(session_id))).one()
        return int(n), int(versions), int(visits), round(float(values), 6)

    def add_nodes(self, session_id: int, tree: ReasoningTree, node_ids: list[str], *, kind: str, annotator: str,
                  action_id: str | None = None) -> list[str]:
        """Store nodes a user made (edited sibling, human step, expansion), already scored by the caller."""
        if kind not in ADD_KINDS:
            raise ValueError(f"kind must be one of {ADD_KINDS}, not {kind!r}")
        snap = tree.snapshot()
        missing = [n for n in node_ids if n not in snap]
        if missing:
            raise NotFoundError(f"nodes {missing} are not in the tree given")

        acted_on = _acted_on(snap, node_ids, kind)

        def work(s: Session) -> Logged:
            _session_row(s, session_id)
            taken = s.execute(select(NodeRow.node_id).where(NodeRow.session_id == session_id,
                                                            NodeRow.node_id.in_(node_ids))).scalars().first()
            if taken is not None:  # a unique-key race lost to another writer lands here too, on _transact's retry
                raise StaleTreeError(f"session {session_id} changed under this writer: node {taken} was stored by "
                                     "another one; reload the tree and try again")
            _insert_nodes(s, session_id, snap, sorted(node_ids, key=lambda n: snap.node(n)["created"]))
            _sync_next_child(s, session_id, snap, {snap.node(n)["parent"] for n in node_ids})
            return {"nodes": list(node_ids)}, _entry(session_id, acted_on, annotator, kind, {"nodes": list(node_ids)})

        return self._action(action_id, work, (session_id, acted_on, annotator, kind))["nodes"]

    def prune(self, session_id: int, node_id: str, annotator: str, *, pruned: bool = True,
              action_id: str | None = None, expected_version: int | None = None, live_session: bool = False,
              if_unpruned: bool = False) -> NodeState:
        """Prune (or, with pruned=False, unprune) a node; ConflictError when `expected_version` is stale.
        `live_session` refuses a deleted session and `if_unpruned` a node already pruned, in the same transaction."""
        if node_id == ROOT:
            raise ValueError("the root cannot be pruned")

        def work(s: Session) -> Logged:
            if live_session:
                _live_session(s, session_id)
            row = _node_row(s, session_id, node_id)
            if if_unpruned and pruned and row.pruned:
                raise StorageError(f"node {node_id} is already pruned")
            before = row.pruned
            key = _node_key(session_id, node_id)
            version = _bump(s, NodeRow, key, expected_version, {"pruned": pruned}, row.version)
            kind = "prune" if pruned else "unprune"
            entry = _entry(session_id, node_id, annotator, kind, {"before": before, "after": pruned})
            return asdict(NodeState(session_id, node_id, pruned, version)), entry

        scope = (session_id, node_id, annotator, "prune" if pruned else "unprune")
        return NodeState(**self._action(action_id, work, scope))

    def node_version(self, session_id: int, node_id: str) -> int:
        with self.read() as s:
            return _node_row(s, session_id, node_id).version

    # -- annotations ---------------------------------------------------------------------------
    def rate(self, session_id: int, node_id: str, annotator: str, rating: int, *, unsure: bool = False,
             note: str = "", seconds: float | None = None, action_id: str | None = None,
             expected_version: int | None = None, live_session: bool = False,
             adjudicated: bool = False) -> Annotation:
        """Set `annotator`'s rating of a node. `expected_version` is the version of that annotator's rating the
        caller saw (0: none yet); a stale one raises ConflictError. `live_session` also refuses a deleted session,
        inside the same transaction: the web's rate touches the session row, the node, the annotation and the log,
        never the whole tree. `adjudicated` stores the rating as an adjudicator's decision, which settles the node's
        label in every export whatever the other annotators said."""
        _check_rating(rating)
        if not annotator or not annotator.strip():
            raise ValueError("an annotator name is needed")
        _clean(annotator, "annotator name")
        values = {"rating": int(rating), "unsure": bool(unsure), "note": _clean(note or "", "note"),
                  "seconds": seconds, "adjudicated": bool(adjudicated)}

        def work(s: Session) -> Logged:
            if live_session:
                _live_session(s, session_id)
            _node_row(s, session_id, node_id)
            before, row = _put_annotation(s, session_id, node_id, annotator, values, expected_version)
            assert row is not None  # values were given, so the annotation is stored
            entry = _entry(session_id, node_id, annotator, "rate", {"before": before, "after": values})
            return _annotation(row).to_json(), entry

        return Annotation.from_json(self._action(action_id, work, (session_id, node_id, annotator, "rate")))

    def rate_many(self, session_id: int, ratings: dict[str, int], annotator: str, *,
                  action_id: str | None = None) -> list[Annotation]:
        """Rate several nodes (the siblings view) in one transaction and one undoable action."""
        for rating in ratings.values():
            _check_rating(rating)
        if not annotator or not annotator.strip():
            raise ValueError("an annotator name is needed")

        def work(s: Session) -> Logged:
            changes, out = [], []
            for nid, rating in ratings.items():
                _node_row(s, session_id, nid)
                values = {"rating": int(rating), "unsure": False, "note": "", "seconds": None, "adjudicated": False}
                before, row = _put_annotation(s, session_id, nid, annotator, values, None)
                assert row is not None  # values were given, so the annotation is stored
                changes.append({"node_id": nid, "before": before})
                out.append(_annotation(row).to_json())
            first = next(iter(ratings), None)
            return {"annotations": out}, _entry(session_id, first, annotator, "rate_many", {"changes": changes})

        done = self._action(action_id, work, (session_id, None, annotator, "rate_many"))
        return [Annotation.from_json(a) for a in done["annotations"]]

    def annotations(self, session_id: int, node_id: str | None = None) -> list[Annotation]:
        _sid(session_id)
        stmt = select(AnnotationRow).where(AnnotationRow.session_id == session_id)
        if node_id is not None:
            stmt = stmt.where(AnnotationRow.node_id == node_id)
        with self.read() as s:
            return [_annotation(r) for r in s.scalars(stmt.order_by(AnnotationRow.id))]

    def set_auto_labels(self, session_id: int, labels: Iterable[AutoLabel]) -> int:
        """Upsert auto labels (one per node and method); returns how many were written."""
        labels = list(labels)

        def work(s: Session) -> int:
            _session_row(s, session_id)
            for label in labels:
                _put_auto_label(s, session_id, label)
            return len(labels)

        return self._transact(work)

    def auto_labels(self, session_id: int) -> list[AutoLabel]:
        _sid(session_id)
        with self.read() as s:
            stmt = select(AutoLabelRow).where(AutoLabelRow.session_id == session_id)
            rows = s.scalars(stmt.order_by(AutoLabelRow.id))
            return [_auto_label(r) for r in rows]

    # -- the action log ------------------------------------------------------------------------
    def actions(self, session_id: int, annotator: str | None = None) -> list[Action]:
        _sid(session_id)
        stmt = select(ActionRow).where(ActionRow.session_id == session_id)
        if annotator is not None:
            stmt = stmt.where(ActionRow.annotator == annotator)
        with self.read() as s:
            return [_action_value(r) for r in s.scalars(stmt.order_by(ActionRow.id))]

    def undo(self, session_id: int, annotator: str, *, action_id: str | None = None) -> Action | None:
        """Revert `annotator`'s latest action in the session that is not undone yet; None when there is none."""

        def work(s: Session) -> Logged:
            target = s.scalar(
                select(ActionRow)
                .where(ActionRow.session_id == session_id, ActionRow.annotator == annotator,
                       ActionRow.undone.is_(False), ActionRow.kind.in_(tuple(UNDO)))
                .order_by(ActionRow.id.desc()).limit(1)
            )
            if target is None:
                return {"undid": None}, None
            outcome = UNDO[target.kind](s, target) or {}
            s.execute(update(ActionRow).where(ActionRow.id == target.id).values(undone=True))
            undid = target.action_id
            done = {"undid": undid, "outcome": outcome}
            return done, _entry(session_id, target.node_id, annotator, "undo", done)

        done = self._action(action_id, work, (session_id, None, annotator, "undo"))
        if done["undid"] is None:
            return None
        with self.read() as s:
            action = _action_value(s.scalars(select(ActionRow).where(ActionRow.action_id == done["undid"])).one())
        # what the undo did beyond reverting (an expansion's `removed` nodes, or those only `hidden`), for messages
        return replace(action, payload={**action.payload, **(done.get("outcome") or {})})

    # -- bulk reads and writes for export and import -------------------------------------------
    def labeled_trees(self, session_ids: Iterable[int] | None = None,
                      include_deleted: bool = False) -> list[LabeledTree]:
        """Trees with their annotations and auto labels, the input of every export."""
        ids = [_sid(i) for i in session_ids] if session_ids is not None else None
        stmt = select(SessionRow).order_by(SessionRow.id)
        if ids is not None:
            stmt = stmt.where(SessionRow.id.in_(ids))
        if not include_deleted and ids is None:
            stmt = stmt.where(SessionRow.deleted.is_(False))
        with self.read() as s:
            rows = s.scalars(stmt).all()
            found = {r.id for r in rows}
            if ids is not None and (lost := [i for i in ids if i not in found]):
                raise NotFoundError(f"no session {lost[0]}")
            return [_labeled_tree(s, row) for row in rows]

    def import_trees(self, problems: list[Problem], trees: list[LabeledTree], *, annotator: str,
                     source: dict[str, Any]) -> list[int]:
        """Store imported problems and labeled trees in ONE transaction: all of them or, on any error, none."""
        return self.import_counted(problems, trees, annotator=annotator, source=source)["sessions"]

    def import_counted(self, problems: list[Problem], trees: list[LabeledTree], *, annotator: str,
                       source: dict[str, Any]) -> dict[str, Any]:
        """`import_trees`, returning the new session ids, how many problems were new and how many were stored
        already, and how many traces were skipped because a session holds them already: a tree whose meta
        `fingerprints` (storage.importers.fingerprint) are all stored adds nothing, so a re-import adds nothing."""

        def work(s: Session) -> dict[str, Any]:
            # in bulk: a few statements per thousand problems, not several per problem
            new, present = _put_problems(s, problems)
            fresh, skipped = _unseen_trees(s, trees)
            ids = [_insert_labeled(s, lt, annotator, source) for lt in fresh]
            result = {"sessions": ids, "new_problems": new, "known_problems": present, "skipped_traces": skipped}
            s.add(ActionRow(action_id=_new_action_id(), session_id=None, annotator=annotator, kind="import",
                            payload={"source": source, "sessions": ids, "problems": [p.id for p in problems]},
                            result=result))
            return result

        return self._transact(work)

    def imported_traces(self, problem_ids: Iterable[str]) -> dict[str, tuple[int, bool]]:
        """The fingerprints of the traces imported for these problems: fingerprint -> (session id, deleted)."""
        with self.read() as s:
            return _imported_traces(s, sorted(set(problem_ids)))

    def counts(self) -> dict[str, int]:
        """Row counts per table (for tests and the status line)."""
        models = {"problems": ProblemRow, "sessions": SessionRow, "nodes": NodeRow, "annotations": AnnotationRow,
                  "auto_labels": AutoLabelRow, "actions": ActionRow}
        with self.read() as s:
            return {name: s.execute(select(func.count()).select_from(m)).scalar_one() for name, m in models.items()}


# -- helpers: rows <-> values ------------------------------------------------------------------
def _retryable(exc: Exception) -> bool:
    if isinstance(exc, _Race | IntegrityError):
        return True
    text = str(exc).lower()
    return "locked" in text or "busy" in text or "deadlock" in text or "serialization" in text


def _one_line(exc: Exception) -> str:
    return str(getattr(exc, "orig", exc) or exc).strip().splitlines()[0]


def _check_rating(rating: Any) -> None:
    if isinstance(rating, bool) or rating not in RATINGS:
        raise ValueError(f"rating must be -1, 0 or 1, got {rating!r}")


def _problem(row: ProblemRow) -> Problem:
    return Problem(row.id, row.text, row.answer, row.domain, row.meta or {})


def _put_problem(s: Session, p: Problem) -> None:
    _put_problems(s, [p])


def _put_problems(s: Session, problems: list[Problem]) -> tuple[int, int]:
    """Store new problems and check known ones (same text and domain; an answer may be added, never changed);
    returns (problems added, problems stored already). Looks ids up CHUNK at a time and inserts with one
    executemany per chunk: linear, few round trips."""
    base = utcnow()
    added, present = 0, 0
    for start in range(0, len(problems), CHUNK):
        chunk = problems[start:start + CHUNK]
        for p in chunk:
            for value, what in ((p.id, "problem id"), (p.text, "problem text"), (p.answer or "", "problem answer")):
                _clean(value, what)
        stmt = select(ProblemRow.id, ProblemRow.text, ProblemRow.answer, ProblemRow.domain)
        known: dict[str, tuple[str, str | None, str]] = {
            r.id: (r.text, r.answer, r.domain) for r in s.execute(stmt.where(ProblemRow.id.in_([p.id for p in chunk])))}
        present += len(known)
        new: list[dict[str, Any]] = []
        answers: list[dict[str, Any]] = []
        for i, p in enumerate(chunk, start):
            row = known.get(p.id)
            if row is None:  # `created` keeps the file's order (problems() lists by it)
                new.append({"id": p.id, "text": p.text, "answer": p.answer, "domain": p.domain,
                            "meta": p.meta or None, "created": base + timedelta(microseconds=i)})
                known[p.id] = (p.text, p.answer, p.domain)
                continue
            text, answer, domain = row
            clash = None not in (answer, p.answer) and answer != p.answer
            if (text, domain) != (p.text, p.domain) or clash:
                raise StorageError(f"problem id {p.id!r} is already stored with a different text, answer or domain")
            if answer is None and p.answer is not None:
                answers.append({"id": p.id, "answer": p.answer})
        if new:
            s.execute(insert(cast(Table, ProblemRow.__table__)), new)  # Core executemany: no ORM work per row
            added += len(new)
        if answers:
            s.execute(update(ProblemRow), answers)
    return added, present


def _sid(session_id: int) -> int:
    """A session id that can exist: 1 to 2^31-1 on both databases (a larger one would overflow SQLite's or
    PostgreSQL's integer with an opaque driver error)."""
    if isinstance(session_id, bool) or not isinstance(session_id, int) or not 0 < session_id <= MAX_DB_INT:
        raise NotFoundError(f"no session {str(session_id)[:40]} (session ids run from 1 to {MAX_DB_INT})")
    return session_id


def _like_literal(text: str) -> str:
    """`text` as a LIKE pattern matching itself: `%`, `_` and the escape character lose their wildcard meaning."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _clean(text: str, what: str) -> str:
    """The portability rule at the one place every write passes: no NUL, no lone surrogate (reasoning.limits)."""
    try:
        return check_encodable(text, what)
    except TextError as exc:
        raise TextRuleError(str(exc)) from None


def _must_exist(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        path = Path(parsed.database).expanduser()
        if not path.is_file():
            raise NotFoundError(f"no database at {path} (check --db; a command that only reads does not create one)")


def _live_session(s: Session, session_id: int) -> None:
    """The session exists and is not deleted (one indexed read of one column)."""
    deleted = s.scalar(select(SessionRow.deleted).where(SessionRow.id == _sid(session_id)))
    if deleted is None:
        raise NotFoundError(f"no session {session_id}")
    if deleted:
        raise StorageError(f"session {session_id} is deleted: restore it before changing it")


def _session_row(s: Session, session_id: int) -> SessionRow:
    row = s.get(SessionRow, _sid(session_id))
    if row is None:
        raise NotFoundError(f"no session {session_id}")
    return row


def _node_key(session_id: int, node_id: str) -> list[Any]:
    return [NodeRow.session_id == session_id, NodeRow.node_id == node_id]


def _node_row(s: Session, session_id: int, node_id: str) -> NodeRow:
    row = s.get(NodeRow, (_sid(session_id), node_id))
    if row is None:
        raise NotFoundError(f"no node {node_id!r} in session {session_id}")
    return row


Versioned = type[SessionRow] | type[NodeRow] | type[AnnotationRow]


def _bump(s: Session, model: Versioned, where: list[Any], expected: int | None, values: dict[str, Any],
          current: int | None = None) -> int:
    """Write `values` to one row and bump its version; ConflictError when the caller's `expected` version is stale."""
    if current is None:
        current = s.scalar(select(model.version).where(*where))
        if current is None:
            raise NotFoundError(f"the {model.__tablename__} row to change is gone")
    if expected is not None and expected != current:
        raise ConflictError(f"{model.__tablename__} row changed (version {current}, you had {expected}); reload")
    update_row = update(model).where(*where, model.version == current).values(version=current + 1, **values)
    moved = cast("CursorResult[Any]", s.execute(update_row))
    if moved.rowcount != 1:  # another transaction committed in between (PostgreSQL, read committed)
        if expected is not None:
            raise ConflictError(f"{model.__tablename__} row changed while writing; reload")
        raise _Race()
    return current + 1


def _session_info(s: Session, row: SessionRow) -> SessionInfo:
    nodes = s.execute(select(func.count()).select_from(NodeRow).where(NodeRow.session_id == row.id)).scalar_one()
    notes = s.execute(select(func.count()).select_from(AnnotationRow).where(AnnotationRow.session_id == row.id)
                      ).scalar_one()
    return SessionInfo(row.id, row.name, row.problem_id, row.problem.text, row.deleted, row.version, row.created,
                       row.updated, nodes, notes, row.config, row.provenance, row.catalog, row.meta)


def _node_values(session_id: int, nid: str, attrs: Mapping[str, Any]) -> dict[str, Any]:
    values = {k: attrs.get(k, NODE_DEFAULTS[k]) for k in NODE_FIELDS}
    _clean(values["text"] or "", f"the text of step {nid}")
    _clean(values["answer"] or "", f"the answer of step {nid}")
    return {**values, "session_id": session_id, "node_id": nid, "parent_id": attrs.get("parent"),
            "next_child": attrs.get("next_child", 0), "version": 1}


def _insert_nodes(s: Session, session_id: int, tree: ReasoningTree, node_ids: list[str]) -> None:
    if node_ids:
        s.execute(insert(NodeRow), [_node_values(session_id, n, tree.node(n)) for n in node_ids])


def _nodes_in_order(tree: ReasoningTree) -> list[str]:
    return sorted(tree.nodes(), key=lambda n: (tree.node(n)["depth"], tree.node(n)["created"]))


def _stats(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """The search statistics of a node (the columns a later save may change), read by name."""
    return {k: attrs[k] for k in STATS_FIELDS}


def _upsert_nodes(s: Session, session_id: int, tree: ReasoningTree) -> int:
    _session_row(s, session_id)
    known = dict(s.execute(select(NodeRow.node_id, NodeRow.next_child).where(NodeRow.session_id == session_id)).all())
    order = _nodes_in_order(tree)
    _insert_nodes(s, session_id, tree, [n for n in order if n not in known])
    stats = [{"session_id": session_id, "node_id": n, "next_child": max(known[n], tree.node(n)["next_child"]),
              **_stats(tree.node(n))} for n in order if n in known]
    if stats:
        s.execute(update(NodeRow), stats)
    return sum(n not in known for n in order)


def _sync_next_child(s: Session, session_id: int, tree: ReasoningTree, node_ids: Iterable[str | None]) -> None:
    """Child ids are never reused: a stored node's counter only grows."""
    for nid in node_ids:
        if nid is not None and nid in tree:
            counter = tree.node(nid)["next_child"]
            s.execute(update(NodeRow).where(*_node_key(session_id, nid), NodeRow.next_child < counter)
                      .values(next_child=counter))


def _insert_session(s: Session, tree: ReasoningTree, *, name: str, config: Any, provenance: Any, catalog: Any,
                    meta: dict[str, Any] | None) -> int:
    _put_problem(s, tree.problem)
    row = SessionRow(name=_clean(name, "session name"), problem_id=tree.problem.id, config=config,
                     provenance=provenance, catalog=catalog,
                     meta=meta or {})
    s.add(row)
    s.flush()
    snap = tree.snapshot()
    _insert_nodes(s, row.id, snap, _nodes_in_order(snap))
    return row.id


def _tree(problem: ProblemRow, nodes: Sequence[NodeRow]) -> ReasoningTree:
    out = []
    for n in nodes:
        attrs = {k: getattr(n, k) for k in NODE_FIELDS}
        out.append({"id": n.node_id, "parent": n.parent_id, "next_child": n.next_child, "version": n.version, **attrs})
    p = _problem(problem)
    problem_dict = {"id": p.id, "text": p.text, "answer": p.answer, "domain": p.domain, "meta": p.meta}
    return ReasoningTree.from_dict({"problem": problem_dict, "nodes": out})


def _annotation(row: AnnotationRow) -> Annotation:
    return Annotation(row.session_id, row.node_id, row.annotator, row.rating, row.unsure, row.note, row.seconds,
                      row.version, row.created, row.updated, bool(row.adjudicated))


def _annotation_row(s: Session, session_id: int, node_id: str, annotator: str) -> AnnotationRow | None:
    return s.scalar(select(AnnotationRow).where(
        AnnotationRow.session_id == session_id, AnnotationRow.node_id == node_id, AnnotationRow.annotator == annotator))


def _put_annotation(s: Session, session_id: int, node_id: str, annotator: str, values: dict[str, Any] | None,
                    expected: int | None) -> tuple[dict[str, Any] | None, AnnotationRow | None]:
    """Insert, update or (values None) clear one annotation; returns what it was before (None: absent) and after."""
    row = _annotation_row(s, session_id, node_id, annotator)
    if row is None:
        if expected not in (None, 0):
            raise ConflictError(f"the rating of {node_id!r} by {annotator!r} was removed; reload")
        if values is None:
            return None, None
        row = AnnotationRow(session_id=session_id, node_id=node_id, annotator=annotator, **values)
        s.add(row)
        s.flush()
        return None, row
    before = {"rating": row.rating, "unsure": row.unsure, "note": row.note, "seconds": row.seconds,
              "adjudicated": row.adjudicated}
    key = [AnnotationRow.id == row.id]
    if values is None:
        _bump(s, AnnotationRow, key, expected, {}, row.version)
        s.delete(row)
        return before, None
    _bump(s, AnnotationRow, key, expected, {**values, "updated": utcnow()}, row.version)
    return before, row


def _auto_label(row: AutoLabelRow) -> AutoLabel:
    return AutoLabel(row.node_id, row.method, row.rollouts, row.successes, row.soft_value, row.hard_label,
                     row.provenance, row.created)


def _put_auto_label(s: Session, session_id: int, label: AutoLabel) -> None:
    _node_row(s, session_id, label.node_id)
    row = s.scalar(select(AutoLabelRow).where(
        AutoLabelRow.session_id == session_id, AutoLabelRow.node_id == label.node_id,
        AutoLabelRow.method == label.method))
    values = {k: v for k, v in asdict(label).items() if k not in ("node_id", "method", "created")}
    if row is None:
        s.add(AutoLabelRow(session_id=session_id, node_id=label.node_id, method=label.method, **values))
    else:
        for k, v in values.items():
            setattr(row, k, v)
    s.flush()


def _entry(session_id: int | None, node_id: str | None, annotator: str, kind: str,
           payload: dict[str, Any]) -> ActionRow:
    """The log row of an action; `Store._action` adds its id and result."""
    return ActionRow(session_id=session_id, node_id=node_id, annotator=annotator, kind=kind, payload=payload)


def _action_value(row: ActionRow) -> Action:
    return Action(row.action_id, row.session_id, row.node_id, row.annotator, row.kind, row.payload or {},
                  row.undone, row.created)


def _labeled_tree(s: Session, row: SessionRow) -> LabeledTree:
    nodes = s.scalars(select(NodeRow).where(NodeRow.session_id == row.id)).all()
    notes = s.scalars(select(AnnotationRow).where(AnnotationRow.session_id == row.id).order_by(AnnotationRow.id))
    autos = s.scalars(select(AutoLabelRow).where(AutoLabelRow.session_id == row.id).order_by(AutoLabelRow.id))
    return LabeledTree(row.id, _tree(row.problem, nodes), [_annotation(a) for a in notes],
                       [_auto_label(a) for a in autos], row.meta or {}, row.name)


def _imported_traces(s: Session, problem_ids: list[str]) -> dict[str, tuple[int, bool]]:
    """Fingerprint -> (session id, deleted) of the traces imported for these problems; reads only the sessions'
    `meta.fingerprints`, never their traces, CHUNK problems at a time."""
    found: dict[str, tuple[int, bool]] = {}
    for start in range(0, len(problem_ids), CHUNK):
        stmt = select(SessionRow.id, SessionRow.deleted, SessionRow.meta["fingerprints"]).where(
            SessionRow.problem_id.in_(problem_ids[start:start + CHUNK])).order_by(SessionRow.id)
        for sid, deleted, prints in s.execute(stmt):
            for f in prints if isinstance(prints, list) else []:
                found.setdefault(f, (sid, bool(deleted)))
    return found


def _unseen_trees(s: Session, trees: list[LabeledTree]) -> tuple[list[LabeledTree], int]:
    """The trees whose traces no session holds yet, and how many traces the others hold. Their problems are locked
    first (PostgreSQL; SQLite writes one at a time), so two imports of one file cannot both find it new."""
    pids = sorted({lt.tree.problem.id for lt in trees if lt.meta.get("fingerprints")})
    for start in range(0, len(pids), CHUNK):
        s.execute(select(ProblemRow.id).where(ProblemRow.id.in_(pids[start:start + CHUNK]))
                  .order_by(ProblemRow.id).with_for_update(key_share=True))
    stored = _imported_traces(s, pids) if pids else {}
    fresh, skipped = [], 0
    for lt in trees:
        prints = lt.meta.get("fingerprints") or []
        seen = sum(f in stored for f in prints)
        if not seen:
            fresh.append(lt)
        elif seen < len(prints):  # the caller left out what it found stored; another import stored more since
            raise ConflictError("another import stored some of these traces meanwhile: import the file again to "
                                "add the rest")
        else:
            skipped += seen
    return fresh, skipped


def _insert_labeled(s: Session, lt: LabeledTree, annotator: str, source: dict[str, Any]) -> int:
    meta = {**lt.meta, "source": source}
    sid = _insert_session(s, lt.tree, name=lt.name, config=None, provenance={"import": source}, catalog=None, meta=meta)
    notes = [{"session_id": sid, "node_id": a.node_id, "annotator": annotator, "rating": a.rating,
              "unsure": a.unsure, "note": _clean(a.note or "", "note"), "seconds": a.seconds} for a in lt.annotations]
    if notes:
        s.execute(insert(AnnotationRow), notes)
    for label in lt.auto_labels:
        _put_auto_label(s, sid, label)
    return sid


# -- undo: one reverter per action kind ----------------------------------------------------------
def _session_action(a: ActionRow) -> tuple[int, dict[str, Any]]:
    """The session and payload of an action on a session (the log allows neither to be missing for those)."""
    if a.session_id is None or a.payload is None:
        raise ValueError(f"action {a.action_id} ({a.kind}) names no session to undo")
    return a.session_id, a.payload


def _node_action(a: ActionRow) -> tuple[int, str, dict[str, Any]]:
    """The session, node and payload of an action on one node."""
    session_id, payload = _session_action(a)
    if a.node_id is None:
        raise ValueError(f"action {a.action_id} ({a.kind}) names no node to undo")
    return session_id, a.node_id, payload


def _undo_rate(s: Session, a: ActionRow) -> None:
    session_id, node_id, payload = _node_action(a)
    _put_annotation(s, session_id, node_id, a.annotator, payload["before"], None)


def _undo_rate_many(s: Session, a: ActionRow) -> None:
    session_id, payload = _session_action(a)
    for change in reversed(payload["changes"]):
        _put_annotation(s, session_id, change["node_id"], a.annotator, change["before"], None)


def _undo_prune(s: Session, a: ActionRow) -> None:
    session_id, node_id, payload = _node_action(a)
    _bump(s, NodeRow, _node_key(session_id, node_id), None, {"pruned": payload["before"]})


def _undo_add(s: Session, a: ActionRow) -> dict[str, Any]:
    """Remove the nodes an edit, human step or expansion added (with their own annotator's ratings and their
    automatic labels), so the tree and every view of it are as before. Nodes someone else rated, or that grew
    children since, are only hidden (pruned) instead: undo never deletes another person's work."""
    session_id, payload = _session_action(a)
    added = list(payload["nodes"])
    rows = s.execute(select(NodeRow.node_id, NodeRow.parent_id, NodeRow.depth)
                     .where(NodeRow.session_id == session_id)).all()
    depth = {r.node_id: r.depth for r in rows}
    kids: dict[str | None, list[str]] = {}
    for r in rows:
        kids.setdefault(r.parent_id, []).append(r.node_id)
    rated = {n for (n,) in s.execute(select(AnnotationRow.node_id).where(
        AnnotationRow.session_id == session_id, AnnotationRow.node_id.in_(added),
        AnnotationRow.annotator != a.annotator))}
    gone = [n for n in added if n in depth and not kids.get(n) and n not in rated]
    kept = [n for n in added if n in depth and n not in gone]
    if gone:
        for model in (AnnotationRow, AutoLabelRow):
            s.execute(delete(model).where(model.session_id == session_id, model.node_id.in_(gone)))
        s.execute(delete(NodeRow).where(NodeRow.session_id == session_id, NodeRow.node_id.in_(gone)))
    for nid in kept:
        _bump(s, NodeRow, _node_key(session_id, nid), None, {"pruned": True})
    return {"removed": sorted(gone, key=lambda n: (depth[n], n)), "hidden": kept}


def _acted_on(tree: ReasoningTree, node_ids: list[str], kind: str) -> str | None:
    """The node an adding action was done on, what its log entry names: the expanded node, the node a human step
    was written under, or the edited step."""
    if not node_ids:
        return None
    first = tree.node(node_ids[0])
    if kind == "edit":
        source = (first.get("meta") or {}).get("edited_from")
        if isinstance(source, str):
            return source
    return first["parent"]


def _undo_session(s: Session, a: ActionRow) -> None:
    session_id, payload = _session_action(a)
    _bump(s, SessionRow, [SessionRow.id == session_id], None, payload["before"])


UNDO: dict[str, Callable[[Session, ActionRow], dict[str, Any] | None]] = {
    "rate": _undo_rate,
    "rate_many": _undo_rate_many,
    "prune": _undo_prune,
    "unprune": _undo_prune,
    **{kind: _undo_add for kind in ADD_KINDS},
    **{kind: _undo_session for kind in ("rename", "delete", "restore")},
}


def _same_action(row: ActionRow, scope: tuple[int | None, str | None, str, str]) -> None:
    session_id, node_id, annotator, kind = scope
    same = (row.session_id == session_id and row.annotator == annotator and row.kind == kind
            and (node_id is None or row.node_id == node_id))
    if not same:
        raise ConflictError(f"action_id {row.action_id!r} was already used for another action; use a new id")
