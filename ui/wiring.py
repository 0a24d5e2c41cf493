"""What every page shares: the components that hold ids, error translation, and the annotator's identity."""
from __future__ import annotations

import functools
import html
import inspect
import itertools
import logging
import threading
import uuid
from dataclasses import dataclass
from typing import Any

import gradio as gr
from cachetools import LRUCache

from . import validate as v
from .roles import Access

try:  # storage errors are shown to the user like validation errors
    from storage import StorageError
except ImportError:  # pragma: no cover - storage is part of the app
    StorageError = RuntimeError  # type: ignore[misc,assignment]

USER_ERRORS = (v.UserError, StorageError, ValueError, LookupError)
log = logging.getLogger(__name__)


@dataclass
class Shared:
    """Components that several pages read or write. `session` and `node` are gr.State holding ids only."""

    annotator: gr.Textbox
    session: gr.State
    node: gr.State
    color_by: gr.Radio
    tabs: gr.Tabs
    plot: gr.Plot | None = None
    problem_pick: gr.Dropdown | None = None  # the Explore page's problem-set picker (refreshed after an import)


class Newest:
    """The newest of a browser session's requests that draw the same outputs wins. Gradio runs two listeners' events
    at once, so a slow one (a tab's first load) can answer after a later one (a filter ticked while it worked) and draw
    what the page no longer asks for; an answer overtaken by a newer request of the same session is dropped
    (`gr.skip()` for every output) instead. What a handler stored (a rating) stays stored; only its drawing is
    dropped, and the newer answer draws the stored state."""

    def __init__(self, width: int, sessions: int = 4096):
        self.width = width
        self._latest: LRUCache[str, int] = LRUCache(maxsize=sessions)
        self._tickets = itertools.count(1)
        self._lock = threading.Lock()

    def __call__(self, fn):
        @functools.wraps(fn)
        def newest(*args, **kwargs):
            request = next((a for a in (*args, *kwargs.values()) if isinstance(a, gr.Request)), None)
            key = getattr(request, "session_hash", None)
            with self._lock:
                ticket = next(self._tickets)
                if key:
                    self._latest[key] = ticket
            out = fn(*args, **kwargs)
            with self._lock:
                overtaken = bool(key) and self._latest.get(key, ticket) != ticket
            return (gr.skip(),) * self.width if overtaken else out

        return newest


def guarded(fn):
    """Turn every error into one clear gr.Error line (in the page's toast and the API reply): a message the user can
    act on for the errors they can fix, and for anything else a short line with an id the server's log holds the
    traceback under (never Gradio's opaque "upstream app has raised an exception")."""
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen_wrapper(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except gr.Error as exc:  # written for the user: no traceback in the server log
                exc.print_exception = False
                raise
            except Exception as exc:  # noqa: BLE001 - every failure becomes one line; tracebacks go to the log
                raise _user_error(fn, exc) from None

        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error as exc:  # as above
            exc.print_exception = False
            raise
        except Exception as exc:  # noqa: BLE001 - as above
            raise _user_error(fn, exc) from None

    return wrapper


def _user_error(fn: object, exc: Exception) -> gr.Error:
    if isinstance(exc, USER_ERRORS):
        return gr.Error(_message(exc), print_exception=False)
    ref = uuid.uuid4().hex[:8]
    log.error("%s failed (ref %s)", getattr(fn, "__name__", fn), ref, exc_info=exc)
    return gr.Error(f"the server could not do this ({type(exc).__name__}; ref {ref} in the server log)",
                    print_exception=False)


def _message(exc: Exception) -> str:
    """The error's first line, HTML-escaped: Gradio renders toast messages as HTML, and messages echo user input."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, KeyError) and text.startswith(("'", '"')):
        text = text[1:-1]
    return html.escape(text.strip().splitlines()[0] if text.strip() else text, quote=False)


def who(annotator: Any, request: gr.Request | None) -> str:
    """The logged-in user when the app has a login, else the name typed in the page (`anonymous` when blank)."""
    user = getattr(request, "username", None) if request is not None else None
    return user if user else v.annotator(annotator)


def user_of(request: gr.Request | None) -> str | None:
    """The logged-in user's name; None in an app without a login."""
    return (getattr(request, "username", None) or None) if request is not None else None


def require(access: Access, request: gr.Request | None, action: str) -> None:
    """The one check of every endpoint and page handler that changes something: raise `roles.Refused` (one line,
    "deleting a session needs the admin role; alice is an annotator") unless the logged-in user's role (from the
    auth table the app was built with) allows `action`; before anything is read or written."""
    access.check(user_of(request), action)
