"""Database engines: the default SQLite location, durable SQLite settings, and Alembic upgrades at startup."""
from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

MIGRATIONS = Path(__file__).parent / "migrations"
DEFAULT_DATA_DIR = Path.home() / ".local" / "share" / "reasoning-explorer"
SQLITE_BUSY_MS = 30_000


def default_url() -> str:
    """`DATABASE_URL`, else SQLite at `$REASONING_DATA_DIR/explorer.db` (a folder outside any served path)."""
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    data_dir = Path(os.environ.get("REASONING_DATA_DIR") or DEFAULT_DATA_DIR).expanduser()
    return f"sqlite:///{data_dir / 'explorer.db'}"


def normalize_url(url: str) -> str:
    """Plain `postgresql://` URLs use psycopg 3, the driver this project installs."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite gets WAL, foreign keys, synchronous=FULL, a busy timeout and BEGIN IMMEDIATE."""
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_size=8, max_overflow=16)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_MS / 1000}, pool_size=8, max_overflow=16)
    _durable_sqlite(engine)
    return engine


def _durable_sqlite(engine: Engine) -> None:
    """SQLAlchemy's documented pysqlite recipe: we emit BEGIN ourselves, IMMEDIATE for writes."""

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # pysqlite must not begin transactions on its own
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
        cur.close()

    @event.listens_for(engine, "begin")
    def on_begin(conn):
        # Writers take the lock up front, so two writers never deadlock upgrading a read lock; readers don't.
        conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get("readonly") else "BEGIN IMMEDIATE")


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest migration (Alembic `upgrade head`, run in-process)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":  # two processes starting at once: one migrates, one waits
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(726172)")
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
