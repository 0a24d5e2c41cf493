"""Plain values that storage hands out (annotations, auto labels, sessions, actions) and its errors."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from reasoning.tree import ReasoningTree

RATINGS = (-1, 0, 1)


class StorageError(Exception):
    """A storage operation that cannot be done; the message says why in one line."""


class ConflictError(StorageError):
    """The row changed since the caller read it (a stale `expected_version`): reload and try again."""


class StaleTreeError(ConflictError):
    """New nodes whose ids another writer (a second server on the same database) stored first: the caller's copy
    of the tree is stale; reload it and make the change again."""


class NotFoundError(StorageError, LookupError):
    """No such session, node or action."""


class TextRuleError(StorageError, ValueError):
    """Text the databases cannot store alike (a NUL, a lone surrogate): refused on SQLite and PostgreSQL both."""


class ImportFormatError(StorageError, ValueError):
    """An import record that cannot be read; the message names the file, the line and the field."""


@dataclass(frozen=True)
class Annotation:
    """One annotator's rating of one node (PRM800K's -1 / 0 / +1)."""

    session_id: int
    node_id: str
    annotator: str
    rating: int
    unsure: bool = False
    note: str = ""
    seconds: float | None = None
    version: int = 1
    created: datetime | None = None
    updated: datetime | None = None
    adjudicated: bool = False  # an adjudicator's decision: it settles the node's label in every export

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["created"] = self.created.isoformat() if self.created else None
        d["updated"] = self.updated.isoformat() if self.updated else None
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Annotation:
        times = {k: datetime.fromisoformat(d[k]) if d.get(k) else None for k in ("created", "updated")}
        return cls(**{**d, **times})


@dataclass(frozen=True)
class AutoLabel:
    """A computed step label: `successes` of `rollouts` Monte-Carlo continuations reached a right answer."""

    node_id: str
    method: str = "rollout"
    rollouts: int = 0
    successes: int = 0
    soft_value: float | None = None
    hard_label: bool | None = None
    provenance: dict[str, Any] | None = field(default=None, compare=False)  # generator and rollout settings
    created: datetime | None = field(default=None, compare=False)


@dataclass(frozen=True)
class SessionInfo:
    id: int
    name: str
    problem_id: str
    problem_text: str
    deleted: bool
    version: int
    created: datetime
    updated: datetime
    nodes: int = 0
    annotations: int = 0
    config: dict[str, Any] | None = None
    provenance: dict[str, Any] | None = None
    catalog: dict[str, Any] | None = None
    meta: dict[str, Any] | None = None  # import source and traces, the search's state ("search": running, ...)


@dataclass(frozen=True)
class NodeState:
    """A node's user-controlled state after an action."""

    session_id: int
    node_id: str
    pruned: bool
    version: int


@dataclass(frozen=True)
class Action:
    """One entry of the append-only action log."""

    action_id: str
    session_id: int | None
    node_id: str | None
    annotator: str
    kind: str
    payload: dict[str, Any]
    undone: bool
    created: datetime


@dataclass
class LabeledTree:
    """What every export reads: one session's tree with its human annotations and auto labels."""

    session_id: int
    tree: ReasoningTree
    annotations: list[Annotation] = field(default_factory=list)
    auto_labels: list[AutoLabel] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    name: str = ""


@dataclass(frozen=True)
class LoginEntry:
    """The login throttle's record of one key (a user name, a client address, or the pair): recent failure times,
    a lockout, whether the pair logged in before (trusted), all in seconds since the epoch, and when the record may
    be forgotten (`expires`). ui/login.py holds the policy that writes them."""

    failures: tuple[float, ...] = ()
    locked_until: float = 0.0
    trusted_until: float = 0.0
    expires: float = 0.0
