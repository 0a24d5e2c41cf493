"""Shared fixtures and test tiers.

Tiers (markers, see pyproject.toml): `unit` (pure code), `model` (loads a model), `database` (opens a database),
`browser` (headless Chromium); `postgres` (the server at 127.0.0.1:5432), `slow` and `vllm` (real vLLM servers,
always also slow) select further. A test gets its tier from the fixtures it uses
(`tiny` or `demo_models`: model; `db_url` or `store`: database; `browser` or `page`: browser) or from its module's
`pytestmark`; a test with none of them is a unit test.

    ./dev.sh test --fast      unit and SQLite database tests, none marked slow (under a minute on an idle machine)
    ./dev.sh test             everything (CI)

`--fast` is `-m "not (model or browser or postgres or slow)"`, and it does not even import the test modules whose
`pytestmark` says model or browser (importing torch, transformers and gradio alone takes seconds).
"""
from __future__ import annotations

import ast
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

PG_DATABASE = "postgresql://postgres@127.0.0.1:5432/test"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIER_FIXTURES = {
    "model": {"tiny", "demo_models"},
    "database": {"db_url", "store"},
    "browser": {"browser", "page"},
}
# The fast selection (`./dev.sh test --fast`): everything that loads no model, drives no browser and needs no
# PostgreSQL server.
FAST = "not (model or browser or postgres or slow)"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--fast", action="store_true",
                     help=f"only the fast tiers: -m '{FAST}', without importing model or browser test modules")


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("fast") and not config.option.markexpr:
        config.option.markexpr = FAST


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if config.getoption("fast") and collection_path.suffix == ".py" and _module_tiers(collection_path) & {"model",
                                                                                                           "browser"}:
        return True
    return None


def _module_tiers(path: Path) -> set[str]:
    """The tiers a test module's top-level `pytestmark` names, read from its source without importing it."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets):
            marks = {a.attr for a in ast.walk(node.value) if isinstance(a, ast.Attribute)}
            return marks & set(TIER_FIXTURES)
    return set()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        for tier, names in TIER_FIXTURES.items():
            if fixtures & names and not item.get_closest_marker(tier):
                item.add_marker(tier)
        if not any(item.get_closest_marker(t) for t in TIER_FIXTURES):
            item.add_marker("unit")


# -- models ----------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Every tiny model (tests/tiny_models.py), built once per session from configs: no download."""
    from tiny_models import build_all

    return build_all(tmp_path_factory.getbasetemp() / "tiny-models")


@pytest.fixture(scope="session")
def demo_models() -> tuple[Any, Any]:
    """The committed demo generator and PRM, loaded once per session on the CPU."""
    from ui.testing import demo_models as load

    return load()


# -- databases -------------------------------------------------------------------------------------
def _pg_scratch() -> Iterator[str]:
    """A scratch database created from `test` (else a scratch schema in it); yields its URL, then drops it."""
    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(PG_DATABASE, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 is unreachable: {str(exc).strip().splitlines()[0]}")
    name = f"test_{uuid.uuid4().hex[:12]}"
    try:
        admin.execute(f'CREATE DATABASE "{name}"')
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except psycopg.errors.InsufficientPrivilege:
        admin.execute(f'CREATE SCHEMA "{name}"')
        yield f"{PG_DATABASE.replace('postgresql://', 'postgresql+psycopg://')}?options=-csearch_path%3D{name}"
        admin.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        admin.close()


def _fast_dir(tmp_path: Path) -> Path:
    """tmpfs where there is one: these tests check correctness; the durability test uses the real disk."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        d = shm / f"rte-test-{uuid.uuid4().hex[:12]}"
        d.mkdir()
        return d
    return tmp_path


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh empty database URL: each test that uses it runs on SQLite and on PostgreSQL."""
    if request.param == "postgres":
        yield from _pg_scratch()
        return
    d = _fast_dir(tmp_path)
    yield f"sqlite:///{d / 'explorer.db'}"
    if d != tmp_path:
        for f in d.iterdir():
            f.unlink()
        d.rmdir()


@pytest.fixture
def store(db_url: str) -> Iterator[Any]:
    from storage import Store

    s = Store(db_url)
    yield s
    s.close()


# -- the served app and a browser --------------------------------------------------------------------
@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, demo_models: tuple[Any, Any]) -> Iterator[tuple[str, Any]]:
    """The explorer served in this process on the demo models and a fresh SQLite database: (url, store)."""
    from storage import Store
    from ui.testing import serve

    generator, scorer = demo_models
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('app') / 'explorer.db'}")
    with serve(generator=generator, scorer=scorer, store=store) as url:
        yield url, store
    store.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright (never a downloaded browser); skips when either is missing."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (apt-get install chromium chromium-driver)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page (1500x1100, downloads on) that dismisses dialogs and records their messages in `page.dialogs`."""
    context = browser.new_context(viewport={"width": 1500, "height": 1100}, accept_downloads=True)
    pg = context.new_page()
    pg.dialogs = []
    pg.on("dialog", lambda d: (pg.dialogs.append(d.message), d.dismiss()))
    yield pg
    context.close()
