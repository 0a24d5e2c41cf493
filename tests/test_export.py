"""Export formats as pure functions on a literal labeled tree, the atomic writer, and TRL's own PRM tokenization."""
from __future__ import annotations

import hashlib
import json
import os

import pytest

from reasoning.tree import ReasoningTree
from reasoning.types import Problem, Step
from storage import Annotation, AutoLabel, LabeledTree
from storage.export import FORMATS, atomic_write, export_records, manifest_path, write_export
from storage.labels import LabelOptions

Q = "Use 3 4 to make 7."


def labeled() -> LabeledTree:
    """root ─ a (+1) ─ b (-1)
                    └ c (+1, terminal)
            └ d (0) ─ e (unlabeled, terminal)
            └ f (+1, pruned)"""
    t = ReasoningTree(Problem("cd-3-4", Q, "7", "countdown"))
    a = t.add_child("0", Step("3 + 4 = 7"))
    b = t.add_child(a, Step("7 - 1 = 6"))
    c = t.add_child(a, Step("Answer: 7", terminal=True, answer="7"))
    d = t.add_child("0", Step("4 - 3 = 1"))
    e = t.add_child(d, Step("Answer: 1", terminal=True, answer="1"))
    f = t.add_child("0", Step("3 * 4 = 12"))
    t.set_pruned(f)
    assert (a, b, c, d, e, f) == ("0.0", "0.0.0", "0.0.1", "0.1", "0.1.0", "0.2")
    notes = [Annotation(1, n, "alice", r) for n, r in [(a, 1), (b, -1), (c, 1), (d, 0), (f, 1)]]
    notes.append(Annotation(1, b, "bob", 1, unsure=True))  # a sure rating wins over an unsure one
    autos = [AutoLabel(e, "rollout", 4, 1, 0.25, True), AutoLabel(d, "rollout", 4, 0, 0.0, False)]
    return LabeledTree(1, t, notes, autos)


def records(fmt: str, **options) -> list[dict]:
    return export_records([labeled()], fmt, LabelOptions(**options))


def test_trl_records_follow_the_contract_per_labeled_path():
    assert records("trl") == [
        {"prompt": Q, "completions": ["3 + 4 = 7", "7 - 1 = 6"], "labels": [True, False]},
        {"prompt": Q, "completions": ["3 + 4 = 7", "Answer: 7"], "labels": [True, True]},
    ]
    good = records("trl", neutral="good")
    assert good[-1] == {"prompt": Q, "completions": ["4 - 3 = 1"], "labels": [True]}
    both = records("trl", labels="both", neutral="bad", soft=True)
    assert both[-1] == {"prompt": Q, "completions": ["4 - 3 = 1", "Answer: 1"], "labels": [False, True],
                        "soft_labels": [0.0, 0.25]}
    assert all(type(x) is bool for r in both for x in r["labels"])  # TRL casts labels with int()


def test_auto_labels_stand_apart_from_human_ones():
    assert records("trl", labels="auto") == [
        {"prompt": Q, "completions": ["4 - 3 = 1", "Answer: 1"], "labels": [False, True]}]


def test_math_shepherd_marks_each_step_tag():
    rec = records("math-shepherd")[0]
    assert rec == {"input": f"{Q} 3 + 4 = 7 ки\n7 - 1 = 6 ки", "label": f"{Q} 3 + 4 = 7 +\n7 - 1 = 6 -"}


def test_processbench_label_is_the_earliest_wrong_step():
    got = {tuple(r["steps"]): r["label"] for r in records("processbench", labels="both", neutral="bad")}
    assert got == {("3 + 4 = 7", "7 - 1 = 6"): 1, ("3 + 4 = 7", "Answer: 7"): -1, ("4 - 3 = 1", "Answer: 1"): 0}


def test_pairs_prefer_the_better_sibling():
    assert records("pairs") == [{"prompt": f"{Q}\n3 + 4 = 7", "chosen": "Answer: 7", "rejected": "7 - 1 = 6"}]
    # d's neutral as bad pairs it under a; the pruned f (+1) never pairs with d.
    assert {(r["chosen"], r["rejected"]) for r in records("pairs", neutral="bad")} == {
        ("3 + 4 = 7", "4 - 3 = 1"), ("Answer: 7", "7 - 1 = 6")}
    soft = records("pairs", labels="auto", soft=True)
    assert soft == []  # auto labels only on d and e, no siblings


def test_sft_keeps_terminal_paths_rated_good_throughout():
    assert records("sft") == [{"prompt": Q, "completion": "3 + 4 = 7\nAnswer: 7"}]
    assert len(records("sft", neutral="good", all_paths=True)) == 2  # d (neutral as good), e unlabeled


def test_prm800k_lists_siblings_with_ratings_and_the_chosen_one():
    recs = records("prm800k", all_paths=True)
    assert len(recs) == 3
    first = recs[0]["label"]["steps"]
    assert first[0] == {"completions": [{"text": "3 + 4 = 7", "rating": 1, "flagged": False},
                                        {"text": "4 - 3 = 1", "rating": 0, "flagged": False}],
                        "human_completion": None, "chosen_completion": 0}
    assert first[1]["chosen_completion"] == 0 and [c["rating"] for c in first[1]["completions"]] == [-1, 1]
    assert recs[2]["label"]["steps"][1]["completions"] == [{"text": "Answer: 1", "rating": None, "flagged": False}]
    assert recs[1]["label"]["finish_reason"] == "solution" and recs[0]["question"]["ground_truth_answer"] == "7"


def test_human_written_steps_become_human_completions():
    lt = labeled()
    h = lt.tree.add_child("0.0", Step("3 + 4 is 7, done."), origin="human")
    lt.annotations.append(Annotation(1, h, "alice", 1))
    rec = [r for r in export_records([lt], "prm800k") if r["label"]["steps"][-1]["human_completion"]][0]
    assert rec["label"]["steps"][-1] == {
        "completions": [{"text": "7 - 1 = 6", "rating": -1, "flagged": False},
                        {"text": "Answer: 7", "rating": 1, "flagged": False}],
        "human_completion": {"text": "3 + 4 is 7, done.", "rating": 1, "source": "human", "flagged": False},
        "chosen_completion": None}


def test_unknown_options_are_refused():
    with pytest.raises(ValueError, match="unknown export format 'csv'"):
        export_records([labeled()], "csv")
    with pytest.raises(ValueError, match="neutral must be one of"):
        LabelOptions(neutral="maybe")


# -- files --------------------------------------------------------------------------------------------
def test_jsonl_and_parquet_files_carry_the_same_records_and_a_manifest(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    for fmt in FORMATS:
        out = tmp_path / f"{fmt}.jsonl"
        manifest = write_export([labeled()], fmt, out, LabelOptions(all_paths=True))
        lines = [json.loads(x) for x in out.read_text().splitlines()]
        assert lines == records(fmt, all_paths=True)
        assert manifest["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
        assert json.loads(manifest_path(out).read_text()) == manifest
        assert manifest["counts"]["records"] == len(lines) and manifest["options"]["all_paths"] is True
        pout = tmp_path / f"{fmt}.parquet"
        write_export([labeled()], fmt, pout, LabelOptions(all_paths=True))
        rows = pq.read_table(pout).to_pylist()
        assert [r["prompt"] if "prompt" in r else r.get("problem", r.get("input")) for r in rows] == [
            r["prompt"] if "prompt" in r else r.get("problem", r.get("input")) for r in lines]
    assert write_export([labeled()], "trl", tmp_path / "t.jsonl")["counts"] == {
        "records": 2, "sessions": 1, "steps": 4, "good": 3, "neutral": 0, "bad": 1}


def test_the_manifest_counts_the_steps_and_labels_every_format_writes(tmp_path):
    """The counts are those of the file: steps written and the label each carries there (they were TRL's `labels`
    only, so five formats with records showed 0 good, 0 bad)."""
    expected = {  # (records, steps, good, neutral, bad) of labeled() under the default options
        "trl": (2, 4, 3, 0, 1),  # paths a-b and a-c
        "math-shepherd": (2, 4, 3, 0, 1),  # the same paths, read back from the + and - marks
        "processbench": (2, 4, 3, 0, 1),  # a-b: b is the first error; a-c: no error
        "prm800k": (2, 8, 4, 2, 2),  # per step, every live sibling with its rating (d is neutral)
        "pairs": (1, 2, 1, 0, 1),  # c chosen over b
        "sft": (1, 2, 2, 0, 0),  # a-c, good throughout
    }
    for fmt, (n, steps, good, neutral, bad) in expected.items():
        counts = write_export([labeled()], fmt, tmp_path / f"{fmt}.jsonl")["counts"]
        assert counts == {"records": n, "sessions": 1, "steps": steps, "good": good, "neutral": neutral,
                          "bad": bad}, fmt
    shepherd = write_export([labeled()], "math-shepherd", tmp_path / "m.jsonl", LabelOptions(neutral="bad"))
    assert shepherd["counts"]["steps"] == 5 and shepherd["counts"]["bad"] == 2  # d, neutral, written as bad


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    out = tmp_path / "data.jsonl"
    out.write_text("old\n")

    def broken(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        atomic_write(out, b"new\n")
    assert out.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == ["data.jsonl"]


# -- TRL's own reading of the TRL export ----------------------------------------------------------------
def tiny_tokenizer(texts: list[str]):
    """A byte-level BPE trained in milliseconds on the records themselves: no download."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=300, special_tokens=["<bos>"],
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>")


@pytest.mark.slow  # imports trl and transformers
def test_trl_prm_tokenize_row_puts_labels_on_the_separator_tokens(monkeypatch):
    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")
    prm = pytest.importorskip("trl.experimental.prm")
    recs = records("trl", labels="both", neutral="bad")
    tokenizer = tiny_tokenizer([r["prompt"] + "\n" + "\n".join(r["completions"]) for r in recs])
    sep = tokenizer.encode("\n", add_special_tokens=False)
    for rec in recs:
        row = prm.PRMTrainer.tokenize_row(rec, tokenizer, "\n", max_length=None, max_completion_length=None,
                                          train_on_last_step_only=False, is_eval=False)
        marked = [(i, y) for i, y in enumerate(row["labels"]) if y != -100]
        assert [y for _, y in marked] == [int(x) for x in rec["labels"]]
        assert all(row["input_ids"][i] == sep[-1] for i, _ in marked)
        assert row["input_ids"][0] == tokenizer.bos_token_id


# -- every human rating reaches every format that can carry it (the labeler's work must arrive) ----------------------
def three_annotators() -> LabeledTree:
    """The walkthrough's session: 10 ratings on 8 nodes by alice, bob and dave, most of them below unrated steps.

    root ─ 0.0 ─ 0.0.0 (alice -1 then dave +1: a disagreement) ─ 0.0.0.0 (alice +1, terminal)
         │     └ 0.0.1 (bob 0)
         └ 0.1 ─ 0.1.0 ─ 0.1.0.0 (bob -1, dave -1)
                       └ 0.1.0.1 (alice +1)
               └ 0.1.1 (dave +1) ─ 0.1.1.0 (bob +1, terminal)
    0.0, 0.1 and 0.1.0 are unrated, so no path from the root is labeled throughout."""
    t = ReasoningTree(Problem("cd-4-7-8-8", "Use 4 7 8 8 to make 24.", "8*(7-(8-4))", "countdown"))
    add = lambda parent, text, **kw: t.add_child(parent, Step(text, **kw))  # noqa: E731
    a = add("0", "8-4=4 (left: 4 7 8)")
    b = add(a, "7-4=3 (left: 3 8)")
    c = add(b, "8*3=24 (answer: 8*(7-(8-4)))", terminal=True, answer="8*(7-(8-4))")
    d = add(a, "7+4=11 (left: 8 11)")
    e = add("0", "8+8=16 (left: 4 7 16)")
    f = add(e, "16-7=9 (left: 4 9)")
    g = add(f, "9*4=36 (left: 36)")
    h = add(f, "9+4=13 (left: 13)")
    i = add(e, "16+4=20 (left: 7 20)")
    j = add(i, "20+7=27 (answer: 27)", terminal=True, answer="27")
    from datetime import UTC, datetime, timedelta
    t0 = datetime(2026, 12, 1, tzinfo=UTC)
    rated = [(b, "alice", -1), (c, "alice", 1), (d, "bob", 0), (g, "bob", -1), (g, "dave", -1), (h, "alice", 1),
             (i, "dave", 1), (j, "bob", 1), (b, "dave", 1), (h, "bob", 1)]
    notes = [Annotation(1, n, who, r, created=t0 + timedelta(minutes=k)) for k, (n, who, r) in enumerate(rated)]
    return LabeledTree(1, t, notes, [])


def carried(fmt: str, lt: LabeledTree, **options) -> dict:
    """{step text: label} of every step the format writes with a label (TRL and Math-Shepherd read per record)."""
    recs = export_records([lt], fmt, LabelOptions(**options))
    out: dict = {}
    for r in recs:
        if fmt == "trl":
            out.update(zip(r["completions"], r["labels"], strict=True))
        elif fmt == "prm800k":
            for st in r["label"]["steps"]:
                out.update({c["text"]: c["rating"] for c in st["completions"] if c["rating"] is not None})
    return out


def test_every_human_rating_reaches_trl_and_prm800k_even_below_unrated_steps(tmp_path):
    lt = three_annotators()
    trl = carried("trl", lt, neutral="bad")
    assert trl["9*4=36 (left: 36)"] is False  # bob and dave's -1 below two unrated steps (was absent)
    assert set(trl) == {lt.tree.node(a.node_id)["text"] for a in lt.annotations}
    rec = next(r for r in export_records([lt], "trl") if r["completions"] == ["9*4=36 (left: 36)", ])
    assert rec["prompt"] == "Use 4 7 8 8 to make 24.\n8+8=16 (left: 4 7 16)\n16-7=9 (left: 4 9)"  # context
    prm = carried("prm800k", lt)
    assert len(prm) == 7 and prm["7+4=11 (left: 8 11)"] == 0  # every rated node, the neutral one too
    for fmt in ("trl", "math-shepherd", "prm800k"):
        counts = write_export([lt], fmt, tmp_path / f"{fmt}.jsonl", LabelOptions(neutral="bad"))["ratings"]
        # 10 stored; under `latest` alice's -1 on 0.0.0 is superseded by dave's later +1
        assert (counts["stored"], counts["exported"]) == (10, 9), fmt
        assert counts["left_out"] == {"superseded by a later or surer rating (--combine latest)": 1}
        assert counts["by_annotator"]["alice"] == {
            "stored": 3, "exported": 2,
            "left_out": {"superseded by a later or surer rating (--combine latest)": 1}}
        assert counts["by_annotator"]["bob"]["exported"] == 4 and counts["by_annotator"]["dave"]["exported"] == 3


def test_the_account_says_why_a_rating_is_left_out(tmp_path):
    lt = three_annotators()
    m = write_export([lt], "trl", tmp_path / "t.jsonl")  # neutral dropped by default
    assert m["ratings"]["left_out"]["neutral, dropped (--neutral drop)"] == 1
    pb = write_export([lt], "processbench", tmp_path / "p.jsonl")["ratings"]
    assert pb["exported"] == 0 and sum(pb["left_out"].values()) == 10  # no path is labeled from its first step
    only = write_export([lt], "trl", tmp_path / "o.jsonl", LabelOptions(annotators=("bob",)))["ratings"]
    assert only["by_annotator"]["alice"]["left_out"] == {"annotator not selected (--annotators)": 3}
    assert only["by_annotator"]["bob"]["exported"] == 3  # his neutral is dropped
    lt.tree.set_pruned("0.1.0")
    pruned = write_export([lt], "trl", tmp_path / "x.jsonl")["ratings"]
    assert pruned["left_out"]["on a pruned branch"] == 4  # 0.1.0.0 and 0.1.0.1, twice each


def test_annotators_ratings_combine_as_the_export_asks():
    lt = three_annotators()
    b = "7-4=3 (left: 3 8)"
    assert carried("trl", lt)[b] is True  # latest: dave's +1 after alice's -1
    assert b not in carried("trl", lt, combine="majority")  # one against one: a tie
    assert b not in carried("trl", lt, combine="unanimous")
    assert carried("trl", lt, combine="unanimous")["9*4=36 (left: 36)"] is False  # bob and dave agree
    each = export_records([lt], "trl", LabelOptions(combine="each"))
    by = {(r["annotator"], c): y for r in each for c, y in zip(r["completions"], r["labels"], strict=True)}
    assert by[("alice", b)] is False and by[("dave", b)] is True and ("bob", b) not in by
    lt.annotations.append(Annotation(1, "0.0.0", "carol", -1, adjudicated=True))  # an adjudicator settles it
    for how in ("latest", "majority", "unanimous"):
        assert carried("trl", lt, combine=how)[b] is False, how


def test_an_export_refuses_a_directory_before_touching_it(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="is a directory"):
        write_export([labeled()], "trl", d)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"] and (d / "notes.txt").read_text() == "x"
