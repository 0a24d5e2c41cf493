"""The real vLLM engine: `engine serve` for the demo generator and the demo PRM on loopback, MCTS through both
servers end to end (a tree in the database, answers checked by the domain checker), and the served models against
the transformers backend on the same inputs.

What must agree: greedy steps token for token (same prompt ids, same stop rules), the factor prior and PRM scores to
1e-3, and so greedy search trees node for node. What cannot: sampled steps. vLLM draws from its own seeded sampler,
not from torch.multinomial with the project's generator, so at temperature 1 the two backends write different (both
valid) trees for the same seed; for those the test asserts what holds for any tree: the budget is spent, every node's
score is the local PRM's score of its path, and every answer is checked by the domain's checker.

The engine environment is made here when it is missing (a fresh CI machine: about 10 minutes, 3.4 GB); on a machine
that has it, it is reused.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from engine.env import ensure_engine_env
from engine.server import EngineServer, ServerSpec, start_all
from reasoning.backends import DEMO_GENERATOR_DIR, DEMO_PRM_DIR, load_generator, load_scorer
from reasoning.domains import get_domain
from reasoning.factors import load_catalog
from reasoning.http_client import free_port
from reasoning.problems import read_problems
from reasoning.search import search
from reasoning.tree import ROOT
from reasoning.types import ExpansionRequest, State

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
EVAL = REPO / "reasoning" / "data" / "countdown_eval.jsonl"
DEMO_FACTORS = ["compute", "verify", "correct", "conclude"]


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """The demo generator and the demo PRM served by vLLM on free loopback ports, each pinned to its own core."""
    if os.environ.get("REASONING_SKIP_VLLM"):
        pytest.skip("REASONING_SKIP_VLLM is set")
    running = os.environ.get("REASONING_VLLM_TEST_URLS")  # "GEN_URL,PRM_URL": servers already up (development)
    if running:
        gen_url, prm_url = running.split(",")
        yield gen_url, prm_url
        return
    ensure_engine_env()
    logs = tmp_path_factory.mktemp("vllm-logs")
    cores = os.cpu_count() or 1
    gen = EngineServer(ServerSpec(model=DEMO_GENERATOR_DIR, port=free_port(), cores="0"), log_file=logs / "gen.log")
    prm = EngineServer(ServerSpec(model=DEMO_PRM_DIR, port=free_port(), pooling=True, cores=str(1 % cores)),
                       log_file=logs / "prm.log")
    try:
        start_all([gen, prm])  # both at once: each takes 1-3 minutes, mostly in its own process
        yield gen.url, prm.url
    finally:
        gen.stop()
        prm.stop()


@pytest.fixture(scope="module")
def catalog():
    return load_catalog().with_enabled(DEMO_FACTORS)


@pytest.fixture(scope="module")
def local(catalog):
    return load_generator(DEMO_GENERATOR_DIR, catalog=catalog, device="cpu"), load_scorer(DEMO_PRM_DIR, device="cpu")


@pytest.fixture(scope="module")
def served(servers, catalog):
    gen_url, prm_url = servers
    return load_generator(gen_url, catalog=catalog), load_scorer(prm_url)


def _problems(k: int):
    return read_problems(EVAL)[:k]


def test_served_prm_scores_match_the_transformers_prm(local, served):
    problem = _problems(1)[0]
    paths = [["4+4=8 (left: 4 5 8)"], ["4+4=8 (left: 4 5 8)", "8-5=3 (left: 3 4)", "3*4=12 (answer: (8-5)*4)"],
             ["5-4=1 (left: 1 4 4)", "wrong"], []]
    want = local[1].score(problem, paths)
    got = served[1].score(problem, paths)
    assert [len(g) for g in got] == [1, 3, 2, 0]
    for g, w in zip(got, want, strict=True):
        assert g == pytest.approx(w, abs=1e-3)
    assert served[1].score_last(problem, paths[:3]) == pytest.approx([w[-1] for w in want[:3]], abs=1e-3)


def test_greedy_steps_and_priors_match_token_for_token(local, served, catalog):
    factors = list(catalog.enabled)
    checked = with_prior = 0
    for problem in _problems(3):
        state = State(problem)
        for _ in range(3):  # walk three greedy compute steps deep
            assert served[0].factor_prior(state, factors) == pytest.approx(local[0].factor_prior(state, factors),
                                                                           abs=1e-3)
            compute = catalog.get("compute")
            assert served[0].context_ids(state, factors) == local[0].context_ids(state, factors)
            request = ExpansionRequest(state, compute, 1, temperature=0.0, seed=1, prior_over=tuple(factors))
            want = local[0].propose_batch([request])[0][0]
            got = served[0].propose_batch([request])[0][0]
            assert got.meta["token_ids"] == want.meta["token_ids"]
            assert (got.text, got.factor, got.tokens, got.meta["stop"]) == (want.text, want.factor, want.tokens,
                                                                            want.meta["stop"])
            assert got.logprob == pytest.approx(want.logprob, abs=1e-3)
            assert ("next_prior" in got.meta) == ("next_prior" in want.meta)
            if "next_prior" in want.meta:
                assert got.meta["next_prior"] == pytest.approx(want.meta["next_prior"], abs=1e-3)
                with_prior += 1
            checked += 1
            state = state.extend(get_domain(problem.domain).observe(state, want))
            if want.terminal:
                break
    assert checked >= 3 and with_prior >= 3


def _tree_signature(tree):
    """Each node's path of (factor, text) with its PRM score, for comparing trees node for node."""
    out = {}
    for nid in tree.graph.nodes:
        if nid == ROOT:
            continue
        a = tree.node(nid)
        out[nid] = (a["factor"], a["text"], tree.parent(nid), round(a["score"] or 0.0, 3))
    return out


def test_greedy_search_gives_the_same_tree_on_both_backends(local, served, catalog):
    from demo.scaling import demo_config

    for problem in _problems(2):
        config = demo_config("greedy", budget=8, seed=3)
        t_local, r_local = search(problem, *local, config, catalog=catalog)
        t_served, r_served = search(problem, *served, config, catalog=catalog)
        a, b = _tree_signature(t_local), _tree_signature(t_served)
        assert a.keys() == b.keys()
        for nid in a:
            assert a[nid][:3] == b[nid][:3]
            assert a[nid][3] == pytest.approx(b[nid][3], abs=2e-3)
        assert r_served.answer == r_local.answer


def test_mcts_through_both_servers_end_to_end(servers, local, tmp_path):
    """`solve` with MCTS against the two servers: records checked by the domain, every tree in the database, every
    node's score the local PRM's score of its path."""
    from storage import Store

    gen_url, prm_url = servers
    problems = tmp_path / "problems.jsonl"
    problems.write_text("".join(line + "\n" for line in EVAL.read_text().splitlines()[:4]))
    db = f"sqlite:///{tmp_path / 'trees.db'}"
    out = tmp_path / "results.jsonl"
    proc = subprocess.run(
        [sys.executable, "app.py", "solve", "--problems", str(problems), "--out", str(out), "--algorithm", "mcts",
         "--budget", "16", "--parallel-leaves", "4", "--seed", "0", "--workers", "2", "--quiet",
         "--generator", gen_url, "--prm", prm_url, "--db", db],
        cwd=REPO, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    store = Store(db)
    sessions = store.list_sessions()
    assert len(records) == 4 and len(sessions) == 4
    by_id = {p.id: p for p in _problems(4)}
    domain = get_domain("countdown")
    for record in records:
        assert record["solved"] == domain.check(by_id[record["id"]], record["answer"])
        assert record["nodes"] == 16
    scorer = local[1]
    for info in sessions:
        tree = store.load_tree(info.id)
        assert len(tree.graph.nodes) == 17
        assert json.loads(json.dumps(tree.to_dict(), default=str))  # stored and loaded whole
        nodes = [n for n in tree.graph.nodes if n != ROOT][:6]
        paths = [[tree.node(m)["text"] for m in tree.path(n) if m != ROOT] for n in nodes]
        want = scorer.score(tree.problem, paths)
        for n, w in zip(nodes, want, strict=True):
            assert tree.node(n)["score"] == pytest.approx(w[-1], abs=2e-3)


def test_solve_vllm_starts_and_stops_its_own_engines(tmp_path):
    """`solve --vllm`: one command starts vLLM for the demo generator and the demo PRM, searches through them, and
    leaves no engine running when it ends (the ports it printed answer nothing afterwards)."""
    if os.environ.get("REASONING_SKIP_VLLM"):
        pytest.skip("REASONING_SKIP_VLLM is set")
    ensure_engine_env()
    problems = tmp_path / "problems.jsonl"
    problems.write_text("".join(line + "\n" for line in EVAL.read_text().splitlines()[:2]))
    out = tmp_path / "results.jsonl"
    proc = subprocess.run(
        [sys.executable, "app.py", "solve", "--vllm", "--problems", str(problems), "--out", str(out),
         "--algorithm", "mcts", "--budget", "8", "--seed", "0", "--quiet"],
        cwd=REPO, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    records = [json.loads(line) for line in out.read_text().splitlines()]
    by_id = {p.id: p for p in _problems(2)}
    domain = get_domain("countdown")
    assert len(records) == 2
    for record in records:
        assert record["nodes"] == 8 and record["solved"] == domain.check(by_id[record["id"]], record["answer"])
    urls = re.findall(r"engine: ready at (http://\S+/v1)", proc.stderr)
    assert len(urls) == 2 and urls[0] != urls[1]  # the generator's server and the PRM's
    for url in urls:
        with pytest.raises(OSError):
            urllib.request.urlopen(url + "/models", timeout=2)
