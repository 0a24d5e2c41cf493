"""Runs: the statistics' wiring (Wilson, paired bootstrap, McNemar's exact p against textbook values), results written
exactly once on SQLite and PostgreSQL, and `solve --run-name` killed with SIGKILL then resumed: every problem once,
the same answers as an uninterrupted run with the same seed."""
from __future__ import annotations

import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from experiments.compare import compare, summarize
from experiments.stats import paired, wilson
from reasoning.tree import ReasoningTree
from reasoning.types import Problem, Step
from storage.records import NotFoundError, StorageError
from storage.runs import Runs

ROOT = Path(__file__).resolve().parents[1]
EVAL = ROOT / "reasoning" / "data" / "countdown_eval.jsonl"


# -- statistics -----------------------------------------------------------------------------------------------------
def test_wilson_interval_is_the_textbook_formula():
    k, n, z = 171, 200, 1.959963984540054
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert wilson(k, n) == pytest.approx((centre - half, centre + half), abs=1e-9)
    assert wilson(0, 0) == (0.0, 0.0)


def test_paired_comparison_on_a_known_two_by_two_table():
    # a solved / b solved: 30 both, 5 a only, 3 b only, 7 neither
    a = [True] * 30 + [True] * 5 + [False] * 3 + [False] * 7
    b = [True] * 30 + [False] * 5 + [True] * 3 + [False] * 7
    got = paired(a, b)
    assert (got.n, got.wins, got.losses, got.ties_solved, got.ties_unsolved) == (45, 5, 3, 30, 7)
    # McNemar's exact test: two-sided binomial on the 8 discordant pairs, 5 of them one way: 2 * P(X <= 3) = 0.7265625
    assert got.mcnemar_p == pytest.approx(2 * sum(math.comb(8, i) for i in range(4)) / 2 ** 8)
    assert got.difference == pytest.approx(2 / 45)
    lo, hi = got.interval
    assert lo < got.difference < hi and -0.2 < lo < 0 < hi < 0.2
    assert paired([True, False], [True, False]).interval == (0.0, 0.0)  # no discordant pair: no spread
    with pytest.raises(ValueError, match="share no problem"):
        paired([], [])


# -- storage --------------------------------------------------------------------------------------------------------
def problems(n: int) -> list[Problem]:
    return [Problem(f"p{i}", f"{i} + {i} = ?", str(2 * i)) for i in range(n)]


def tree_for(p: Problem, answer: str) -> ReasoningTree:
    t = ReasoningTree(p)
    t.add_child("0", Step(f"the answer is {answer}", "conclude", terminal=True, answer=answer), score=0.8, value=0.8)
    return t


def record(runs: Runs, rid: int, p: Problem, answer: str) -> int | None:
    correct = answer == p.answer
    return runs.record(rid, p.id, {"answer": answer, "correct": correct, "nodes": 1, "tokens": 5, "seconds": 0.1,
                                   "found": correct, "depth": 1, "duplicates": 0, "value": 0.8,
                                   "factors": {"conclude": [1, int(correct)]}},
                       {"tree": tree_for(p, answer), "name": f"run {rid}: {p.id}"})


def test_a_result_is_written_once_and_a_resume_sees_only_the_rest(store):
    runs = Runs(store)
    ps = problems(4)
    rid = runs.create(name="r", problem_set="four", problems=ps, config={"algorithm": "greedy", "budget": 4,
                                                                          "seed": 0}, models={}, started_by="t")
    first = record(runs, rid, ps[0], "0")
    assert first is not None
    assert record(runs, rid, ps[0], "0") is None  # a second writer stores nothing: no second session
    assert len([s for s in store.list_sessions() if s.name == f"run {rid}: p0"]) == 1
    record(runs, rid, ps[1], "5")
    assert [p.id for p in runs.pending(rid)] == ["p2", "p3"]
    info = runs.info(rid)
    assert (info.problems, info.done, info.solved, info.status) == (4, 2, 1, "running")
    runs.set_status(rid, "stopped")
    assert runs.info(rid).status == "stopped" and runs.info(rid).ended is not None
    assert runs.resolve("r") == rid
    with pytest.raises(NotFoundError):
        runs.resolve("nope")


def test_compare_uses_the_shared_problems_and_refuses_none(store):
    runs = Runs(store)
    ps = problems(5)
    cfg = {"algorithm": "greedy", "budget": 4, "seed": 0}
    a = runs.create(name="a", problem_set="s", problems=ps[:4], config=cfg, models={}, started_by="t")
    b = runs.create(name="b", problem_set="s", problems=ps[1:], config=cfg, models={}, started_by="t")
    for p in ps[:4]:
        record(runs, a, p, p.answer or "")
    for p in ps[1:]:
        record(runs, b, p, "wrong" if p.id in ("p1", "p2") else p.answer or "")
    c = compare(runs, a, b)
    assert (c.stats.n, c.only_a, c.only_b) == (3, 1, 1)
    assert (c.stats.wins, c.stats.losses) == (2, 0)
    assert [r["problem_id"] for r in c.rows] == ["p1", "p2"]
    s = summarize(runs.info(b), runs.results(b))
    assert s.factors == {"conclude": (4, 2)} and s.not_found == 2
    other = runs.create(name="c", problem_set="t", problems=[Problem("q", "q?", "1")], config=cfg, models={},
                        started_by="t")
    record(runs, other, Problem("q", "q?", "1"), "1")
    with pytest.raises(ValueError, match="share no finished problem"):
        compare(runs, a, other)


def test_problem_sets_are_stored_by_name_and_paged(store):
    runs = Runs(store)
    assert runs.save_problem_set("five", problems(5)) == 5
    assert runs.problem_sets() == {"five": 5}
    assert [p.id for p in runs.problem_set("five")] == ["p0", "p1", "p2", "p3", "p4"]
    assert [p.id for p in runs.find_problems("3 + 3")] == ["p3"]
    assert len(runs.find_problems("", page=1, size=2)) == 2
    with pytest.raises(StorageError, match="other problems"):
        runs.save_problem_set("five", problems(3))


# -- solve --run-name, killed and resumed ----------------------------------------------------------------------------
def solve(tmp: Path, db: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(ROOT / "app.py"), "solve", "--algorithm", "best_of_n", "--budget",
                             "6", "--seed", "3", "--db", f"sqlite:///{db}", "--quiet", *extra], cwd=tmp, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def done_count(db: Path, run_id: int = 1) -> int:
    try:
        with sqlite3.connect(db) as c:
            return c.execute("SELECT count(*) FROM run_items WHERE run_id = ? AND status = 'done'",
                             (run_id,)).fetchone()[0]
    except sqlite3.Error:
        return 0


@pytest.mark.model
@pytest.mark.slow
def test_a_run_killed_mid_way_resumes_with_every_problem_once_and_the_same_answers(tmp_path):
    src = tmp_path / "p.jsonl"
    src.write_text("".join(EVAL.read_text().splitlines(keepends=True)[:8]))
    killed_db, whole_db = tmp_path / "killed.db", tmp_path / "whole.db"
    proc = solve(tmp_path, killed_db, "--problems", str(src), "--run-name", "k", "--out", "k.jsonl")
    end = time.time() + 300
    while done_count(killed_db) < 3 and time.time() < end and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = done_count(killed_db)
    assert 3 <= partial < 8, f"{partial} problems were done when the run was killed"
    resumed = solve(tmp_path, killed_db, "--resume", "k", "--out", "k.jsonl")
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    assert f"resuming run 1 'k': {partial} of 8 done" in err
    whole = solve(tmp_path, whole_db, "--problems", str(src), "--run-name", "w", "--out", "w.jsonl")
    _, err = whole.communicate(timeout=600)
    assert whole.returncode == 0, err
    with sqlite3.connect(killed_db) as c:
        rows = c.execute("SELECT problem_id, count(*) FROM run_items GROUP BY problem_id").fetchall()
        sessions = c.execute("SELECT count(*) FROM sessions").fetchone()[0]
    assert len(rows) == 8 and all(n == 1 for _, n in rows) and sessions == 8  # each problem once, one tree each
    killed = [json.loads(x) for x in (tmp_path / "k.jsonl").read_text().splitlines()]
    uninterrupted = [json.loads(x) for x in (tmp_path / "w.jsonl").read_text().splitlines()]
    pick = lambda recs: [(r["id"], r["answer"], r["solved"], r["nodes"]) for r in recs]  # noqa: E731
    assert pick(killed) == pick(uninterrupted)


def test_a_resume_with_changed_model_weights_is_refused(store):
    from experiments.execute import refuse_changed_models

    runs = Runs(store)
    models = {"generator": {"model_dir": "/m/g", "weights_sha256": {"model.safetensors": "aa"}},
              "prm": {"model_dir": "/m/p", "weights_sha256": {"model.safetensors": "bb"}}}
    rid = runs.create(name="r", problem_set="s", problems=problems(1), config={"algorithm": "greedy", "budget": 1},
                      models=models, started_by="t")
    refuse_changed_models(runs.info(rid), models)  # the same models: nothing said
    retrained = {**models, "prm": {"model_dir": "/m/p", "weights_sha256": {"model.safetensors": "cc"}}}
    with pytest.raises(ValueError, match=f"run {rid}'s prm changed since it started"):
        refuse_changed_models(runs.info(rid), retrained)
