"""Imports: round trips through the database, every PRM800K record shape, atomic failures, and the CLI."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from cli.data import add_export_arguments, add_import_arguments, run_export, run_import
from reasoning.types import Problem, Step
from storage import ImportFormatError, StorageError, Store
from storage.export import export_records
from storage.importers import import_file, import_line, read_import, split_steps
from storage.labels import LabelOptions

pytestmark = pytest.mark.database
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
if not DATA.is_dir():
    DATA = Path("/work/shared/data")
PRM800K = DATA / "prm800k_samples.jsonl"
GSM8K = DATA / "gsm8k_test.jsonl"


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


# -- round trips ------------------------------------------------------------------------------------
def test_prm800k_records_come_back_whole(store):
    original = [json.loads(x) for x in PRM800K.read_text().splitlines()]
    report = import_file(store, PRM800K, "prm800k")
    assert len(report["sessions"]) == 6 and report["labels"] == 71
    exported = export_records(store.labeled_trees(), "prm800k")
    assert exported == original  # every rating, chosen_completion, human_completion and null
    assert {a.annotator for lt in store.labeled_trees() for a in lt.annotations} == {"imported:prm800k"}
    tree = store.load_tree(report["sessions"][4])
    assert {tree.node(n)["origin"] for n in tree.nodes()} == {"root", "imported"}


def test_ratings_changed_after_import_show_in_the_export(store):
    sid = import_file(store, PRM800K, "prm800k")["sessions"][0]
    store.rate(sid, "0.0", "imported:prm800k", -1)
    first = export_records(store.labeled_trees([sid]), "prm800k")[0]
    assert first["label"]["steps"][0]["completions"][0]["rating"] == -1


def test_paths_grown_after_a_prm800k_import_add_records(store):
    sid = import_file(store, PRM800K, "prm800k")["sessions"][2]
    tree = store.load_tree(sid)
    end = "0.0.0.0.0.1"  # the chosen completion of the last step, rated +1
    assert tree.node(end)["terminal"] and tree.node(end)["answer"] == "468"
    new = tree.add_child(end, Step("Checking: 7.8 * 60 = 468."), origin="human")
    store.add_nodes(sid, tree, [new], kind="human_step", annotator="alice")
    store.rate(sid, new, "alice", 1)
    recs = export_records(store.labeled_trees([sid]), "prm800k")
    assert len(recs) == 2 and recs[1]["labeler"] == "alice+imported:prm800k"
    assert recs[1]["label"]["steps"][-1]["human_completion"]["text"] == "Checking: 7.8 * 60 = 468."


def test_trl_export_import_export_gives_identical_records(store, tmp_path):
    import_file(store, PRM800K, "prm800k")
    options = LabelOptions(neutral="good")
    first = export_records(store.labeled_trees(), "trl", options)
    assert len(first) > 6
    path = write_jsonl(tmp_path / "trl.jsonl", first)
    with Store(f"sqlite:///{tmp_path / 'other.db'}") as other:
        import_file(other, path, "trl")
        assert export_records(other.labeled_trees(), "trl", options) == first


def test_solutions_merge_shared_prefixes_and_correct_ones_are_best_paths(store, tmp_path):
    rec = {"id": "s1", "problem": "What is 6 * 7?", "answer": "42", "solutions": [
        {"steps": ["6 * 7 = 42.", "The answer is 42."], "correct": True, "source": "model-a"},
        {"text": "6 * 7 = 42.\nThe answer is 41."},
        {"text": "Six sevens.\n\nThat is 42.\nDone.", "correct": False},
    ]}
    sid = import_file(store, write_jsonl(tmp_path / "s.jsonl", [rec]), "solutions")["sessions"][0]
    tree = store.load_tree(sid)
    assert tree.problem.answer == "42" and len(tree.children("0")) == 2 and len(tree.children("0.0")) == 2
    assert tree.node("0.1.0")["text"] == "That is 42.\nDone."
    assert tree.node("0.0.0")["meta"] == {"source": "model-a", "correct": True}
    assert export_records(store.labeled_trees(), "sft") == [
        {"prompt": "What is 6 * 7?", "completion": "6 * 7 = 42.\nThe answer is 42."}]


def test_processbench_labels_mark_the_first_error(store, tmp_path):
    recs = [{"id": "pb-1", "problem": "1 + 1?", "steps": ["1 + 1 = 3", "so 3"], "label": 0},
            {"id": "pb-2", "problem": "2 + 2?", "steps": ["2 + 2 = 4", "so 4"], "label": -1}]
    import_file(store, write_jsonl(tmp_path / "pb.jsonl", recs), "processbench")
    got = export_records(store.labeled_trees(), "processbench", LabelOptions(all_paths=True))
    assert [(r["problem"], r["steps"], r["label"]) for r in got] == [(r["problem"], r["steps"], r["label"])
                                                                      for r in recs]


def test_gsm8k_problems_import_with_their_gold_answers(store):
    report = import_file(store, GSM8K, "problems")
    assert report["problems"] == 1319 and report["sessions"] == []
    assert (report["new_problems"], report["known_problems"]) == (1319, 0)
    again = import_file(store, GSM8K, "problems")  # a re-import adds nothing, and says so
    assert (again["new_problems"], again["known_problems"]) == (0, 1319) and store.counts()["problems"] == 1319
    assert import_line(again) == "imported 0 new problems, 1319 already present, 0 sessions, 0 steps, 0 labels"
    first = store.problems()[0]
    assert first.text.startswith("Janet") and first.answer == "18"


def test_text_splits_on_blank_lines_else_on_lines():
    assert split_steps("a\nb\n\nc") == ["a\nb", "c"]
    assert split_steps("a\nb\n") == ["a", "b"]


# -- malformed input: named line and field, database unchanged ------------------------------------------
BAD = {
    "bad json": ("prm800k", [*PRM800K.read_text().splitlines()[:2], "{not json"], r":3: invalid JSON"),
    "missing field": ("trl", [{"prompt": "p", "completions": ["a"], "labels": [True]}, {"prompt": "p"}],
                      r":2: field 'completions' is missing"),
    "rating 7": ("prm800k", [{"question": {"problem": "q"}, "label": {"steps": [
        {"completions": [{"text": "a", "rating": 7}], "human_completion": None, "chosen_completion": 0}]}}],
                 r":1: field 'label.steps\[0\].completions\[0\].rating' must be -1, 0, 1 or null, got 7"),
    "label count": ("trl", [{"prompt": "p", "completions": ["a", "b"], "labels": [True]}],
                    r":1: field 'labels' must have one label per completion"),
    "processbench label": ("processbench", [{"problem": "p", "steps": ["a"], "label": 4}], r":1: field 'label'"),
    "solutions": ("solutions", [{"problem": "p", "solutions": [{"steps": "not a list"}]}],
                  r":1: field 'solutions\[0\].steps' must be a list"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_malformed_imports_name_line_and_field_and_change_nothing(store, tmp_path, case):
    fmt, lines, message = BAD[case]
    import_file(store, PRM800K, "prm800k")
    before = store.counts()
    path = write_jsonl(tmp_path / "bad.jsonl", lines)
    with pytest.raises(ImportFormatError, match=message):
        import_file(store, path, fmt)
    assert store.counts() == before


def test_a_database_error_midway_rolls_the_whole_import_back(store, tmp_path):
    store.save_problem(Problem("clash", "Another text."))
    before = store.counts()
    recs = [{"id": "fine", "problem": "p", "solutions": [{"text": "a"}]},
            {"id": "clash", "problem": "Not the stored text.", "solutions": [{"text": "b"}]}]
    with pytest.raises(StorageError, match="'clash' is already stored"):
        import_file(store, write_jsonl(tmp_path / "s.jsonl", recs), "solutions")
    assert store.counts() == before


# -- command line ----------------------------------------------------------------------------------------
def run_cli(kind: str, argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    (add_import_arguments if kind == "import" else add_export_arguments)(parser)
    args = parser.parse_args(argv)
    return (run_import if kind == "import" else run_export)(args)


def test_cli_import_then_export(tmp_path, capsys):
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    assert run_cli("import", ["--format", "prm800k", str(PRM800K), "--db", db]) == 0
    out = tmp_path / "out" / "prm.parquet"
    assert run_cli("export", ["--format", "prm800k", "--out", str(out), "--db", db, "--parquet", "--session", "1"]) == 0
    manifest = json.loads((out.parent / "prm.parquet.manifest.json").read_text())
    assert manifest["counts"]["records"] == 1 and manifest["file_format"] == "parquet"
    bad = write_jsonl(tmp_path / "bad.jsonl", ['{"problem": "p", "solutions": []}', "{oops"])
    assert run_cli("import", ["--format", "solutions", str(bad), "--db", db]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "bad.jsonl:2: invalid JSON" in err and "nothing was imported" in err
    missing = ["--format", "trl", "--out", str(tmp_path / "x.jsonl"), "--db", db, "--session", "99"]
    assert run_cli("export", missing) == 2
    assert not (tmp_path / "x.jsonl").exists()


def test_read_import_refuses_an_unknown_format(tmp_path):
    with pytest.raises(ImportFormatError, match="unknown import format 'csv'"):
        read_import(PRM800K, "csv")
