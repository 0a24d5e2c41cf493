"""Store tests, each on SQLite and on PostgreSQL (skipped, with the reason, when the server cannot be reached)."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest

from reasoning.tree import NODE_DEFAULTS, ReasoningTree
from reasoning.types import Problem, Step
from storage import AutoLabel, ConflictError, NotFoundError, Store
from storage.engine import default_url

pytestmark = pytest.mark.database
ROOT_DIR = Path(__file__).resolve().parents[1]


def small_tree(text: str = "What is 2 + 3 * 4?") -> ReasoningTree:
    t = ReasoningTree(Problem("p-" + uuid.uuid4().hex[:8], text, "14"))
    a = t.add_child("0", Step("First 3 * 4 = 12.", factor="compute", tokens=7), prior=0.4,
                    factor_prior={"compute": 0.4, "verify": 0.6}, provenance={"model": "tiny", "seed": 3})
    t.add_child(a, Step("Then 2 + 12 = 14.", factor="compute", terminal=True, answer="14"), meta={"k": [1, 2]})
    t.add_child("0", Step("2 + 3 = 5.", factor="compute"))
    t.node(a)["score"] = 0.75
    t.backup(a, 0.5)
    return t


def _without_versions(d: dict) -> dict:
    return {**d, "nodes": [{k: v for k, v in n.items() if k != "version"} for n in d["nodes"]]}


# -- trees -----------------------------------------------------------------------------------------
def test_tree_round_trip_keeps_every_node_attribute(store):
    tree = small_tree()
    sid = store.create_session(tree, name="arith", config={"algorithm": "mcts"}, provenance={"sha256": "ab"})
    loaded = store.load_tree(sid)
    assert _without_versions(loaded.to_dict()) == tree.to_dict()
    assert set(NODE_DEFAULTS) <= set(loaded.node("0.0"))
    assert loaded.node("0.0")["factor_prior"] == {"compute": 0.4, "verify": 0.6}
    assert loaded.node("0.0")["version"] == 1
    info = store.session(sid)
    assert (info.name, info.config, info.provenance) == ("arith", {"algorithm": "mcts"}, {"sha256": "ab"})
    assert info.nodes == 4


def test_save_tree_adds_nodes_and_stats_but_keeps_user_state(store):
    tree = small_tree()
    sid = store.create_session(tree)
    store.prune(sid, "0.1", "alice")
    tree.backup("0.0.0", 1.0)
    new = tree.add_child("0.1", Step("5 * 4 = 20."))
    assert store.save_tree(sid, tree) == 1
    loaded = store.load_tree(sid)
    assert loaded.node("0.0")["visits"] == 2 and loaded.node(new)["text"] == "5 * 4 = 20."
    assert loaded.node("0.1")["pruned"] is True  # the search's copy did not overwrite the user's prune
    assert loaded.add_child("0.1", Step("x")) == "0.1.1"  # child ids are never reused


def test_add_nodes_logs_the_action_and_undo_removes_them(store):
    tree = small_tree()
    sid = store.create_session(tree)
    new = tree.add_child("0", Step("3 * 4 + 2 = 14."), origin="edited", meta={"edited_from": "0.0"})
    assert store.add_nodes(sid, tree, [new], kind="edit", annotator="bob", action_id="e1") == [new]
    assert store.add_nodes(sid, tree, [new], kind="edit", annotator="bob", action_id="e1") == [new]
    assert store.load_tree(sid).node(new)["origin"] == "edited"
    assert [(a.kind, a.node_id) for a in store.actions(sid)] == [("edit", "0.0")]  # the edited step
    done = store.undo(sid, "bob")
    assert (done.kind, done.node_id, done.payload["removed"]) == ("edit", "0.0", [new])
    assert new not in store.load_tree(sid)


def test_undoing_an_expansion_removes_its_children_and_keeps_ratings_elsewhere(store):
    tree = small_tree()
    sid = store.create_session(tree)
    store.rate(sid, "0.0", "ann", 1)
    kids = [tree.add_child("0.0", Step(f"step {i}", "compute")) for i in range(3)]
    store.add_nodes(sid, tree, kids, kind="expand", annotator="ann")
    assert store.actions(sid)[-1].node_id == "0.0"  # the expanded node, not its first new child
    store.rate(sid, kids[1], "carol", -1)  # someone else's label on one new child
    store.set_auto_labels(sid, [AutoLabel(kids[0], "rollout", 4, 2, 0.5, True)])
    done = store.undo(sid, "ann")
    assert (done.kind, done.node_id) == ("expand", "0.0")
    assert done.payload["removed"] == [kids[0], kids[2]] and done.payload["hidden"] == [kids[1]]
    after = store.load_tree(sid)
    assert kids[0] not in after and kids[2] not in after and after.node(kids[1])["pruned"] is True
    assert {(a.node_id, a.annotator, a.rating) for a in store.annotations(sid)} == {("0.0", "ann", 1),
                                                                                  (kids[1], "carol", -1)}
    assert store.auto_labels(sid) == []
    assert after.add_child("0.0", Step("again")) not in kids  # ids are never reused


# -- ratings, conflicts, idempotency, undo ---------------------------------------------------------
def test_rate_retry_with_the_same_action_id_has_one_effect(store):
    sid = store.create_session(small_tree())
    first = store.rate(sid, "0.0", "alice", 1, note="ok", seconds=4.5, action_id="a-1")
    again = store.rate(sid, "0.0", "alice", -1, action_id="a-1")
    assert again == first and first.rating == 1 and first.seconds == 4.5
    assert [a.rating for a in store.annotations(sid)] == [1]
    assert len(store.actions(sid)) == 1


def test_an_action_id_reused_for_another_action_is_a_conflict_not_a_silent_success(store):
    sid = store.create_session(small_tree())
    store.rate(sid, "0.0", "alice", 1, note="private", action_id="1")
    with pytest.raises(ConflictError, match="already used for another action"):
        store.rate(sid, "0.1", "bob", -1, action_id="1")
    with pytest.raises(ConflictError, match="already used for another action"):
        store.prune(sid, "0.1", "bob", action_id="1")
    assert [(a.annotator, a.node_id, a.rating) for a in store.annotations(sid)] == [("alice", "0.0", 1)]
    assert store.load_tree(sid).node("0.1")["pruned"] is False


def test_rating_siblings_at_once_is_one_transaction_and_one_undo(store):
    sid = store.create_session(small_tree())
    store.rate(sid, "0.0", "dana", 0)
    with pytest.raises(NotFoundError):
        store.rate_many(sid, {"0.0": 1, "0.99": -1}, "dana")  # one bad node: nothing of the batch is kept
    assert [(a.node_id, a.rating) for a in store.annotations(sid)] == [("0.0", 0)]
    saved = store.rate_many(sid, {"0.0": 1, "0.1": -1}, "dana")
    assert sorted((a.node_id, a.rating) for a in saved) == [("0.0", 1), ("0.1", -1)]
    store.undo(sid, "dana")
    assert [(a.node_id, a.rating) for a in store.annotations(sid)] == [("0.0", 0)]


def test_two_conflicting_edits_of_one_node_raise(store):
    sid = store.create_session(small_tree())
    seen = store.node_version(sid, "0.1")  # both annotators loaded the node at this version
    store.prune(sid, "0.1", "alice", expected_version=seen)
    with pytest.raises(ConflictError):
        store.prune(sid, "0.1", "bob", pruned=False, expected_version=seen)
    assert store.load_tree(sid).node("0.1")["pruned"] is True
    mine = store.rate(sid, "0.0", "carol", 1, expected_version=0)  # two tabs of one annotator
    store.rate(sid, "0.0", "carol", -1, expected_version=mine.version)
    with pytest.raises(ConflictError):
        store.rate(sid, "0.0", "carol", 0, expected_version=mine.version)
    assert [a.rating for a in store.annotations(sid)] == [-1]


def test_undo_reverts_the_annotators_latest_action_of_each_kind(store):
    sid = store.create_session(small_tree())
    store.rate(sid, "0.0", "alice", 1)
    store.rate(sid, "0.0", "alice", -1, unsure=True)
    store.rate(sid, "0.0", "bob", 0)
    store.prune(sid, "0.1", "alice")
    store.rename_session(sid, "renamed", "alice")
    assert store.undo(sid, "alice").kind == "rename" and store.session(sid).name == ""
    assert store.undo(sid, "alice").kind == "prune" and not store.load_tree(sid).node("0.1")["pruned"]
    store.undo(sid, "alice")
    left = {(a.annotator, a.rating, a.unsure) for a in store.annotations(sid)}
    assert left == {("alice", 1, False), ("bob", 0, False)}
    store.undo(sid, "alice")
    assert [a.annotator for a in store.annotations(sid)] == ["bob"]
    assert store.undo(sid, "alice") is None
    kinds = [(a.kind, a.undone) for a in store.actions(sid, "alice")]
    assert kinds[:5] == [("rate", True), ("rate", True), ("prune", True), ("rename", True), ("undo", False)]


def test_unknown_node_and_bad_rating_change_nothing(store):
    sid = store.create_session(small_tree())
    before = store.counts()
    with pytest.raises(NotFoundError):
        store.rate(sid, "0.9", "alice", 1)
    with pytest.raises(ValueError, match="rating must be -1, 0 or 1, got 7"):
        store.rate(sid, "0.0", "alice", 7)
    with pytest.raises(NotFoundError):
        store.load_tree(sid + 100)
    assert store.counts() == before


# -- sessions and labels ---------------------------------------------------------------------------
def test_sessions_list_rename_soft_delete_and_restore(store):
    a = store.create_session(small_tree("Add 2 and 3."), name="first")
    b = store.create_session(small_tree("Multiply 4 by 5."), name="second")
    assert [s.id for s in store.list_sessions()] == [b, a]
    assert [s.id for s in store.list_sessions("MULTIPLY")] == [b]
    store.rename_session(a, "arith", "alice")
    store.delete_session(b, "alice")
    assert [s.name for s in store.list_sessions()] == ["arith"]
    assert [s.id for s in store.list_sessions(include_deleted=True)] == [b, a]
    assert [t.session_id for t in store.labeled_trees()] == [a]
    assert store.restore_session(b, "alice").deleted is False
    with pytest.raises(ConflictError):
        store.rename_session(a, "late", "bob", expected_version=1)


def test_auto_labels_are_upserted_per_node_and_method(store):
    sid = store.create_session(small_tree())
    store.set_auto_labels(sid, [AutoLabel("0.0", "rollout", 8, 6, 0.75, True)])
    store.set_auto_labels(sid, [AutoLabel("0.0", "rollout", 16, 4, 0.25, True), AutoLabel("0.1", "rollout", 8, 0)])
    assert store.auto_labels(sid) == [AutoLabel("0.0", "rollout", 16, 4, 0.25, True), AutoLabel("0.1", "rollout", 8, 0)]
    assert store.annotations(sid) == []  # auto labels live apart from human ones


def test_schema_comes_from_alembic_and_reopening_is_a_no_op(db_url):
    with Store(db_url) as s:
        sid = s.create_session(small_tree())
    with Store(db_url) as s, s.read() as session:
        assert session.connection().exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == "0007"
        assert s.session(sid).nodes == 4


def test_sqlite_connections_are_durable(tmp_path):
    with Store(f"sqlite:///{tmp_path / 'x.db'}") as s, s.engine.connect() as conn:
        pragma = {p: conn.exec_driver_sql(f"PRAGMA {p}").scalar() for p in
                  ("journal_mode", "foreign_keys", "synchronous", "busy_timeout")}
    assert pragma == {"journal_mode": "wal", "foreign_keys": 1, "synchronous": 2, "busy_timeout": 30000}


def test_models_and_migrations_agree(store):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from storage.models import Base

    with store.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


def test_default_database_lives_in_the_data_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("REASONING_DATA_DIR", str(tmp_path / "data"))
    assert default_url() == f"sqlite:///{tmp_path / 'data' / 'explorer.db'}"
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@h/db")
    assert default_url() == "postgresql://u@h/db"


# -- concurrency and durability ----------------------------------------------------------------------
@pytest.mark.slow
def test_sixteen_threads_of_ratings_lose_none(store):
    tree = ReasoningTree(Problem("p-many", "Rate many steps."))
    nodes = [tree.add_child("0", Step(f"step {i}")) for i in range(40)]
    sid = store.create_session(tree)
    errors = []

    def annotate(k: int) -> None:
        try:
            for i in range(200):
                store.rate(sid, nodes[i % 40], f"t{k}", (i // 40) % 3 - 1, action_id=f"{sid}-{k}-{i}")
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=annotate, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(store.actions(sid)) == 16 * 200
    final = {(a.annotator, a.node_id): (a.rating, a.version) for a in store.annotations(sid)}
    assert final == {(f"t{k}", n): (0, 5) for k in range(16) for n in nodes}  # 5 writes each: -1, 0, 1, -1, 0


WRITER = textwrap.dedent("""
    import sys
    from storage import Store
    store = Store(sys.argv[1])
    for i in range(100000):
        store.rate(int(sys.argv[2]), "0.0", f"w{i}", 1, action_id=f"ack-{sys.argv[2]}-{i}")
        print(f"ack-{sys.argv[2]}-{i}", flush=True)
""")


@pytest.mark.slow  # kills writer subprocesses
def test_killed_writer_keeps_every_acknowledged_rating(db_url, tmp_path):
    if db_url.startswith("sqlite"):
        db_url = f"sqlite:///{tmp_path / 'durable.db'}"  # the real disk, not tmpfs
    with Store(db_url) as s:
        sid = s.create_session(small_tree())
    proc = subprocess.Popen([sys.executable, "-c", WRITER, db_url, str(sid)], cwd=ROOT_DIR, stdout=subprocess.PIPE,
                            text=True)
    acked = []
    deadline = time.monotonic() + 60
    while len(acked) < 40 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        acked.append(line.strip())
    os.kill(proc.pid, signal.SIGKILL)
    acked += [line.strip() for line in proc.stdout.read().splitlines() if line.strip()]
    proc.wait()
    assert len(acked) >= 40, "the writer stopped before it was killed"
    with Store(db_url) as s:
        stored = {a.action_id for a in s.actions(sid)}
        raters = {a.annotator for a in s.annotations(sid)}
    assert set(acked) <= stored
    assert {f"w{a.rsplit('-', 1)[1]}" for a in acked} <= raters
    if db_url.startswith("sqlite"):
        with sqlite3.connect(db_url.removeprefix("sqlite:///")) as con:
            assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_auto_labels_keep_provenance_and_an_older_database_migrates(db_url):
    """A database made at revision 0001 with an auto label upgrades to 0002 and keeps the label."""
    from alembic import command
    from alembic.config import Config

    from storage.engine import MIGRATIONS, make_engine

    engine = make_engine(db_url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
    engine.dispose()
    with Store(db_url, migrate=False) as old, old.engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO problems (id, text, domain, created) VALUES ('p', 'q', 'math', '2026-01-01')")
        conn.exec_driver_sql("INSERT INTO sessions (id, name, problem_id, deleted, version, created, updated) "
                             "VALUES (7, '', 'p', false, 1, '2026-01-01', '2026-01-01')")
        conn.exec_driver_sql("INSERT INTO nodes (session_id, node_id, depth, text, origin, visits, value_sum, "
                             "terminal, pruned, tokens, created, iteration, next_child, version) "
                             "VALUES (7, '0', 0, 'q', 'root', 0, 0, false, false, 0, 0, 0, 0, 1)")
        conn.exec_driver_sql("INSERT INTO auto_labels (session_id, node_id, method, rollouts, successes, updated) "
                             "VALUES (7, '0', 'rollout', 4, 3, '2026-01-02')")
    with Store(db_url) as s:
        (label,) = s.auto_labels(7)
        assert (label.rollouts, label.successes, label.provenance) == (4, 3, None) and label.created is not None
        sid = s.create_session(small_tree())
        prov = {"generator": {"name": "g", "weights_sha256": {"m": "ab"}}, "rollouts": {"n": 8}}
        s.set_auto_labels(sid, [AutoLabel("0.0", "first_error", 8, 0, 0.0, False, prov)])
        (got,) = s.auto_labels(sid)
        assert got.method == "first_error" and got.provenance == prov and got.created is not None
