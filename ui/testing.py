"""Helpers for tests and benchmarks: serve the app in this process on a free port, with a throwaway database."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from reasoning.http_client import free_port

from .app import build_app, configure_queue


@contextlib.contextmanager
def serve(*, generator: Any, scorer: Any, store: Any, port: int | None = None, **kwargs: Any) -> Iterator[str]:
    """Launch the app in a background thread (on `port`, else a free one) and yield its URL; closes it afterwards."""
    demo, launch_kwargs = build_app(generator=generator, scorer=scorer, store=store, **kwargs)
    configure_queue(demo)  # the queue `launch` serves with
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port or free_port(), quiet=True,
                            **launch_kwargs)
    try:
        yield url
    finally:
        demo.close()


def demo_models() -> tuple[Any, Any]:
    """The committed demo generator and PRM on the CPU: real models that load in about a second, for tests and
    benchmarks that serve the app. (Tiny random models are the tests' own business: tests/tiny_models.py.)"""
    from reasoning.backends import DEMO_GENERATOR_DIR, DEMO_PRM_DIR, load_generator, load_scorer

    return load_generator(DEMO_GENERATOR_DIR, device="cpu"), load_scorer(DEMO_PRM_DIR, device="cpu")


def tiny_or_demo_models(_tmp: Path) -> tuple[Any, Any]:
    """The former name of `demo_models` (it fell back to tiny models from tests/ before the demo models were
    committed), kept while branches that call it are merged; use `demo_models()`."""
    return demo_models()
