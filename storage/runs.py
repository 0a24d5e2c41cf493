"""Runs in the database: a search configuration over a problem set, one result per problem written exactly once
(with its session, in one transaction), named problem sets, and the queries the Runs page and `runs` commands read.

A run's problems are stored when it starts (`run_items`, pending); a result moves its item from pending to done in
the same transaction that stores the problem's tree, so a kill loses at most the problems in flight, which a resume
searches again, and no problem is ever written twice (the update only matches a pending item).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update

from reasoning.types import Problem

from .models import ProblemRow, ProblemSetItemRow, RunItemRow, RunRow, utcnow
from .records import NotFoundError, StorageError
from .store import Store, _insert_session, _jsonable, _problem, _put_problems

STATUSES = ("running", "finished", "stopped", "failed")
PAGE = 50  # problems per page of the problem picker


@dataclass(frozen=True)
class RunInfo:
    """A run as the runs table shows it: its settings, state and result counts."""

    id: int
    name: str
    problem_set: str
    algorithm: str
    config: dict[str, Any]
    models: dict[str, Any]
    seed: int
    started_by: str
    status: str
    started: datetime
    ended: datetime | None
    problems: int
    done: int
    solved: int
    nodes: float | None = None  # means over the finished problems
    tokens: float | None = None
    seconds: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def budget(self) -> int:
        return int(self.config.get("budget", 0))

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["started"], d["ended"] = self.started.isoformat(), self.ended.isoformat() if self.ended else None
        return d


@dataclass(frozen=True)
class RunResult:
    """One problem's result in a run (`status` pending until searched)."""

    problem_id: str
    position: int
    status: str
    session_id: int | None = None
    answer: str | None = None
    correct: bool | None = None
    nodes: int | None = None
    tokens: int | None = None
    seconds: float | None = None
    found: bool | None = None
    depth: int | None = None
    duplicates: int | None = None
    value: float | None = None
    factors: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Runs:
    """The runs of one database (a thin layer over `Store`'s engine and transactions)."""

    def __init__(self, store: Store):
        self.store = store

    # -- problem sets --------------------------------------------------------------------------------------------
    def save_problem_set(self, name: str, problems: list[Problem]) -> int:
        """Store a named problem set (its problems too); the same name again must hold the same problems."""
        name = _name(name, "problem set name")

        def work(s) -> int:
            _put_problems(s, problems)
            have = [r for r in s.scalars(select(ProblemSetItemRow.problem_id).where(
                ProblemSetItemRow.set_name == name).order_by(ProblemSetItemRow.position))]
            ids = [p.id for p in problems]
            if have and have != ids:
                raise StorageError(f"problem set {name!r} is already stored with other problems; choose another name")
            if not have:
                s.add_all(ProblemSetItemRow(set_name=name, position=i, problem_id=pid) for i, pid in enumerate(ids))
            return len(ids)

        return self.store._transact(work)

    def problem_sets(self) -> dict[str, int]:
        """Every stored problem set's name and size."""
        stmt = select(ProblemSetItemRow.set_name, func.count()).group_by(ProblemSetItemRow.set_name)
        with self.store.read() as s:
            return dict(sorted((n, c) for n, c in s.execute(stmt)))

    def problem_set(self, name: str) -> list[Problem]:
        stmt = (select(ProblemRow).join(ProblemSetItemRow, ProblemSetItemRow.problem_id == ProblemRow.id)
                .where(ProblemSetItemRow.set_name == name).order_by(ProblemSetItemRow.position))
        with self.store.read() as s:
            out = [_problem(r) for r in s.scalars(stmt)]
        if not out:
            raise NotFoundError(f"no problem set {name!r}; stored sets: {', '.join(self.problem_sets()) or 'none'}")
        return out

    def find_problems(self, query: str = "", page: int = 0, size: int = PAGE) -> list[Problem]:
        """Stored problems whose text contains `query`, one page at a time (never the whole table)."""
        stmt = select(ProblemRow).order_by(ProblemRow.created, ProblemRow.id)
        if query.strip():
            stmt = stmt.where(ProblemRow.text.contains(query.strip(), autoescape=True))
        with self.store.read() as s:
            return [_problem(r) for r in s.scalars(stmt.offset(max(0, page) * size).limit(size))]

    # -- runs ----------------------------------------------------------------------------------------------------
    def create(self, *, name: str, problem_set: str, problems: list[Problem], config: dict[str, Any],
               models: dict[str, Any], started_by: str, meta: dict[str, Any] | None = None) -> int:
        """A new run over `problems` (stored too), every problem pending; returns its id."""
        if not problems:
            raise StorageError("a run needs at least one problem")
        ids = [p.id for p in problems]
        if len(set(ids)) != len(ids):
            raise StorageError("a run's problems must have distinct ids")

        def work(s) -> int:
            _put_problems(s, problems)
            row = RunRow(name=_name(name or problem_set, "run name"), problem_set=problem_set,
                         algorithm=str(config.get("algorithm")), config=_jsonable(config), models=models,
                         seed=int(config.get("seed", 0)), started_by=started_by, status="running", meta=meta)
            s.add(row)
            s.flush()
            s.add_all(RunItemRow(run_id=row.id, position=i, problem_id=pid, status="pending")
                      for i, pid in enumerate(ids))
            return row.id

        return self.store._transact(work)

    def record(self, run_id: int, problem_id: str, result: dict[str, Any], session: dict[str, Any]) -> int | None:
        """Store one problem's tree as a session and its result, in one transaction; None (and nothing stored) when
        the problem's result is written already (a second worker, a resumed run)."""

        def work(s) -> int | None:
            values = {k: result.get(k) for k in ("answer", "correct", "nodes", "tokens", "seconds", "found", "depth",
                                                 "duplicates", "value", "factors")}
            claim = s.execute(update(RunItemRow).where(
                RunItemRow.run_id == run_id, RunItemRow.problem_id == problem_id, RunItemRow.status == "pending",
            ).values(status="done", finished=utcnow(), **values))
            if claim.rowcount != 1:  # written already: store nothing
                return None
            sid = _insert_session(s, session["tree"], name=session.get("name", ""),
                                  config=_jsonable(session.get("config")), provenance=session.get("provenance"),
                                  catalog=_jsonable(session.get("catalog")), meta=session.get("meta"))
            s.execute(update(RunItemRow).where(RunItemRow.run_id == run_id, RunItemRow.problem_id == problem_id)
                      .values(session_id=sid))
            return sid

        return self.store._transact(work)

    def set_status(self, run_id: int, status: str, **meta: Any) -> None:
        if status not in STATUSES:
            raise ValueError(f"run status must be one of {STATUSES}, not {status!r}")

        def work(s) -> None:
            row = _run_row(s, run_id)
            row.status = status
            row.ended = None if status == "running" else utcnow()
            if meta:
                row.meta = {**(row.meta or {}), **meta}

        self.store._transact(work)

    def pending(self, run_id: int) -> list[Problem]:
        """The run's problems without a result, in order."""
        stmt = (select(ProblemRow).join(RunItemRow, RunItemRow.problem_id == ProblemRow.id)
                .where(RunItemRow.run_id == run_id, RunItemRow.status == "pending").order_by(RunItemRow.position))
        with self.store.read() as s:
            _run_row(s, run_id)
            return [_problem(r) for r in s.scalars(stmt)]

    def info(self, run_id: int) -> RunInfo:
        with self.store.read() as s:
            return _info(s, _run_row(s, run_id))

    def all(self) -> list[RunInfo]:
        with self.store.read() as s:
            rows = list(s.scalars(select(RunRow).order_by(RunRow.id)))
            counts = _counts(s, [r.id for r in rows])
            return [_info(s, r, counts.get(r.id)) for r in rows]

    def results(self, run_id: int) -> list[RunResult]:
        stmt = select(RunItemRow).where(RunItemRow.run_id == run_id).order_by(RunItemRow.position)
        with self.store.read() as s:
            _run_row(s, run_id)
            return [_result(r) for r in s.scalars(stmt)]

    def problems(self, run_id: int) -> dict[str, Problem]:
        """The run's problems by id."""
        stmt = (select(ProblemRow).join(RunItemRow, RunItemRow.problem_id == ProblemRow.id)
                .where(RunItemRow.run_id == run_id))
        with self.store.read() as s:
            return {r.id: _problem(r) for r in s.scalars(stmt)}

    def resolve(self, ref: str | int) -> int:
        """A run id from an id or a unique name."""
        text = str(ref).strip()
        if text.isdigit():
            return int(text)
        with self.store.read() as s:
            ids = list(s.scalars(select(RunRow.id).where(RunRow.name == text)))
        if len(ids) != 1:
            raise NotFoundError(f"no run named {text!r}" if not ids else
                                f"{len(ids)} runs are named {text!r} ({', '.join(map(str, ids))}); give its id")
        return ids[0]


def _name(value: str, what: str) -> str:
    value = (value or "").strip()
    if not value or len(value) > 200:
        raise StorageError(f"a {what} of 1-200 characters is needed, got {value[:40]!r}")
    return value


def _run_row(s, run_id: int) -> RunRow:
    row = s.get(RunRow, run_id)
    if row is None:
        raise NotFoundError(f"no run {run_id}")
    return row


def _counts(s, run_ids: list[int]) -> dict[int, tuple]:
    """Per run: problems, done, solved and the means of nodes, tokens and seconds over the finished problems."""
    if not run_ids:
        return {}
    done = RunItemRow.status == "done"
    stmt = (select(RunItemRow.run_id, func.count(), func.count().filter(done),
                   func.count().filter(done, RunItemRow.correct.is_(True)), func.avg(RunItemRow.nodes),
                   func.avg(RunItemRow.tokens), func.avg(RunItemRow.seconds))
            .where(RunItemRow.run_id.in_(run_ids)).group_by(RunItemRow.run_id))
    return {r[0]: tuple(r[1:]) for r in s.execute(stmt)}


def _info(s, row: RunRow, counts: tuple | None = None) -> RunInfo:
    if counts is None:
        counts = _counts(s, [row.id]).get(row.id, (0, 0, 0, None, None, None))
    n, done, solved, nodes, tokens, seconds = counts
    return RunInfo(row.id, row.name, row.problem_set, row.algorithm, row.config, row.models, row.seed,
                   row.started_by, row.status, row.started, row.ended, int(n), int(done), int(solved),
                   _float(nodes), _float(tokens), _float(seconds), dict(row.meta or {}))


def _float(x: Any) -> float | None:
    return None if x is None else float(x)


def _result(r: RunItemRow) -> RunResult:
    return RunResult(r.problem_id, r.position, r.status, r.session_id, r.answer, r.correct, r.nodes, r.tokens,
                     r.seconds, r.found, r.depth, r.duplicates, r.value, r.factors)
