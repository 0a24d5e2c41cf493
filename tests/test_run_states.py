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


@pytest.mark.parametrize("mode", ["dead", "open"])
def test_resuming_from_a_step_the_calculator_rejected_is_refused_unless_the_session_keeps_them_open(tmp_path, models,
                                                                                                   mode):
    from reasoning.domains import get_domain
    from reasoning.problems import countdown_problem
    from reasoning.types import State, Step

    problem = countdown_problem([4, 7, 8, 8])
    tree = ReasoningTree(problem)
    slip = get_domain("countdown").observe(State(problem, ()), Step("8-7=2", "compute"))
    nid = tree.add_child("0", slip, score=0.9, value=0.9, meta={"invalid": slip.meta["invalid"]})
    store = Store(f"sqlite:///{tmp_path / 'explorer.db'}")
    try:
        sid = store.create_session(tree, name="slip", config={"algorithm": "mcts", "budget": 8, "seed": 0,
                                                              "invalid_steps": mode})
        engine = Explorer(generator=models[0], scorer=models[1], store=store)
        if mode == "dead":
            with pytest.raises(ValueError, match=r"^node 0\.0 is a step the calculator rejected \(8-7 is 1, not 2\); "
                                                 r"resume from a node above it$"):
                list(engine.resume(sid, nid, 4))
            assert len(store.load_tree(sid)) == 2  # nothing was added
        else:
            last = list(engine.resume(sid, nid, 4))[-1]
            assert last.done and store.load_tree(sid).children(nid)
    finally:
        store.close()
