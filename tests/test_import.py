"""Imports: round trips through the database, every PRM800K record shape, atomic failures, and the CLI."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from helpers.data import GSM8K, PRM800K

from cli.data import add_export_arguments, add_import_arguments, run_export, run_import
from reasoning.types import Problem, Step
from storage import ImportFormatError, StorageError, Store
from storage.export import export_records
from storage.importers import detect_format, import_file, import_line, read_import, split_steps
from storage.labels import LabelOptions

pytestmark = pytest.mark.database


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


# -- importing the same traces again adds nothing (issue 22, item 3) ------------------------------------------------
SAMPLES = {  # one small file per format; each record is one trace (or one problem)
    "trl": [{"prompt": "What is 2 + 3?", "completions": ["2 + 3 = 5.", "The answer is 5."], "labels": [True, True]},
            {"prompt": "What is 2 + 3?", "completions": ["2 + 3 = 6."], "labels": [False]},
            {"prompt": "What is 4 * 4?", "completions": ["4 * 4 = 16."], "labels": [True]}],
    "processbench": [{"id": "pb-1", "problem": "1 + 1?", "steps": ["1 + 1 = 3", "so 3"], "label": 0},
                     {"id": "pb-2", "problem": "2 + 2?", "steps": ["2 + 2 = 4", "so 4"], "label": -1}],
    "solutions": [{"id": "s1", "problem": "What is 6 * 7?", "answer": "42", "solutions": [
                       {"steps": ["6 * 7 = 42.", "The answer is 42."], "correct": True}, {"text": "6 * 7 = 41."}]},
                  {"id": "s2", "problem": "What is 9 - 4?", "solutions": [{"text": "9 - 4 = 5."}]}],
}


def sample_file(tmp_path: Path, fmt: str, name: str = "a.jsonl") -> Path:
    if fmt == "prm800k":
        return PRM800K
    if fmt == "problems":
        return write_jsonl(tmp_path / name, GSM8K.read_text().splitlines()[:20])
    return write_jsonl(tmp_path / name, SAMPLES[fmt])


def stored_state(store) -> tuple[dict, list]:
    return store.counts(), export_records(store.labeled_trees(), "trl", LabelOptions(neutral="good", all_paths=True))


@pytest.mark.parametrize("fmt", ["prm800k", "trl", "processbench", "solutions", "problems"])
def test_importing_the_same_file_again_adds_nothing_and_says_so(store, tmp_path, fmt):
    path = sample_file(tmp_path, fmt)
    first = import_file(store, path, fmt)
    assert first["sessions"] or fmt == "problems"
    counts, records = stored_state(store)
    for _ in range(2):
        again = import_file(store, path, fmt)
        assert again["sessions"] == [] and again["new_problems"] == 0
        assert (store.counts() | {"actions": 0}, stored_state(store)[1]) == (counts | {"actions": 0}, records)
    line = import_line(again)
    assert line.startswith(f"imported 0 new problems, {first['problems']} already present, 0 sessions, 0 steps, 0 labels")
    if fmt != "problems":  # a problem set makes no sessions: its problems already count as present
        n = len(path.read_text().splitlines())
        assert f"; nothing new: all {n} traces were imported before (in sessions {first['sessions'][0]}" in line


def test_the_same_traces_with_other_spacing_and_key_order_are_the_same(store, tmp_path):
    import_file(store, PRM800K, "prm800k")
    shuffled = [json.dumps(dict(reversed(json.loads(x).items())), indent=None, separators=(", ", ": "))
                for x in PRM800K.read_text().splitlines()]
    again = import_file(store, write_jsonl(tmp_path / "renamed.jsonl", shuffled), "prm800k")
    assert again["sessions"] == [] and again["known_traces"] == 6
    assert len(export_records(store.labeled_trees(), "prm800k")) == 6


def test_a_file_with_new_and_old_traces_adds_only_the_new_ones(store, tmp_path):
    first = write_jsonl(tmp_path / "first.jsonl", SAMPLES["trl"][:2])
    import_file(store, first, "trl")
    both = write_jsonl(tmp_path / "both.jsonl", [SAMPLES["trl"][2], *SAMPLES["trl"][:2], SAMPLES["trl"][2]])
    report = import_file(store, both, "trl")
    assert len(report["sessions"]) == 1 and (report["known_traces"], report["repeated_traces"]) == (2, 1)
    assert import_line(report).endswith("; 2 of 4 traces were imported before and skipped (in sessions 1); "
                                        "1 repeated lines skipped")
    assert [r["prompt"] for r in export_records(store.labeled_trees(), "trl")] == [
        "What is 2 + 3?", "What is 2 + 3?", "What is 4 * 4?"]
    assert import_file(store, both, "trl")["sessions"] == []


def test_repeated_lines_in_one_file_are_stored_once(store, tmp_path):
    lines = PRM800K.read_text().splitlines()
    report = import_file(store, write_jsonl(tmp_path / "twice.jsonl", lines + lines[:3]), "prm800k")
    assert len(report["sessions"]) == 6 and report["repeated_traces"] == 3
    assert export_records(store.labeled_trees(), "prm800k") == [json.loads(x) for x in lines]


def test_a_reimport_names_the_deleted_sessions_that_hold_its_traces(store):
    sids = import_file(store, PRM800K, "prm800k")["sessions"]
    store.delete_session(sids[1], "alice")
    line = import_line(import_file(store, PRM800K, "prm800k"))
    assert line.endswith("(in sessions 1–6; deleted, restore to see them: 2)") and store.counts()["sessions"] == 6


def test_the_store_skips_trees_it_holds_and_refuses_a_half_stored_one(store):
    batch = read_import(PRM800K, "prm800k")
    source = {"format": "prm800k", "file": "x"}
    store.import_counted(batch.problems, batch.trees, annotator="imported:prm800k", source=source)
    done = store.import_counted(batch.problems, batch.trees, annotator="imported:prm800k", source=source)
    assert (done["sessions"], done["skipped_traces"]) == ([], 6)
    grown = read_import(PRM800K, "prm800k").trees[0]
    grown.meta["fingerprints"].append("0" * 64)  # another import stored part of this tree meanwhile
    with pytest.raises(StorageError, match="another import stored some of these traces meanwhile"):
        store.import_counted(batch.problems, [grown], annotator="imported:prm800k", source=source)
    assert store.counts()["sessions"] == 6


def test_concurrent_imports_of_one_file_store_it_once(db_url):
    from concurrent.futures import ThreadPoolExecutor

    with Store(db_url) as seed:  # known problems: the imports meet on their rows, not on inserting them
        for p in read_import(PRM800K, "prm800k").problems:
            seed.save_problem(p)
    stores = [Store(db_url) for _ in range(3)]
    try:
        with ThreadPoolExecutor(3) as pool:
            reports = list(pool.map(lambda s: import_file(s, PRM800K, "prm800k"), stores))
        assert sorted(len(r["sessions"]) for r in reports) == [0, 0, 6]
        assert stores[0].counts()["sessions"] == 6
    finally:
        for s in stores:
            s.close()


# -- the format is detected from the records when none is chosen (issue 22, item 13) ------------------------------
@pytest.mark.parametrize("fmt", ["prm800k", "trl", "processbench", "solutions", "problems"])
def test_the_format_is_detected_from_the_records(store, tmp_path, fmt):
    assert detect_format(sample_file(tmp_path, fmt)) == fmt
    report = import_file(store, sample_file(tmp_path, fmt))
    assert (report["format"], report["detected"]) == (fmt, True)
    assert import_line(report).startswith(f"detected format {fmt}: imported ")


def test_a_file_whose_records_fit_no_format_or_disagree_must_be_named(tmp_path):
    with pytest.raises(ImportFormatError, match=r"x.jsonl:1: no import format has these fields \(steps, text\)"):
        detect_format(write_jsonl(tmp_path / "x.jsonl", [{"text": "a", "steps": []}]))
    mixed = write_jsonl(tmp_path / "m.jsonl", [SAMPLES["trl"][0], SAMPLES["solutions"][0]])
    with pytest.raises(ImportFormatError, match="m.jsonl:2: reads as solutions but the records before it as trl"):
        detect_format(mixed)


def test_cli_import_detects_the_format_and_a_reimport_adds_nothing(tmp_path, capsys):
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    assert run_cli("import", [str(PRM800K), "--db", db]) == 0
    assert capsys.readouterr().out.startswith(f"{PRM800K}: detected format prm800k: imported 6 new problems, 6 sessions")
    assert run_cli("import", [str(PRM800K), "--db", db]) == 0
    out = capsys.readouterr().out
    assert "0 sessions, 0 steps, 0 labels; nothing new: all 6 traces were imported before (in sessions 1–6)" in out
    with Store(db) as store:
        assert store.counts()["sessions"] == 6
