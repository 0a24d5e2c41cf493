"""Clicks and ratings on a stored tree load it from the database at most once (issue 13: a click loaded a 2,000-node
tree three times), and every change made through the services is seen by the next read."""
from __future__ import annotations

import pytest

from reasoning.backends import load_generator, load_scorer
from storage import Store
from ui.pages.inspector import node_view
from ui.service import Explorer

pytestmark = pytest.mark.model  # tiny models built from configs
PROBLEM = "Natalia sold clips to 48 of her friends in April, and then half as many in May. How many in all?"


class CountingStore(Store):
    """The real store, counting how often a whole tree is loaded."""

    loads = 0

    def load_tree(self, session_id):
        self.loads += 1
        return super().load_tree(session_id)


@pytest.fixture(scope="module")
def engine(tmp_path_factory, tiny):
    store = CountingStore(f"sqlite:///{tmp_path_factory.mktemp('cache') / 'explorer.db'}")
    generator = load_generator(tiny.gpt2_tags, max_step_tokens=8)
    scorer = load_scorer(tiny.token_classification)
    yield Explorer(generator=generator, scorer=scorer, store=store)
    store.close()


@pytest.fixture(scope="module")
def sid(engine):
    config = engine.config({"algorithm": "mcts", "budget": 12, "seed": 0})
    return list(engine.run_search(PROBLEM, config))[-1].session_id


def _loads(engine, act) -> int:
    before = engine.store.loads
    act()
    return engine.store.loads - before


def test_a_click_loads_the_tree_at_most_once_and_the_next_click_not_at_all(engine, sid):
    engine.sessions_.changed(sid)
    nodes = sorted(engine.tree(sid).graph.nodes)
    engine.sessions_.changed(sid)
    assert _loads(engine, lambda: node_view(engine, sid, nodes[1], "value", "ann")) == 1
    assert _loads(engine, lambda: node_view(engine, sid, nodes[2], "human", "ann")) == 0


def test_ratings_keep_the_cached_tree_and_changes_drop_it(engine, sid):
    tree = engine.tree(sid)
    first = tree.children("0")[0]
    assert _loads(engine, lambda: engine.rate(sid, first, 1, annotator="ann")) == 0
    assert _loads(engine, lambda: engine.rate_children(sid, "0", [[first, -1]], annotator="ann")) == 0
    assert _loads(engine, lambda: node_view(engine, sid, first, "human", "ann")) == 0

    engine.prune(sid, first, annotator="ann")
    assert engine.tree(sid).node(first)["pruned"], "a prune is seen by the next read"
    engine.undo(sid, annotator="ann")
    assert not engine.tree(sid).node(first)["pruned"], "an undo is seen by the next read"

    new = engine.expand(sid, first, engine.catalog.names[0], 2, annotator="ann")
    assert set(new) <= set(engine.tree(sid).children(first, include_pruned=True))
    edited = engine.edit(sid, new[0], "a different step", annotator="ann")
    assert edited in engine.tree(sid)
    human = engine.add_human_step(sid, first, "a step by hand", annotator="ann")
    assert human in engine.tree(sid)

    before = len(engine.tree(sid))
    last = list(engine.resume(sid, "0", 4))[-1]
    assert len(engine.tree(sid)) == len(last.tree) > before, "a resumed search is seen by the next read"


def test_a_failed_change_leaves_the_cached_tree_as_stored(engine, sid):
    tree = engine.tree(sid)
    first = tree.children("0")[0]
    with pytest.raises(Exception, match="unchanged"):
        engine.edit(sid, first, tree.node(first)["text"], annotator="ann")
    assert engine.tree(sid) is tree and len(tree) == len(engine.store.load_tree(sid))
