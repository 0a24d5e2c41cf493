"""Hardening of storage and imports (issue 16), each on SQLite and PostgreSQL: one text rule (NUL, lone surrogates)
for every write, session ids bounded, LIKE filters literal, bulk atomic imports, shared limits, and exports whose
data file and manifest are written both or neither."""
from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from sqlalchemy import event

from reasoning.limits import MAX_DB_INT, MAX_STEP_CHARS
from reasoning.problems import ProblemFormatError, read_problems
from reasoning.tree import ReasoningTree
from reasoning.types import Problem, Step
from storage import ImportFormatError, NotFoundError, StorageError, Store
from storage.export import manifest_path, write_export
from storage.importers import import_file

pytestmark = pytest.mark.database


@pytest.fixture
def store(db_url):
    s = Store(db_url)
    yield s
    s.close()


def tree(text: str = "What is 2 + 3?", step: str = "2 + 3 = 5.") -> ReasoningTree:
    t = ReasoningTree(Problem("p-" + uuid.uuid4().hex[:8], text, "5"))
    t.add_child("0", Step(step, factor="compute", terminal=True, answer="5"))
    return t


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


# -- case 4: NUL and lone surrogates are refused alike on both databases ---------------------------------
@pytest.mark.parametrize("bad", ["a\x00b", "a\ud800b"])
def test_text_the_databases_cannot_store_alike_is_refused_with_one_line(store, bad):
    with pytest.raises(StorageError, match="NUL|surrogate"):
        store.create_session(tree(text=f"What is {bad}?"))
    with pytest.raises(StorageError, match="text of step 0.0"):
        store.create_session(tree(step=bad))
    with pytest.raises(StorageError, match="session name"):
        store.create_session(tree(), name=bad)
    assert store.counts()["sessions"] == 0 and store.counts()["problems"] == 0
    sid = store.create_session(tree())
    with pytest.raises(StorageError, match="note"):
        store.rate(sid, "0.0", "alice", 1, note=bad)
    with pytest.raises(StorageError, match="session name"):
        store.rename_session(sid, bad, "alice")
    assert store.annotations(sid) == [] and store.session(sid).name == ""


def test_an_import_with_a_nul_in_a_step_names_the_line_and_stores_nothing(store, tmp_path):
    path = write_jsonl(tmp_path / "t.jsonl", [
        {"prompt": "What is 1 + 1?", "completions": ["1 + 1 = 2."], "labels": [True]},
        {"prompt": "What is 2 + 2?", "completions": ["2 + 2 \u0000= 4."], "labels": [True]},
    ])
    with pytest.raises(ImportFormatError, match=r"t.jsonl:2: field 'completions\[0\]' contains a NUL"):
        import_file(store, path, "trl")
    assert store.counts()["sessions"] == 0


# -- case 3: session ids out of range are "no such session", never a driver overflow -----------------------
@pytest.mark.parametrize("sid", [2**31, 2**63, 2**64 + 5, 0, -1])
def test_session_ids_beyond_the_integer_range_are_not_found(store, sid):
    with pytest.raises(NotFoundError, match="no session"):
        store.session(sid)
    with pytest.raises(NotFoundError, match="no session"):
        store.load_tree(sid)
    with pytest.raises(NotFoundError, match="no session"):
        store.labeled_trees([sid])
    with pytest.raises(NotFoundError, match="no session"):
        store.rate(sid, "0.0", "alice", 1)
    assert MAX_DB_INT == 2**31 - 1


# -- case 11: the session filter matches % and _ literally ----------------------------------------------
def test_the_session_filter_treats_percent_and_underscore_literally(store):
    plain = store.create_session(tree(), name="plain name")
    odd = store.create_session(tree(), name="50%_%off")
    back = store.create_session(tree(), name="a\\b")
    assert [s.id for s in store.list_sessions("%_%")] == [odd]
    assert [s.id for s in store.list_sessions("_")] == [odd]
    assert [s.id for s in store.list_sessions("\\")] == [back]
    assert {s.id for s in store.list_sessions("name")} == {plain}


# -- case 2: problem sets are read in linear time and imported in bulk, atomically --------------------------
def test_a_problem_import_takes_a_few_statements_per_thousand_problems(store, tmp_path):
    n = 5000
    path = write_jsonl(tmp_path / "p.jsonl", [{"id": f"q{i}", "problem": f"What is {i} + 1?", "answer": str(i + 1)}
                                              for i in range(n)])
    statements = []
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(store.engine, "before_cursor_execute", listener)
    try:
        report = import_file(store, path, "problems")
    finally:
        event.remove(store.engine, "before_cursor_execute", listener)
    assert report["problems"] == n and store.counts()["problems"] == n
    assert len(statements) < 40, len(statements)  # row by row was more than 2 per problem
    assert [p.id for p in store.problems()][:3] == ["q0", "q1", "q2"]  # the file's order is kept


def test_a_bulk_import_clashing_with_a_stored_problem_stores_nothing(store, tmp_path):
    store.save_problem(Problem("q7", "What is 7 + 1?", "8"))
    path = write_jsonl(tmp_path / "p.jsonl", [{"id": f"q{i}", "problem": f"What is {i} + 1?", "answer": str(i + 1)}
                                              for i in range(3000)] + [{"id": "q7", "problem": "other", "answer": "8"}])
    with pytest.raises(ImportFormatError, match="q7"):  # the file itself names q7 twice with two texts
        import_file(store, path, "problems")
    path = write_jsonl(tmp_path / "p2.jsonl", [{"id": f"q{i}", "problem": f"What is {i} + 2?"} for i in range(3000)])
    with pytest.raises(StorageError, match="problem id 'q7' is already stored"):
        import_file(store, path, "problems")
    assert store.counts()["problems"] == 1


def test_read_problems_still_names_a_repeated_id(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"id": f"q{i}", "problem": "x"} for i in range(2000)] +
                       [{"id": "q5", "problem": "y"}])
    with pytest.raises(ProblemFormatError, match="'q5' appears more than once"):
        read_problems(path)


# -- case 12: the same limits everywhere ---------------------------------------------------------------------
def test_imports_refuse_a_step_longer_than_the_api_accepts(store, tmp_path):
    from ui import validate

    assert validate.MAX_TEXT == MAX_STEP_CHARS
    ok = "x" * MAX_STEP_CHARS
    path = write_jsonl(tmp_path / "t.jsonl", [{"prompt": "What is 1 + 1?", "completions": [ok, "y" * 1_000_000],
                                               "labels": [True, True]}])
    with pytest.raises(ImportFormatError, match=rf"completions\[1\]' is too long \(1000000 characters, at most "
                                                rf"{MAX_STEP_CHARS}\)"):
        import_file(store, path, "trl")
    with pytest.raises(validate.UserError, match="too long"):
        validate.text("y" * (MAX_STEP_CHARS + 1), "step text")


def test_search_depth_is_capped_where_node_ids_still_fit():
    from reasoning.limits import MAX_DEPTH
    from reasoning.search import SearchConfig

    SearchConfig(max_depth=MAX_DEPTH)
    with pytest.raises(ValueError, match="max.depth"):
        SearchConfig(max_depth=MAX_DEPTH + 1)  # "max depth must be between 1 and 150"
    assert len("0" + ".9" * MAX_DEPTH) < 400  # a path of single-digit children fits the node id column


# -- case 7: the export data file and its manifest: both or neither ----------------------------------------
def test_export_leaves_no_data_file_when_the_manifest_cannot_be_written(tmp_path):
    out = tmp_path / "labeled.jsonl"
    manifest_path(out).mkdir()  # the manifest's place is taken: its rename fails after the data is in place
    with pytest.raises(OSError):
        write_export([], "trl", out)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [manifest_path(out).name]  # no temporary files left


def test_a_failed_export_keeps_the_previous_pair(tmp_path):
    out = tmp_path / "labeled.jsonl"
    write_export([], "trl", out)
    before = out.read_bytes(), manifest_path(out).read_bytes()
    manifest_path(out).unlink()
    manifest_path(out).mkdir()
    with pytest.raises(OSError):
        write_export([], "sft", out)
    assert out.read_bytes() == before[0]


# -- annotators at speed: a rating touches the rows it needs ---------------------------------------------
def test_a_rating_reads_no_node_but_the_rated_one(store):
    t = tree()
    for i in range(40):
        t.add_child("0", Step(f"step {i}", factor="compute"))
    sid = store.create_session(t)
    statements = []
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(store.engine, "before_cursor_execute", listener)
    try:
        store.rate(sid, "0.3", "alice", 1, live_session=True)
    finally:
        event.remove(store.engine, "before_cursor_execute", listener)
    node_reads = [q for q in statements if "FROM nodes" in q]
    assert len(node_reads) == 1 and "nodes.node_id =" in node_reads[0], node_reads
    assert len(statements) <= 8, statements
    store.delete_session(sid, "alice")
    with pytest.raises(StorageError, match="is deleted"):
        store.rate(sid, "0.4", "alice", 1, live_session=True)


def test_the_web_rate_and_prune_read_only_the_node_they_change(store):
    from ui.service import Explorer
    from ui.validate import UserError

    engine = Explorer(None, None, store)  # rating and pruning use no model
    t = tree()
    for i in range(40):
        t.add_child("0", Step(f"step {i}", factor="compute"))
    sid = store.create_session(t)
    statements = []
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(store.engine, "before_cursor_execute", listener)
    try:
        engine.rate(sid, "0.3", 1, annotator="alice")
        engine.prune(sid, "0.4", annotator="alice")
    finally:
        event.remove(store.engine, "before_cursor_execute", listener)
    node_reads = [q for q in statements if "FROM nodes" in q]
    assert node_reads and all("nodes.node_id =" in q for q in node_reads), node_reads  # no whole-tree load
    assert [a.node_id for a in store.annotations(sid)] == ["0.3"] and store.load_tree(sid).node("0.4")["pruned"]
    with pytest.raises(UserError, match="no node 0.99 in this session's tree"):
        engine.rate(sid, "0.99", 1, annotator="alice")
    with pytest.raises(UserError, match="session 999 not found"):
        engine.rate(999, "0.1", 1, annotator="alice")
    with pytest.raises(StorageError, match="node 0.4 is already pruned"):
        engine.prune(sid, "0.4", annotator="alice")
    engine.delete(sid, annotator="alice")
    with pytest.raises(StorageError, match="is deleted"):
        engine.rate(sid, "0.5", 1, annotator="alice")


def test_model_output_is_repaired_not_refused():
    from reasoning.limits import check_encodable, model_text

    assert model_text("plain") == "plain"
    fixed = model_text("a\x00b\ud800c é")
    assert fixed == "a\ufffdb\ufffdc é" and check_encodable(fixed, "step") == fixed
