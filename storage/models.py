"""SQLAlchemy 2 typed models: problems, search sessions, tree nodes (adjacency list), labels and the action log."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class ProblemRow(Base):
    __tablename__ = "problems"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    answer: Mapped[str | None] = mapped_column(Text)
    domain: Mapped[str] = mapped_column(String(40), default="math")
    meta: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SessionRow(Base):
    """One search session: one tree over one problem, with the config and model provenance that made it."""

    __tablename__ = "sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(300), default="")
    problem_id: Mapped[str] = mapped_column(ForeignKey("problems.id"), index=True)
    config: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # the full search config
    provenance: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # model paths, sha256, sampling params, seed
    catalog: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    meta: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # import source and traces (see storage.traces)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    problem: Mapped[ProblemRow] = relationship(lazy="joined")


class NodeRow(Base):
    """One tree node; `parent_id` points at a node of the same session (adjacency list)."""

    __tablename__ = "nodes"
    __table_args__ = (
        ForeignKeyConstraint(["session_id", "parent_id"], ["nodes.session_id", "nodes.node_id"]),
    )

    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id"), primary_key=True)
    node_id: Mapped[str] = mapped_column(String(400), primary_key=True)  # dotted id: "0", "0.2", "0.2.1"
    parent_id: Mapped[str | None] = mapped_column(String(400))
    depth: Mapped[int] = mapped_column(Integer, default=0)
    factor: Mapped[str | None] = mapped_column(String(100))
    text: Mapped[str] = mapped_column(Text, default="")
    origin: Mapped[str] = mapped_column(String(20), default="generated")
    prior: Mapped[float | None] = mapped_column(Float)
    visits: Mapped[int] = mapped_column(Integer, default=0)
    value_sum: Mapped[float] = mapped_column(Float, default=0.0)
    score: Mapped[float | None] = mapped_column(Float)
    value: Mapped[float | None] = mapped_column(Float)
    terminal: Mapped[bool] = mapped_column(Boolean, default=False)
    answer: Mapped[str | None] = mapped_column(Text)
    pruned: Mapped[bool] = mapped_column(Boolean, default=False)
    tokens: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[int] = mapped_column(Integer, default=0)
    iteration: Mapped[int] = mapped_column(Integer, default=0)
    factor_prior: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    provenance: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    meta: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    next_child: Mapped[int] = mapped_column(Integer, default=0)
    version: Mapped[int] = mapped_column(Integer, default=1)  # bumped by user actions only (optimistic concurrency)


class AnnotationRow(Base):
    """A human rating: one row per annotator per node (PRM800K's -1 / 0 / +1, an unsure flag, time spent)."""

    __tablename__ = "annotations"
    __table_args__ = (
        ForeignKeyConstraint(["session_id", "node_id"], ["nodes.session_id", "nodes.node_id"]),
        UniqueConstraint("session_id", "node_id", "annotator", name="uq_annotation_node_annotator"),
        CheckConstraint("rating IN (-1, 0, 1)", name="ck_annotation_rating"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[int] = mapped_column(Integer)
    node_id: Mapped[str] = mapped_column(String(400))
    annotator: Mapped[str] = mapped_column(String(200))
    rating: Mapped[int] = mapped_column(Integer)
    unsure: Mapped[bool] = mapped_column(Boolean, default=False)
    note: Mapped[str] = mapped_column(Text, default="")
    seconds: Mapped[float | None] = mapped_column(Float)
    # an adjudicator's decision where annotators disagree: it settles the node's label in every export
    adjudicated: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    version: Mapped[int] = mapped_column(Integer, default=1)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class AutoLabelRow(Base):
    """A label computed by a method (Monte-Carlo rollouts, an outcome check), stored apart from human ratings."""

    __tablename__ = "auto_labels"
    __table_args__ = (
        ForeignKeyConstraint(["session_id", "node_id"], ["nodes.session_id", "nodes.node_id"]),
        UniqueConstraint("session_id", "node_id", "method", name="uq_auto_label_node_method"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[int] = mapped_column(Integer)
    node_id: Mapped[str] = mapped_column(String(400))
    method: Mapped[str] = mapped_column(String(100))
    rollouts: Mapped[int] = mapped_column(Integer, default=0)
    successes: Mapped[int] = mapped_column(Integer, default=0)
    soft_value: Mapped[float | None] = mapped_column(Float)
    hard_label: Mapped[bool | None] = mapped_column(Boolean)
    # the generator that rolled out (model id, weights sha256) and the rollout settings: labels are only comparable
    # between runs of the same generator
    provenance: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class ActionRow(Base):
    """Append-only log of user actions; `payload` holds what undo needs, `result` what a retry returns."""

    __tablename__ = "actions"
    __table_args__ = (Index("ix_actions_session_annotator", "session_id", "annotator"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    action_id: Mapped[str] = mapped_column(String(100), unique=True)
    session_id: Mapped[int | None] = mapped_column(ForeignKey("sessions.id"))
    node_id: Mapped[str | None] = mapped_column(String(400))
    annotator: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    undone: Mapped[bool] = mapped_column(Boolean, default=False)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ProblemSetItemRow(Base):
    """A named problem set: its problems in order (a problem may belong to several sets)."""

    __tablename__ = "problem_set_items"

    set_name: Mapped[str] = mapped_column(String(200), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    problem_id: Mapped[str] = mapped_column(ForeignKey("problems.id"), index=True)


class RunRow(Base):
    """A run: one search configuration over a problem set, with the models' identities and its state."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(300), default="")
    problem_set: Mapped[str] = mapped_column(String(200), default="")
    algorithm: Mapped[str] = mapped_column(String(40))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)  # the whole SearchConfig
    models: Mapped[dict[str, Any]] = mapped_column(JSON)  # generator and PRM: directory + sha256, or URL + model
    seed: Mapped[int] = mapped_column(Integer, default=0)
    started_by: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(20), default="running")  # running, finished, stopped, failed
    started: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ended: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    meta: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class RunItemRow(Base):
    """One problem of a run, and its result once searched: written once (pending -> done), with its session."""

    __tablename__ = "run_items"
    __table_args__ = (UniqueConstraint("run_id", "problem_id", name="uq_run_item_problem"),)

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    problem_id: Mapped[str] = mapped_column(ForeignKey("problems.id"), index=True)
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending, done
    session_id: Mapped[int | None] = mapped_column(ForeignKey("sessions.id"))
    answer: Mapped[str | None] = mapped_column(Text)
    correct: Mapped[bool | None] = mapped_column(Boolean)  # the domain's checker, never the PRM
    nodes: Mapped[int | None] = mapped_column(Integer)
    tokens: Mapped[int | None] = mapped_column(Integer)
    seconds: Mapped[float | None] = mapped_column(Float)
    # where the budget went: a correct final answer anywhere in the tree, the deepest step, merged duplicate samples
    found: Mapped[bool | None] = mapped_column(Boolean)
    depth: Mapped[int | None] = mapped_column(Integer)
    duplicates: Mapped[int | None] = mapped_column(Integer)
    value: Mapped[float | None] = mapped_column(Float)  # the chosen answer's value (for calibration)
    factors: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # per factor on the chosen path: steps
    finished: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class LoginThrottleRow(Base):
    """Failed logins and lockouts of one throttle key, so that a restart or another server on the same database
    keeps them (`storage.logins`, `ui/login.py`); a row is deleted once it `expires` (seconds since the epoch)."""

    __tablename__ = "login_throttle"

    key: Mapped[str] = mapped_column(String(500), primary_key=True)
    failures: Mapped[list[float]] = mapped_column(JSON)
    locked_until: Mapped[float] = mapped_column(Float, default=0.0)
    trusted_until: Mapped[float] = mapped_column(Float, default=0.0)
    expires: Mapped[float] = mapped_column(Float, index=True)


class AssignmentRow(Base):
    """A session assigned to an annotator by an admin (`storage.assignments`); a session goes to `overlap`
    annotators so their agreement can be measured."""

    __tablename__ = "assignments"

    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id"), primary_key=True)
    annotator: Mapped[str] = mapped_column(String(200), primary_key=True, index=True)
    assigned_by: Mapped[str] = mapped_column(String(200))
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class QueueMarkRow(Base):
    """An annotator's skip or flag of a step in her assigned queue (`kind` skip | flag, a flag's `reason`)."""

    __tablename__ = "queue_marks"
    __table_args__ = (
        ForeignKeyConstraint(["session_id", "node_id"], ["nodes.session_id", "nodes.node_id"]),
    )

    session_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    node_id: Mapped[str] = mapped_column(String(400), primary_key=True)
    annotator: Mapped[str] = mapped_column(String(200), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(String(200), default="")
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class GuidelineRow(Base):
    """The labeling guideline an admin writes, shown beside the queue; the newest row is the current one."""

    __tablename__ = "guidelines"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    text: Mapped[str] = mapped_column(Text)
    author: Mapped[str] = mapped_column(String(200))
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
