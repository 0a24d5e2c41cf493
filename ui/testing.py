"""Helpers for tests and benchmarks: serve the app in this process on a free port, with a throwaway database."""
from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .app import build_app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(*, generator: Any, scorer: Any, store: Any, **kwargs: Any) -> Iterator[str]:
    """Launch the app in a background thread and yield its URL; closes it afterwards."""
    demo, launch_kwargs = build_app(generator=generator, scorer=scorer, store=store, **kwargs)
    demo.queue(default_concurrency_limit=4)
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=free_port(), quiet=True,
                            **launch_kwargs)
    try:
        yield url
    finally:
        demo.close()


def tiny_or_demo_models(tmp: Path) -> tuple[Any, Any]:
    """The demo models when they are built, else tiny random ones from tests/tiny_models.py (CPU, seconds)."""
    from reasoning.backends import DEMO_GENERATOR_DIR, DEMO_PRM_DIR, load_generator, load_scorer

    if (DEMO_GENERATOR_DIR / "config.json").is_file() and (DEMO_PRM_DIR / "config.json").is_file():
        return load_generator(DEMO_GENERATOR_DIR, device="cpu"), load_scorer(DEMO_PRM_DIR, device="cpu")
    from tests.tiny_models import build_gpt2_lm, build_token_classification_prm

    gen_dir, prm_dir = tmp / "gen", tmp / "prm"
    if not (gen_dir / "config.json").is_file():
        build_gpt2_lm(gen_dir)
        build_token_classification_prm(prm_dir)
    return load_generator(gen_dir, device="cpu", max_step_tokens=24), load_scorer(prm_dir, device="cpu")
