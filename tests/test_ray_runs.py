"""`solve --ray` and `label --ray`: a run's problems searched, and then its trees labeled, on a two-node Ray cluster on
this machine (`ray.cluster_utils.Cluster`, a head and a second node of one CPU each) against PostgreSQL. The same
per-problem answers as the single-process run with the same seed, and the same rollout labels as an in-process
`label`; a worker killed mid-run, and the driver killed mid-run then resumed with --ray: every problem written once;
a label worker killed mid-session: every step labeled once. 40 problems at best_of_n budget 6, plus the one-line
refusals, which need neither Ray's cluster nor PostgreSQL."""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cli.search import add_solve_arguments, run_solve
from experiments import distributed

ROOT = Path(__file__).resolve().parents[1]
EVAL = ROOT / "reasoning" / "data" / "countdown_eval.jsonl"
N = 40
SEARCH = ["--algorithm", "best_of_n", "--budget", "6", "--seed", "3"]


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_solve_arguments(p)
    return p.parse_args(list(argv))


# -- refusals (no cluster, no database) -----------------------------------------------------------------------------
def test_ray_with_sqlite_or_without_a_run_is_refused_in_one_line(tmp_path):
    pytest.importorskip("ray")
    src = tmp_path / "p.jsonl"
    src.write_text(EVAL.read_text().splitlines(keepends=True)[0])
    db = tmp_path / "x.db"
    args = parse("--problems", str(src), "--out", str(tmp_path / "o.jsonl"), *SEARCH, "--run-name", "r",
                 "--ray", "auto", "--db", f"sqlite:///{db}")
    with pytest.raises(ValueError, match=r"^--ray needs a database every node reaches: PostgreSQL") as e:
        run_solve(args)
    assert "\n" not in str(e.value) and not db.exists()  # refused before anything was made
    args = parse("--problems", str(src), "--out", str(tmp_path / "o.jsonl"), *SEARCH, "--ray", "auto")
    with pytest.raises(ValueError, match="--ray records a run in the database: give --run-name"):
        run_solve(args)
    args = parse("--problems", str(src), "--out", str(tmp_path / "o.jsonl"), *SEARCH, "--run-name", "r",
                 "--ray", "auto", "--vllm", "--db", "postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(ValueError, match=r"^--vllm starts engines on this machine only"):
        run_solve(args)


def test_label_ray_with_sqlite_or_with_problems_is_refused_in_one_line(tmp_path):
    from cli.label import add_label_arguments, run_label

    p = argparse.ArgumentParser()
    add_label_arguments(p)
    db = tmp_path / "x.db"
    with pytest.raises(ValueError, match=r"^--ray needs a database every node reaches: PostgreSQL") as e:
        run_label(p.parse_args(["--all", "--ray", "auto", "--db", f"sqlite:///{db}"]))
    assert "\n" not in str(e.value) and not db.exists()
    with pytest.raises(ValueError, match=r"^--ray labels stored sessions: search the problems first"):
        run_label(p.parse_args(["--problems", str(EVAL), "--ray", "auto", "--db", f"sqlite:///{db}"]))
    with pytest.raises(ValueError, match=r"^--vllm starts engines on this machine only"):
        run_label(p.parse_args(["--all", "--ray", "auto", "--vllm", "--db", "postgresql://nobody@127.0.0.1:1/x"]))


def test_ray_missing_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as on a machine without it
    src = tmp_path / "p.jsonl"
    src.write_text(EVAL.read_text().splitlines(keepends=True)[0])
    args = parse("--problems", str(src), "--out", str(tmp_path / "o.jsonl"), *SEARCH, "--run-name", "r",
                 "--ray", "auto", "--db", "postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(RuntimeError, match=r"^--ray needs Ray, which is not installed here: pip install 'ray>=2\.9'"):
        run_solve(args)


def test_a_problem_whose_worker_died_goes_to_another_worker_first():
    from reasoning.types import Problem

    a, b, c = (Problem(f"p{i}", f"{i} + {i} = ?", str(2 * i)) for i in range(3))
    q = distributed._Queue([a, b, c], workers=2, max_restarts=1, retries=2)
    assert q.next_for(0) is a and q.next_for(1) is b
    q.died(0, a)  # worker 0 died searching a: a goes back to the front, but not to worker 0
    assert q.next_for(0) is c and q.next_for(1) is a and not q.todo
    q.died(1, a)
    q.died(1, b)  # worker 1 died twice: past its restarts, only worker 0 is left and a may go back to it
    assert q.alive() == [0] and q.next_for(0) is b and q.next_for(0) is a
    with pytest.raises(RuntimeError, match="problem 'p0' killed its worker 3 times"):
        q.died(0, a)


# -- a two-node cluster and PostgreSQL ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cluster():
    """A head and a second node, one CPU each, on this machine; the test process is a driver on it."""
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    c.add_node(num_cpus=1)
    c.wait_for_nodes()
    ray.init(address=c.address, include_dashboard=False, log_to_driver=False, namespace="reasoning-explorer")
    yield c
    ray.shutdown()
    c.shutdown()


@pytest.fixture(scope="module")
def pg():
    from conftest import _pg_scratch

    yield from _pg_scratch()


@pytest.fixture(scope="module")
def problems(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("ray") / "p.jsonl"
    src.write_text("".join(EVAL.read_text().splitlines(keepends=True)[:N]))
    return src


def solve(tmp: Path, db: str, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(ROOT / "app.py"), "solve", *SEARCH, "--db", db, "--quiet", *extra],
                            cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def answers(path: Path) -> dict[str, tuple]:
    recs = [json.loads(x) for x in path.read_text().splitlines()]
    return {r["id"]: (r["answer"], r["solved"], r["nodes"], r["generated_tokens"]) for r in recs}


@pytest.fixture(scope="module")
def single(pg, problems, tmp_path_factory) -> dict[str, tuple]:
    """The single-process run's answers (threads executor, one worker)."""
    tmp = tmp_path_factory.mktemp("single")
    proc = solve(tmp, pg, "--problems", str(problems), "--run-name", "single", "--out", "s.jsonl")
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    return answers(tmp / "s.jsonl")


def items(pg: str, run: str) -> list[tuple[str, str, int]]:
    """(problem id, status, sessions holding it) per item of the named run."""
    from sqlalchemy import create_engine, text

    from storage.engine import normalize_url

    engine = create_engine(normalize_url(pg))
    try:
        with engine.connect() as c:
            return [tuple(r) for r in c.execute(text(
                "SELECT i.problem_id, i.status, (SELECT count(*) FROM sessions s WHERE s.name = "
                "'run ' || i.run_id || ': ' || i.problem_id) FROM run_items i JOIN runs r ON r.id = i.run_id "
                "WHERE r.name = :n ORDER BY i.position"), {"n": run})]
    finally:
        engine.dispose()


@pytest.mark.postgres
@pytest.mark.slow
def test_two_workers_on_two_nodes_give_the_single_process_answers(cluster, pg, problems, single, tmp_path):
    proc = solve(tmp_path, pg, "--problems", str(problems), "--run-name", "ray", "--out", "r.jsonl",
                 "--ray", cluster.address, "--workers", "2")
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert "ray: 2 workers on 2 nodes" in err  # SPREAD: one actor per node
    assert answers(tmp_path / "r.jsonl") == single
    assert [(s, n) for _, s, n in items(pg, "ray")] == [("done", 1)] * N


@pytest.mark.postgres
@pytest.mark.slow
def test_a_worker_killed_mid_run_is_retried_elsewhere_and_each_problem_written_once(cluster, pg, problems, single,
                                                                                   tmp_path):
    from cli.common import Settings, load_catalog_arg, search_config
    from cli.runs import model_spec
    from reasoning.problems import read_problems
    from storage.runs import Runs
    from storage.store import Store

    args = parse("--problems", str(problems), "--out", str(tmp_path / "o.jsonl"), *SEARCH, "--run-name", "killed",
                 "--ray", cluster.address, "--workers", "2", "--db", pg)
    config, catalog = search_config(args, Settings.from_env()), load_catalog_arg(args)
    with Store(pg) as store:
        runs = Runs(store)
        pool = distributed.Pool.start(cluster.address, workers=2, db_url=store.url, spec=model_spec(args),
                                      config=config, catalog=catalog)
        rid = distributed.start(runs, read_problems(problems), config, pool.identity, name="killed",
                                problem_set="p", started_by="test", catalog=catalog)
        victim = pool.described[0]["pid"]
        killed = threading.Event()

        def kill_when_two_are_done() -> None:
            end = time.time() + 300
            while runs.info(rid).done < 2 and time.time() < end:
                time.sleep(0.1)
            os.kill(victim, signal.SIGKILL)  # busy with its next problem: nothing of it is written
            killed.set()

        threading.Thread(target=kill_when_two_are_done, daemon=True).start()
        try:
            status = distributed.execute(runs, rid, pool)
        finally:
            pool.close()
        assert killed.is_set() and status == "finished"
        assert runs.info(rid).done == N
        results = {r.problem_id: r.answer for r in runs.results(rid)}
    assert [(s, n) for _, s, n in items(pg, "killed")] == [("done", 1)] * N  # each problem once, one tree each
    assert results == {pid: a[0] for pid, a in single.items()}


@pytest.mark.postgres
@pytest.mark.slow
def test_the_driver_killed_mid_run_resumes_on_the_cluster_from_the_database(cluster, pg, problems, single, tmp_path):
    proc = solve(tmp_path, pg, "--problems", str(problems), "--run-name", "driver", "--out", "d.jsonl",
                 "--ray", cluster.address, "--workers", "2")
    end = time.time() + 300
    while not [x for x in items(pg, "driver") if x[1] == "done"][1:] and time.time() < end and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)  # its actors go with it
    proc.wait()
    partial = sum(s == "done" for _, s, _ in items(pg, "driver"))
    assert 2 <= partial < N, f"{partial} problems were done when the driver was killed"
    resumed = solve(tmp_path, pg, "--resume", "driver", "--out", "d.jsonl", "--ray", cluster.address,
                    "--workers", "2")
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    assert f"of {N} done" in err
    assert answers(tmp_path / "d.jsonl") == single
    assert [(s, n) for _, s, n in items(pg, "driver")] == [("done", 1)] * N


# -- label --ray ----------------------------------------------------------------------------------------------------
def run_sessions(pg: str, run: str) -> list[int]:
    """The sessions holding the named run's trees."""
    from storage.runs import Runs
    from storage.store import Store

    with Store(pg, migrate=False) as store:
        rid = next(r.id for r in Runs(store).all() if r.name == run)
        return sorted(s.id for s in store.list_sessions() if s.name.startswith(f"run {rid}: "))


def rollout_labels(pg: str, sessions: list[int]) -> dict[tuple[int, str], tuple]:
    from storage.store import Store

    with Store(pg, migrate=False) as store:
        return {(sid, a.node_id): (a.rollouts, a.successes, a.soft_value) for sid in sessions
                for a in store.auto_labels(sid) if a.method == "rollout"}


def label(tmp: Path, db: str, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(ROOT / "app.py"), "label", "--rollouts", "2", "--max-steps", "4",
                             "--db", db, "--quiet", *extra], cwd=tmp, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.mark.postgres
@pytest.mark.slow
def test_label_on_two_workers_gives_the_single_process_labels(cluster, pg, single, tmp_path):
    """The single run's trees labeled on the cluster (`label --ray`) hold the labels an in-process `label` writes
    for copies of the same trees in SQLite (same seed, same chunks)."""
    from storage.store import Store

    sessions = run_sessions(pg, "single")
    assert len(sessions) == N
    proc = label(tmp_path, pg, "--session", *map(str, sessions), "--ray", cluster.address, "--workers", "2")
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert "ray: 2 label workers on 2 nodes" in err
    on_ray = rollout_labels(pg, sessions)
    lite = f"sqlite:///{tmp_path / 'copy.db'}"
    copies = {}
    with Store(pg, migrate=False) as src, Store(lite) as dst:
        for sid in sessions:
            copies[dst.create_session(src.load_tree(sid), name=f"copy {sid}")] = sid
    proc = label(tmp_path, lite, "--all")
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    local = {(copies[sid], node): v for (sid, node), v in rollout_labels(lite, list(copies)).items()}
    steps = sum(len(Store(pg, migrate=False).load_tree(sid).graph.nodes) - 1 for sid in sessions)
    assert len(on_ray) == steps and on_ray == local


@pytest.mark.postgres
@pytest.mark.slow
def test_a_label_worker_killed_mid_run_leaves_each_node_labeled_once(cluster, pg, single, tmp_path):
    """A label worker SIGKILLed once the first labels are stored: its session goes to the other worker, which skips
    the stored chunks; every step ends with exactly one rollout label."""
    from cli.common import load_catalog_arg
    from cli.runs import model_spec
    from reasoning.labeling import RolloutConfig
    from storage.store import Store

    store = Store(pg, migrate=False)
    sessions = [store.create_session(store.load_tree(sid), name=f"kill copy {sid}")  # unlabeled copies
                for sid in run_sessions(pg, "single")[:10]]
    args = parse("--problems", "x", "--out", "x", *SEARCH, "--db", pg)
    catalog = load_catalog_arg(args)
    config = RolloutConfig(catalog.enabled, n=2, temperature=0.7, max_steps=4, seed=11)
    pool = distributed.Pool.start(cluster.address, workers=2, db_url=pg, spec=model_spec(args), catalog=catalog,
                                  labels=(config, {"relabel": False, "chunk": 1, "first_error": False}))
    victim = pool.described[0]["pid"]
    killed = threading.Event()

    def kill_after_the_first_labels() -> None:  # worker 0 is then inside a session (or just past one)
        end = time.time() + 300
        while not store.auto_labels(sessions[0]) and time.time() < end:
            time.sleep(0.05)
        os.kill(victim, signal.SIGKILL)
        killed.set()

    threading.Thread(target=kill_after_the_first_labels, daemon=True).start()
    try:
        totals = distributed.label(pool, sessions)
    finally:
        pool.close()
    assert killed.is_set() and totals["labeled"] >= 1
    steps = {sid: len(store.load_tree(sid).graph.nodes) - 1 for sid in sessions}
    for sid in sessions:
        labels = [a for a in store.auto_labels(sid) if a.method == "rollout"]
        assert len(labels) == len({a.node_id for a in labels}) == steps[sid]
