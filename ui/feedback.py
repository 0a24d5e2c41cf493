"""Page events that report a user's mistake without breaking the page.

A Gradio event that raises gr.Error marks every one of its output components with a red "Error" badge that hides
the component and blocks clicks until it is closed. For the Explore page's events that is wrong: a mistake such as
saving an empty ratings table must leave the tree, the inspector and the trace as they were. `reported` runs the
event; on a user error every output is left alone (gr.skip) except the status box, which says what is wrong, and a
warning toast says it too. The API endpoints keep gr.Error (a client wants the error).
"""
from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import gradio as gr

from .wiring import USER_ERRORS, _message

ERROR_PREFIX = "⚠ "


def error_outputs(message: str, n_outputs: int, message_at: int | None) -> tuple[Any, ...]:
    """All outputs skipped but the message box, which gets `⚠ message`; shows a warning toast too."""
    gr.Warning(message)
    out: list[Any] = [gr.skip()] * n_outputs
    if message_at is not None:
        out[message_at] = ERROR_PREFIX + message
    return out[0] if n_outputs == 1 else tuple(out)


def reported(n_outputs: int, message_at: int | None = None) -> Callable:
    """Decorator for a page event with `n_outputs` outputs whose output `message_at` is a status box."""

    def wrap(fn: Callable) -> Callable:
        if inspect.isgeneratorfunction(fn):

            @functools.wraps(fn)
            def gen(*args: Any, **kwargs: Any):
                try:
                    yield from fn(*args, **kwargs)
                except USER_ERRORS as exc:
                    yield error_outputs(_message(exc), n_outputs, message_at)
                except gr.Error as exc:
                    yield error_outputs(str(exc.message), n_outputs, message_at)

            return gen

        @functools.wraps(fn)
        def plain(*args: Any, **kwargs: Any):
            try:
                return fn(*args, **kwargs)
            except USER_ERRORS as exc:
                return error_outputs(_message(exc), n_outputs, message_at)
            except gr.Error as exc:
                return error_outputs(str(exc.message), n_outputs, message_at)

        return plain

    return wrap
