"""`solve --workers N`: N problems in flight on models shared between threads give the records and trees that one
worker gives for the same seeds."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import app
from cli.search import solve_many
from demo.scaling import demo_config
from reasoning.backends import DEMO_GENERATOR_DIR, DEMO_PRM_DIR, load_generator, load_scorer
from reasoning.factors import load_catalog
from reasoning.problems import read_problems

pytestmark = pytest.mark.model
EVAL = Path(__file__).resolve().parents[1] / "reasoning" / "data" / "countdown_eval.jsonl"


@pytest.fixture(scope="module")
def demo():
    catalog = load_catalog().with_enabled(["compute", "verify", "correct", "conclude"])
    return (load_generator(DEMO_GENERATOR_DIR, catalog=catalog, device="cpu"),
            load_scorer(DEMO_PRM_DIR, device="cpu"), catalog)


def _run(problems, demo, workers: int):
    generator, scorer, catalog = demo
    config = demo_config("mcts", budget=8, seed=5)
    out = list(solve_many(problems, generator, scorer, config, catalog, workers))
    records = [{k: v for k, v in r.items() if k != "seconds"} for r, _ in out]
    trees = [json.dumps(t.to_dict(), sort_keys=True, default=str) for _, t in out]
    return records, trees


def test_workers_give_the_same_results_as_one(demo):
    problems = read_problems(EVAL)[:3]
    one = _run(problems, demo, workers=1)
    three = _run(problems, demo, workers=3)
    assert [r["id"] for r in three[0]] == [p.id for p in problems]
    assert three[0] == one[0]
    assert three[1] == one[1]
    assert sum(r["nodes"] for r in one[0]) == 3 * 8  # real searches ran, each spending its budget


def test_workers_flag_is_validated(tmp_path, capsys):
    problems = tmp_path / "p.jsonl"
    problems.write_text(EVAL.read_text().splitlines()[0] + "\n")
    code = app.main(["solve", "--problems", str(problems), "--out", str(tmp_path / "o.jsonl"), "--budget", "4",
                     "--workers", "0"])
    assert code == 2 and "--workers must be between 1 and 64" in capsys.readouterr().err
    assert not (tmp_path / "o.jsonl").exists()
