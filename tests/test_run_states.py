"""A session's search state (issue 22, item 5): running while a search runs, then finished or stopped; a session
stored as running that no search of this server runs (the server died under it) reads as interrupted, and resumes."""
from __future__ import annotations

import pytest

from reasoning.backends import load_generator, load_scorer
from reasoning.tree import ReasoningTree
from reasoning.types import Problem
from storage import Store
from ui.service import Explorer

pytestmark = pytest.mark.model  # tiny models built from configs
PROBLEM = "Natalia sold clips to 48 of her friends in April, and then half as many in May. How many in all?"


@pytest.fixture(scope="module")
def models(tiny):
    return load_generator(tiny.gpt2_tags, max_step_tokens=8), load_scorer(tiny.token_classification)


def test_a_session_left_running_by_a_dead_server_reads_as_interrupted_and_resumes(tmp_path, models):
    store = Store(f"sqlite:///{tmp_path / 'explorer.db'}")
    try:
        sid = store.create_session(ReasoningTree(Problem("p", PROBLEM)), name="lost",
                                   config={"algorithm": "mcts", "budget": 8, "seed": 0})
        store.update_session_meta(sid, search="running")  # what a server that died mid-search left behind
        engine = Explorer(generator=models[0], scorer=models[1], store=store)  # the server starting again
        row = dict(zip(["id", "search"], engine.sessions()[0][:1] + engine.sessions()[0][-1:], strict=True))
        assert row == {"id": sid, "search": "interrupted"}
        last = list(engine.resume(sid, "0", 6))[-1]
        assert last.done and len(store.load_tree(sid)) == len(last.tree) > 1
        assert engine.sessions()[0][-1] == "finished"
    finally:
        store.close()


def test_a_running_search_reads_as_running(tmp_path, models):
    store = Store(f"sqlite:///{tmp_path / 'explorer.db'}")
    try:
        engine = Explorer(generator=models[0], scorer=models[1], store=store)
        updates = engine.run_search(PROBLEM, engine.config({"algorithm": "mcts", "budget": 400, "seed": 3}))
        first = next(updates)
        assert engine.sessions()[0][-1] == "running"
        engine.stop(first.session_id)
        list(updates)
        assert engine.sessions()[0][-1] == "stopped"
    finally:
        store.close()
