"""Server-side checks of every value an endpoint receives (a Gradio endpoint is callable directly, so trust nothing)."""
from __future__ import annotations

import math
import re
from typing import Any

NODE_ID = re.compile(r"^0(?:\.\d{1,6}){0,256}$")
MAX_TEXT = 4000
MAX_NOTE = 2000
MAX_NAME = 200
RATINGS = (-1, 0, 1)


class UserError(ValueError):
    """A request the user can fix; its message is shown as is."""


def need(ok: bool, message: str) -> None:
    if not ok:
        raise UserError(message)


def session_id(value: Any) -> int:
    """A session id: a positive integer (the UI sends it as text)."""
    if isinstance(value, bool):
        raise UserError("session id must be a positive integer")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str):
        value = value.strip()
        need(value != "", "no session is open: run a search or open a session first")
        need(value.isdigit() and len(value) < 19, f"session id must be a positive integer, got {value[:40]!r}")
        value = int(value)
    need(isinstance(value, int) and value > 0, f"session id must be a positive integer, got {value!r}")
    return value


def node_id(value: Any) -> str:
    """A dotted node id such as `0.2.1`."""
    need(isinstance(value, str) and value.strip() != "", "no node is selected: click a node on the tree first")
    value = value.strip()
    need(len(value) <= 400 and bool(NODE_ID.match(value)), f"not a node id: {value[:40]!r} (expected e.g. 0.2.1)")
    return value


def integer(value: Any, name: str, lo: int, hi: int) -> int:
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and re.fullmatch(r"-?\d{1,12}", value.strip()):
        value = int(value.strip())
    need(isinstance(value, int) and not isinstance(value, bool), f"{name} must be an integer, got {value!r}")
    need(lo <= value <= hi, f"{name} must be between {lo} and {hi}, got {value}")
    return value


def number(value: Any, name: str, lo: float, hi: float) -> float:
    need(isinstance(value, int | float) and not isinstance(value, bool), f"{name} must be a number, got {value!r}")
    value = float(value)
    need(math.isfinite(value) and lo <= value <= hi, f"{name} must be between {lo} and {hi}, got {value}")
    return value


def rating(value: Any) -> int:
    if isinstance(value, str) and value.strip() in ("+1", "1", "0", "-1"):
        value = int(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    need(value in RATINGS and not isinstance(value, bool), f"rating must be -1, 0 or +1, got {value!r}")
    return int(value)


def text(value: Any, name: str, *, limit: int = MAX_TEXT, allow_empty: bool = False) -> str:
    need(isinstance(value, str), f"{name} must be text")
    need(allow_empty or value.strip() != "", f"{name} is empty")
    need(len(value) <= limit, f"{name} is too long ({len(value)} characters, at most {limit})")
    return value


def annotator(value: Any) -> str:
    """An annotator name: 1-200 printable characters; the empty name reads as `anonymous`."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return "anonymous"
    need(isinstance(value, str), "annotator must be text")
    value = value.strip()
    need(len(value) <= MAX_NAME, f"annotator name is too long (at most {MAX_NAME} characters)")
    need(value.isprintable(), "annotator name has control characters")
    return value


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
    return integer(value, name, 0, 2**31 - 1)
