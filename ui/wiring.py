"""What every page shares: the components that hold ids, error translation, and the annotator's identity."""
from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import Any

import gradio as gr

from . import validate as v

try:  # storage errors are shown to the user like validation errors
    from storage import StorageError
except ImportError:  # pragma: no cover - storage is part of the app
    StorageError = RuntimeError  # type: ignore[misc,assignment]

USER_ERRORS = (v.UserError, StorageError, ValueError, LookupError)


@dataclass
class Shared:
    """Components that several pages read or write. `session` and `node` are gr.State holding ids only."""

    annotator: gr.Textbox
    session: gr.State
    node: gr.State
    color_by: gr.Radio
    tabs: gr.Tabs
    plot: gr.Plot | None = None


def guarded(fn):
    """Turn the errors a user can fix into gr.Error (a clear message in the page or the API reply)."""
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen_wrapper(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except gr.Error:
                raise
            except USER_ERRORS as exc:
                raise gr.Error(_message(exc), print_exception=False) from None

        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except USER_ERRORS as exc:
            raise gr.Error(_message(exc), print_exception=False) from None

    return wrapper


def _message(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, KeyError) and text.startswith(("'", '"')):
        text = text[1:-1]
    return text


def who(annotator: Any, request: gr.Request | None) -> str:
    """The logged-in user when the app has a login, else the name typed in the page (`anonymous` when blank)."""
    user = getattr(request, "username", None) if request is not None else None
    return user if user else v.annotator(annotator)
