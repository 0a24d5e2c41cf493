"""A live search runs in a worker thread: its reader (the page, the API) never holds it back (issue 13, defect 6)."""
from __future__ import annotations

import time

import pytest

from reasoning.backends import load_generator, load_scorer
from storage import Store
from ui.service import Explorer

pytestmark = pytest.mark.model  # tiny models built from configs
PROBLEM = "Natalia sold clips to 48 of her friends in April, and then half as many in May. How many in all?"
BUDGET = 16


@pytest.fixture(scope="module")
def engine(tmp_path_factory, tiny):
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('runs') / 'explorer.db'}")
    generator = load_generator(tiny.gpt2_tags, max_step_tokens=8)
    scorer = load_scorer(tiny.token_classification)
    yield Explorer(generator=generator, scorer=scorer, store=store)
    store.close()


def _config(engine: Explorer):
    return engine.config({"algorithm": "mcts", "budget": BUDGET, "seed": 0})


def test_a_stalled_reader_does_not_stop_the_search(engine):
    """The reader takes the first update and then reads nothing: the search must still run to its end (before the
    worker thread it was suspended inside the reader's generator, so it never finished)."""
    updates = engine.run_search(PROBLEM, _config(engine))
    first = next(updates)
    assert engine.running(first.session_id)
    deadline = time.monotonic() + 240
    while engine.running(first.session_id):
        assert time.monotonic() < deadline, "the search did not go on while its reader was stalled"
        time.sleep(0.05)
    stored = engine.store.load_tree(first.session_id)  # saved by the worker when it ended
    rest = list(updates)
    last = rest[-1]
    assert last.done and last.result is not None
    assert len(rest) <= 2, "a stalled reader gets the latest snapshot, not one update per event"
    assert len(stored) == len(last.tree) > 1

    eager = list(engine.run_search(PROBLEM, _config(engine)))[-1]  # same seed, read as fast as it comes
    assert len(eager.tree) == len(last.tree)
    assert eager.result.answer == last.result.answer


def test_snapshots_are_copies_and_closing_the_reader_does_not_stop_the_search(engine):
    """Issue 22, item 5: a page closed during its search used to stop it (72 of 400 nodes, with no mark); the search
    goes on to its budget and is stored as finished."""
    updates = engine.run_search(PROBLEM, engine.config({"algorithm": "mcts", "budget": 200, "seed": 1}))
    first = next(updates)
    live = engine.sessions_.live[first.session_id]
    assert first.tree is not live, "a reader draws a copy, never the tree the worker is growing"
    updates.close()
    deadline = time.monotonic() + 240
    while engine.running(first.session_id):
        assert time.monotonic() < deadline, "the search did not end"
        time.sleep(0.05)
    assert len(engine.store.load_tree(first.session_id)) == 201  # the root and the budget's 200 nodes
    assert engine.sessions()[0][:1] + engine.sessions()[0][-1:] == [first.session_id, "finished"]


def test_stop_ends_the_worker_search_and_the_reader_gets_its_result(engine):
    updates = engine.run_search(PROBLEM, engine.config({"algorithm": "mcts", "budget": 200, "seed": 2}))
    first = next(updates)
    assert engine.stop(first.session_id)
    last = list(updates)[-1]
    assert last.done and last.result.stopped and "stopped" in last.status
    assert not engine.running(first.session_id) and not engine.stop(first.session_id)
    assert len(engine.store.load_tree(first.session_id)) == len(last.tree) < 200
    assert engine.store.session(first.session_id).meta["search"] == "stopped"
