"""Server-side checks of every value an endpoint receives (a Gradio endpoint is callable directly, so trust nothing)."""
from __future__ import annotations

import math
import re
from typing import Any

from reasoning.limits import (
    MAX_DB_INT,
    MAX_DEPTH,
    MAX_NAME_CHARS,
    MAX_NOTE_CHARS,
    MAX_PROBLEM_CHARS,
    MAX_STEP_CHARS,
    TextError,
    check_text,
)
from reasoning.search.config import as_integer, as_number

NODE_ID = re.compile(rf"^0(?:\.\d{{1,6}}){{0,{MAX_DEPTH}}}$")
MAX_TEXT = MAX_STEP_CHARS  # the limits live in reasoning.limits, shared with imports, storage and the command line
MAX_PROBLEM = MAX_PROBLEM_CHARS  # a problem statement: the same limit as the command line and imports
MAX_NOTE = MAX_NOTE_CHARS
MAX_NAME = MAX_NAME_CHARS
RATINGS = (-1, 0, 1)


class UserError(ValueError):
    """A request the user can fix; its message is shown as is."""


def need(ok: bool, message: str) -> None:
    if not ok:
        raise UserError(message)


def session_id(value: Any) -> int:
    """A session id: an integer from 1 to 2^31-1 (the UI sends it as text). Larger ones cannot exist in either
    database, so they are refused here rather than overflowing a database integer."""
    bad = f"session id must be a positive integer (at most {MAX_DB_INT}), got {str(value)[:40]!r}"
    if isinstance(value, bool):
        raise UserError(bad)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, str):
        value = value.strip()
        need(value != "", "no session is open: run a search or open a session first")
        need(value.isascii() and value.isdigit() and len(value) <= 10, bad)
        value = int(value)
    need(isinstance(value, int) and 0 < value <= MAX_DB_INT, bad)
    return value


def node_id(value: Any) -> str:
    """A dotted node id such as `0.2.1`."""
    need(isinstance(value, str) and value.strip() != "", "no node is selected: click a node on the tree first")
    value = value.strip()
    need(len(value) <= 400 and bool(NODE_ID.match(value)), f"not a node id: {value[:40]!r} (expected e.g. 0.2.1)")
    return value


def integer(value: Any, name: str, lo: int, hi: int) -> int:
    """The search settings' integer coercion (`reasoning.search.config.as_integer`), refused as a UserError."""
    try:
        return as_integer(value, name, lo, hi)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def number(value: Any, name: str, lo: float, hi: float) -> float:
    """The search settings' number coercion (`as_number`), refused as a UserError."""
    try:
        return as_number(value, name, lo, hi)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def rating(value: Any) -> int:
    if isinstance(value, str) and value.strip() in ("+1", "1", "0", "-1"):
        value = int(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    need(value in RATINGS and not isinstance(value, bool), f"rating must be -1, 0 or +1, got {value!r}")
    return int(value)


def text(value: Any, name: str, *, limit: int = MAX_TEXT, allow_empty: bool = False) -> str:
    """Text under the shared rule (reasoning.limits): within `limit`, no NUL, no lone surrogate."""
    try:
        return check_text(value, name, limit, allow_empty=allow_empty)
    except TextError as exc:
        raise UserError(str(exc)) from None


def annotator(value: Any) -> str:
    """An annotator name: 1-200 printable characters; the empty name reads as `anonymous`."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return "anonymous"
    need(isinstance(value, str), "annotator must be text")
    value = value.strip()
    need(len(value) <= MAX_NAME, f"annotator name is too long (at most {MAX_NAME} characters)")
    need(value.isprintable(), "annotator name has control characters")
    return text(value, "annotator name", limit=MAX_NAME)


def choice(value: Any, name: str, options: tuple[str, ...] | list[str]) -> str:
    need(value in options, f"{name} must be one of {list(options)}, got {value!r}")
    return value


def flag(value: Any, name: str) -> bool:
    need(isinstance(value, bool), f"{name} must be true or false, got {value!r}")
    return value


_ACTION_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


def action_id(value: Any) -> str | None:
    """A client-chosen action id (for idempotent retries), or None to let the server pick one."""
    if value is None or value == "":
        return None
    need(isinstance(value, str) and bool(_ACTION_ID.match(value)),
         "action_id must be 1-64 characters of letters, digits, '_', '-', '.' or ':'")
    return value


def version(value: Any, name: str = "expected_version") -> int | None:
    """An optimistic-concurrency version the client last saw, or None to skip the check."""
    if value is None or value == "":
        return None
    return integer(value, name, 0, MAX_DB_INT)
