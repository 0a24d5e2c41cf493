"""Self-play rounds: verified trajectories and step values read from literal trees, the lineage folder's guards, and
a whole round on the demo models (search run, fine-tuned generator, retrained PRM, held-out runs, manifest),
resumed after a kill in the middle of a stage."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiments.improve import (
    ImproveError,
    Improver,
    Recipe,
    improve,
    open_lineage,
    step_values,
    verified_trajectories,
)
from reasoning.problems import read_problems
from reasoning.tree import ReasoningTree
from reasoning.types import Problem, Step
from storage.runs import Runs

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "reasoning" / "data"


def countdown_tree() -> ReasoningTree:
    """Two answers under one first step (one right, one wrong) and a wrong answer under the other."""
    t = ReasoningTree(read_problems(DATA / "countdown_eval.jsonl")[0])
    a = t.add_child("0", Step("first", "compute"))
    t.add_child(a, Step("right", "conclude", terminal=True, answer="RIGHT"))
    t.add_child(a, Step("wrong", "conclude", terminal=True, answer="1+1"))
    b = t.add_child("0", Step("other", "compute"))
    t.add_child(b, Step("wrong too", "conclude", terminal=True, answer="2+2"))
    return t


def test_trajectories_and_step_values_follow_the_gold_checker(monkeypatch):
    t = countdown_tree()
    from reasoning.domains import get_domain

    domain = get_domain("countdown")
    monkeypatch.setattr(type(domain), "check", lambda self, problem, answer: answer == "RIGHT")
    assert verified_trajectories(t, 4) == [(Step("first", "compute"), Step("right", "conclude"))]
    recs = {tuple(r["completions"]): (r["labels"], r["soft_labels"]) for r in step_values(t)}
    assert recs[("first", "right")] == ([True, True], [0.5, 1.0])
    assert recs[("first", "wrong")] == ([True, False], [0.5, 0.0])
    assert recs[("other", "wrong too")] == ([False, False], [0.0, 0.0])


def test_a_lineage_folder_refuses_another_lineage(tmp_path):
    probs = [Problem("a", "1+1?", "2"), Problem("b", "2+2?", "4")]
    open_lineage(tmp_path / "lin", "g", "p", probs[:1], probs[1:], Recipe())
    again = open_lineage(tmp_path / "lin", "g", "p", probs[:1], probs[1:], Recipe())
    assert again.generator == "g"
    with pytest.raises(ImproveError, match="another lineage"):
        open_lineage(tmp_path / "lin", "g", "p", probs[:1], probs[1:], Recipe(budget=8))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x").write_text("x")
    with pytest.raises(ImproveError, match="not empty"):
        open_lineage(tmp_path / "other", "g", "p", probs[:1], probs[1:], Recipe())


@pytest.mark.slow
def test_a_round_on_the_demo_models_resumes_after_a_kill(tmp_path, store, demo_models):
    from reasoning.backends import DEMO_GENERATOR_DIR, DEMO_PRM_DIR, load_generator, load_scorer
    from reasoning.factors import load_catalog

    if not store.url.startswith("sqlite"):
        pytest.skip("one database is enough for the round itself")
    train = read_problems(DATA / "countdown_train.jsonl")[:8]
    held = read_problems(DATA / "countdown_eval.jsonl")[:4]
    recipe = Recipe(budget=12, eval_budgets=(4, 8), min_trajectories=2, sft_epochs=1.0, prm_epochs=1.0,
                    eval_algorithms=("greedy", "mcts"))
    out = tmp_path / "lin"
    gen_dir, prm_dir = str(Path(DEMO_GENERATOR_DIR).resolve()), str(Path(DEMO_PRM_DIR).resolve())
    loaded: list[str] = []

    def load(g: str, p: str):
        loaded.append(g)
        if (g, p) == (gen_dir, prm_dir):
            return demo_models
        return load_generator(g, catalog=load_catalog()), load_scorer(p)

    def improver() -> Improver:
        return Improver(out, Runs(store), train, held, recipe, open_lineage(out, gen_dir, prm_dir, train, held,
                                                                             recipe), load)

    class Killed(Exception):
        pass

    first = improver()
    real_data = first.data

    def killed_after_search(k, run_id):  # a kill between the training search and the data stage
        raise Killed

    first.data = killed_after_search  # type: ignore[method-assign]
    with pytest.raises(Killed):
        improve(first, 1)
    assert (out / "round-1" / "search.json").exists() and not (out / "round-1" / "data.json").exists()
    search_run = json.loads((out / "round-1" / "search.json").read_text())["run"]
    del real_data
    lineage = improve(improver(), 1)  # resumes: the search is not run again
    items = Runs(store).results(search_run)
    assert len(items) == 8 and len({r.problem_id for r in items}) == 8 and all(r.status == "done" for r in items)
    m = json.loads((out / "round-1" / "manifest.json").read_text())
    assert m["parent_round"] == 0 and m["data"]["trajectories"] >= 2 and m["training_run"] == search_run
    assert set(m["metrics"]) == {"greedy@16", "mcts@4", "mcts@8"}
    assert all(v["problems"] == 4 for v in m["metrics"].values())
    gen = json.loads((out / "round-1" / "generator" / "manifest.json").read_text())
    assert gen["lineage"] == {"lineage": lineage.id, "round": 1, "parent_round": 0}
    assert gen["recommended_search"] and gen["weights_sha256"]
    assert lineage.best_round in (0, 1) and [r["round"] for r in lineage.rounds] == [0, 1]
    names = {r.name for r in Runs(store).all()}
    assert f"improve {lineage.id} round 1: mcts@8 (held out)" in names  # the Runs page compares round with round
