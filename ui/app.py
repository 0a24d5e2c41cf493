"""The explorer app: builds the Blocks (pages + API endpoints) and launches it. `app.py serve` calls `launch`."""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gradio as gr

from reasoning.factors import Catalog, load_catalog
from reasoning.limits import MAX_IMPORT_BYTES
from reasoning.search.config import DEFAULT_MAX_BUDGET

from . import api
from .figure import COLOR_BY
from .login import LoginThrottleMiddleware, ThrottlePolicy
from .pages import analytics, data, explore, review, runs, sessions
from .roles import DEFAULT_ROLE, Access, parse_role
from .service import Explorer
from .services.models import ModelLoader, load_with_backends
from .wiring import Shared

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
TITLE = "Reasoning tree explorer"
NAME_KEY = "rte-annotator-name"  # the key the browser's copy of the annotator name is kept under
ENGINE: Explorer | None = None  # the module-level engine (models, store, live searches) of the running app
DEFAULT_CONCURRENCY = 4  # page events without their own limit; the API's cheap actions and model calls set theirs


def load_auth_file(path: str | Path) -> list[tuple[str, str, str]]:
    """`username:password[:role]` lines (blank lines and `#` comments skipped) for Gradio's login; role is admin,
    annotator or viewer (ui/roles.py), annotator when left out. A password may not contain ':' then."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ValueError(f"cannot read auth file {path}: {exc.strerror} (write username:password lines there, or "
                         "serve with --no-auth)") from None
    rows = []
    for i, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, rest = line.partition(":")
        password, _, role = rest.partition(":")
        if not sep or not user.strip() or not password:
            raise ValueError(f"{path}:{i}: expected username:password[:role]")
        rows.append((user.strip(), password, parse_role(role, f"{path}:{i}") if role.strip() else DEFAULT_ROLE))
    if not rows:
        raise ValueError(f"auth file {path} has no username:password lines")
    return rows


def build_app(
    *,
    generator: Any,
    scorer: Any,
    store: Any,
    catalog: Catalog | None = None,
    generator_dir: str | Path | None = None,
    prm_dir: str | Path | None = None,
    auth: Sequence[tuple[str, ...]] | None = None,
    max_budget: int | None = None,
    loader: ModelLoader | None = None,
    login_policy: ThrottlePolicy | None = None,
) -> tuple[gr.Blocks, dict[str, Any]]:
    """The Blocks and the keyword arguments its `launch()` needs (css, js, auth). `auth`: (user, password) or
    (user, password, role) rows; with none, everyone is an admin (a local single-user app)."""
    global ENGINE
    ENGINE = engine = Explorer(
        generator, scorer, store, catalog or load_catalog(),
        generator_dir=str(generator_dir or _model_path(generator)), prm_dir=str(prm_dir or _model_path(scorer)),
        max_budget=max_budget or DEFAULT_MAX_BUDGET, loader=loader or load_with_backends,
        access=Access.from_auth(auth),
    )
    with gr.Blocks(title=TITLE) as demo:
        api.register(engine)  # first, so the public names win over the page events' (undocumented) ones
        with gr.Row(equal_height=True, elem_id="header"):
            gr.Markdown(f"## {TITLE}", elem_id="title")
            # no `info` line: the header stays one short row, so the tree and the rating panel fit one screen
            annotator = gr.Textbox(label="your name (annotator)", elem_id="annotator", scale=1, min_width=200,
                                   placeholder="kept in this browser, credited with every rating; none: 'anonymous'",
                                   interactive=not auth,
                                   max_lines=1)
            # the logged-in user's role (read-only); none without a login (everyone may do everything there)
            role = gr.Textbox(label="role", elem_id="role", value="" if auth else "admin (no login)", scale=0,
                              min_width=110, interactive=False, max_lines=1, visible=bool(auth))
            color_by = gr.Radio(list(COLOR_BY), value="value", label="colour by", elem_id="colour-by", scale=2,
                                min_width=420)
        # The name is not a secret, and a random key (Gradio's default) changes at every start of the app, which
        # made the saved name unreadable after a restart: the ratings then went to "anonymous".
        saved_name = gr.BrowserState("", storage_key="rte-annotator", secret=NAME_KEY)
        session, node = gr.State(""), gr.State(None)  # ids only; created outside the Tabs so they are no tab
        with gr.Tabs() as tabs:
            shared = Shared(annotator, session, node, color_by, tabs)
            with gr.Tab("Explore", id="explore-tab"):
                explore.build_page(engine, shared)
            with gr.Tab("Sessions", id="sessions-tab"):
                sessions.build_page(engine, shared)
            with gr.Tab("Review queue", id="review-tab") as review_tab:
                review.build_page(engine, shared, review_tab)
            with gr.Tab("Runs", id="runs-tab") as runs_tab:
                runs.build_page(engine, shared, runs_tab)
            with gr.Tab("Analytics", id="stats"):
                analytics.build_page(engine, shared)
            with gr.Tab("Export / import", id="data-tab"):
                data.build_page(engine, shared)

        def restore_name(saved: str, request: gr.Request):
            """The login name, else the name this browser kept; with neither, the box is left as it is (an empty
            answer would wipe a name typed while the page loaded, and its ratings would go to 'anonymous')."""
            user = getattr(request, "username", None)
            return user or saved or gr.update()

        demo.load(restore_name, [saved_name], [annotator], api_visibility="undocumented", queue=False)

        def show_role(request: gr.Request):
            return engine.access.role(getattr(request, "username", None))

        if auth:
            demo.load(show_role, None, [role], api_visibility="undocumented", queue=False)
        if shared.problem_pick is not None:  # the problems imported since the app started, on every page open
            demo.load(lambda: data.problem_pick(engine), None, [shared.problem_pick], api_visibility="undocumented")
        annotator.change(lambda name: name, [annotator], [saved_name], api_visibility="undocumented", queue=False)
    api.name_missing_inputs(demo)  # a raw REST call short of inputs: one line, not {"error": null}
    launch_kwargs: dict[str, Any] = {
        "css_paths": [STATIC / "app.css"],
        "js": (STATIC / "app.js").read_text(encoding="utf-8"),
        "footer_links": ["api"],
        "max_file_size": MAX_IMPORT_BYTES,  # an upload larger than an import may be is refused before it is stored
    }
    if auth:
        from starlette.middleware import Middleware

        from storage.logins import LoginBook

        launch_kwargs["auth"] = [(row[0], row[1]) for row in auth]
        launch_kwargs["auth_message"] = "Log in to label reasoning traces."
        # repeated wrong passwords slow down, then lock out, by (user, address), by address and, slower, by user;
        # kept in the database, so a restart or another server on it keeps the lockouts (ui/login.py)
        throttle = Middleware(LoginThrottleMiddleware, policy=login_policy or ThrottlePolicy(), book=LoginBook(store))
        launch_kwargs["app_kwargs"] = {"middleware": [throttle]}
    return demo, launch_kwargs


def launch(
    *,
    generator: Any,
    scorer: Any,
    store: Any,
    catalog: Catalog | None = None,
    host: str = "127.0.0.1",
    port: int = 7860,
    auth_file: str | Path | None = None,
    max_budget: int | None = None,
    generator_dir: str | Path | None = None,
    prm_dir: str | Path | None = None,
    loader: ModelLoader | None = None,
    **extra: Any,
) -> None:
    """Build the app and serve it until interrupted (blocks)."""
    auth = load_auth_file(auth_file) if auth_file else None
    demo, kwargs = build_app(generator=generator, scorer=scorer, store=store, catalog=catalog, auth=auth,
                             max_budget=max_budget, generator_dir=generator_dir, prm_dir=prm_dir,
                             loader=loader)
    configure_queue(demo)
    demo.launch(server_name=host, server_port=port, **kwargs, **extra)


def configure_queue(demo: gr.Blocks) -> gr.Blocks:
    """The queue every served app runs with (`launch`, and `ui.testing.serve` for tests and benchmarks).

    Gradio 6 rebuilds a pandas summary of its last 10,000 events after every event (`Queue.compute_analytics_summary`,
    recomputed every `GRADIO_ANALYTICS_CACHE_FREQUENCY` events, default 1) that nothing in this app reads: with 16
    annotators it was about a fifth of the server's CPU per rating and, holding the GIL, it stretched the rating
    transactions waiting on it. It is computed once per billion events instead, unless the environment asks otherwise
    (BENCHMARKS.md, "Annotators at speed")."""
    os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", str(10**9))
    return demo.queue(default_concurrency_limit=DEFAULT_CONCURRENCY)


def _model_path(model: Any) -> str:
    path = getattr(model, "path", None)
    return str(path) if path else ""
