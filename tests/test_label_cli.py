"""`python app.py label`: rollout labels for stored trees with the real demo models; interrupted and rerun, it
labels nothing twice; labels land in the export as soft labels."""
from __future__ import annotations

import json

import pytest

import app
import experiments.autolabel as autolabel
from demo.scaling import demo_config
from reasoning.backends import DEMO_GENERATOR_DIR, DEMO_PRM_DIR, load_generator, load_scorer
from reasoning.factors import load_catalog
from reasoning.problems import countdown_problem
from reasoning.search import search
from storage import Store

pytestmark = pytest.mark.model
DEMO_FACTORS = ("compute", "verify", "correct", "conclude")


@pytest.fixture(scope="module")
def demo_models():
    import torch

    torch.set_num_threads(1)
    catalog = load_catalog().with_enabled(set(DEMO_FACTORS))
    return load_generator(DEMO_GENERATOR_DIR, catalog=catalog, device="cpu"), load_scorer(DEMO_PRM_DIR, device="cpu")


@pytest.fixture()
def db(tmp_path, demo_models):
    url = f"sqlite:///{tmp_path / 'label.db'}"
    generator, scorer = demo_models
    with Store(url) as store:
        ids = []
        for k, numbers in enumerate([[4, 7, 8, 8], [1, 2, 3, 4]]):
            tree, _ = search(countdown_problem(numbers, pid=f"cd-{k}"), generator, scorer, demo_config("mcts", 6))
            ids.append(store.create_session(tree, name=f"t{k}"))
    return url, ids


def _live(store: Store, sid: int) -> set[str]:
    return set(autolabel.live_steps(store.load_tree(sid)))


def test_label_interrupted_then_rerun_labels_every_node_once(db, monkeypatch, capsys):
    url, ids = db
    real, calls = autolabel.estimate, []

    def interrupted(generator, states, config, **kw):
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the third chunk
        calls.append(len(states))
        return real(generator, states, config, **kw)

    monkeypatch.setattr(autolabel, "estimate", interrupted)
    args = ["label", "--session", *map(str, ids), "--rollouts", "3", "--chunk", "2", "--db", url, "--quiet"]
    assert app.main(args) == 130
    with Store(url) as store:
        first = {(sid, a.node_id) for sid in ids for a in store.auto_labels(sid)}
    assert len(first) == 4  # two stored chunks of two nodes; the interrupted chunk stored nothing

    rolled = []

    def counting(generator, states, config, **kw):
        rolled.extend(states)
        return real(generator, states, config, **kw)

    monkeypatch.setattr(autolabel, "estimate", counting)
    capsys.readouterr()
    assert app.main(args) == 0
    err = capsys.readouterr().err
    with Store(url) as store:
        labels = [(sid, a) for sid in ids for a in store.auto_labels(sid)]
        wanted = {(sid, n) for sid in ids for n in _live(store, sid)}
    assert sorted((sid, a.node_id) for sid, a in labels) == sorted(wanted)  # every live step, once
    assert len(rolled) == len(wanted) - len(first)  # the rerun rolled out only what the first run had not stored
    assert "skipped 4 already labeled" in err
    for _, a in labels:
        assert a.method == "rollout" and 0 <= a.successes <= a.rollouts and a.rollouts in (1, 3)
        assert a.provenance["generator"]["name"] == "demo-generator" and a.provenance["rollouts"]["n"] == 3

    capsys.readouterr()
    assert app.main(args) == 0 and f"skipped {len(wanted)} already labeled" in capsys.readouterr().err


def test_labels_reach_the_export_as_soft_labels(db, tmp_path):
    url, ids = db
    assert app.main(["label", "--session", str(ids[0]), "--rollouts", "2", "--db", url, "--quiet"]) == 0
    out = tmp_path / "trl.jsonl"
    assert app.main(["export", "--format", "trl", "--labels", "auto", "--soft", "--out", str(out), "--db", url]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert records and all(len(r["soft_labels"]) == len(r["completions"]) == len(r["labels"]) for r in records)
    with Store(url) as store:
        values = {round(a.soft_value, 6) for a in store.auto_labels(ids[0])}
    assert {round(v, 6) for r in records for v in r["soft_labels"]} <= values
    assert all(lab == (soft > 0) for r in records for lab, soft in zip(r["labels"], r["soft_labels"], strict=True))


def test_first_error_labels_every_step_of_each_path(db, capsys):
    url, ids = db
    assert app.main(["label", "--session", str(ids[0]), "--rollouts", "2", "--first-error", "--db", url,
                     "--quiet"]) == 0
    with Store(url) as store:
        tree = store.load_tree(ids[0])
        got = {a.node_id: a for a in store.auto_labels(ids[0]) if a.method == "first_error"}
    from storage.labels import leaf_paths

    for path in leaf_paths(tree):
        assert set(path) <= set(got)
        verdicts = [got[n].hard_label for n in path]
        assert verdicts == sorted(verdicts, reverse=True)  # right steps, then wrong ones from the first error on


def test_unknown_session_is_one_line_and_loads_nothing(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    Store(url).close()  # an empty database (a missing one is refused before anything else: test_hardening_cli)
    code = app.main(["label", "--session", "99", "--db", url])
    err = capsys.readouterr().err
    assert code == 2 and err.strip().splitlines() == ["error: no session 99"]


def test_round_trip_label_export_train_and_the_trained_prm_drives_solve(db, tmp_path, capsys):
    url, ids = db
    assert app.main(["label", "--all", "--rollouts", "2", "--db", url, "--quiet"]) == 0
    data = tmp_path / "trl.jsonl"
    assert app.main(["export", "--format", "trl", "--labels", "auto", "--soft", "--out", str(data), "--db", url]) == 0
    prm = tmp_path / "prm"
    assert app.main(["train-prm", "--data", str(data), "--base", str(DEMO_GENERATOR_DIR), "--out", str(prm),
                     "--steps", "4", "--batch-size", "4", "--eval-share", "0", "--device", "cpu", "--quiet"]) == 0
    manifest = json.loads((prm / "manifest.json").read_text())
    assert manifest["architecture"] == "GPT2ForTokenClassification" and manifest["data"]["soft_steps"] > 0
    problems = tmp_path / "p.jsonl"
    problems.write_text(json.dumps({"id": "cd", "domain": "countdown", "numbers": [3, 3, 8, 8], "target": 24}) + "\n")
    out = tmp_path / "solved.jsonl"
    capsys.readouterr()
    assert app.main(["solve", "--problems", str(problems), "--out", str(out), "--budget", "8", "--generator",
                     str(DEMO_GENERATOR_DIR), "--prm", str(prm), "--factors", ",".join(DEMO_FACTORS), "--quiet",
                     "--device", "cpu"]) == 0, capsys.readouterr().err
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert record["id"] == "cd" and 1 <= record["nodes"] <= 8


def test_label_problems_searches_each_once_then_labels(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'p.db'}"
    problems = tmp_path / "p.jsonl"
    problems.write_text("".join(json.dumps({"id": f"cd-{k}", "domain": "countdown", "numbers": n, "target": 24}) + "\n"
                                for k, n in enumerate([[4, 7, 8, 8], [2, 3, 4, 6]])))
    args = ["label", "--problems", str(problems), "--budget", "4", "--rollouts", "2", "--db", url, "--quiet"]
    assert app.main(args) == 0
    with Store(url) as store:
        sessions = {s.name: s.id for s in store.list_sessions()}
        assert set(sessions) == {"label: cd-0", "label: cd-1"}
        first = {sid: _live(store, sid) for sid in sessions.values()}
        assert all({a.node_id for a in store.auto_labels(sid)} == nodes for sid, nodes in first.items())
    capsys.readouterr()
    assert app.main(args) == 0  # a rerun neither searches again nor relabels
    assert f"skipped {sum(map(len, first.values()))} already labeled" in capsys.readouterr().err
    with Store(url) as store:
        assert len(store.list_sessions()) == 2


def test_label_problems_without_a_gold_answer_is_one_line(tmp_path, capsys):
    problems = tmp_path / "p.jsonl"
    problems.write_text(json.dumps({"id": "m", "problem": "What is 2 + 2?"}) + "\n")
    code = app.main(["label", "--problems", str(problems), "--db", f"sqlite:///{tmp_path / 'x.db'}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == [f"error: {problems}: problem 'm' has no gold answer; rollout labels need one"]

