"""The UI's automatic-label service functions (no gradio): estimate by rollouts on a node and first-error search on
a path, with the real demo models, a progress callback and a stop Event."""
from __future__ import annotations

import threading

import pytest

from demo.scaling import demo_config
from reasoning.backends import DEMO_GENERATOR_DIR, DEMO_PRM_DIR, load_generator, load_scorer
from reasoning.factors import load_catalog
from reasoning.problems import countdown_problem
from reasoning.search import search
from storage import Store
from storage.labels import leaf_paths
from ui.services.autolabel import Stopped, estimate_by_rollouts, find_first_error

pytestmark = pytest.mark.model
DEMO_FACTORS = {"compute", "verify", "correct", "conclude"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    catalog = load_catalog().with_enabled(DEMO_FACTORS)
    generator = load_generator(DEMO_GENERATOR_DIR, catalog=catalog, device="cpu")
    scorer = load_scorer(DEMO_PRM_DIR, device="cpu")
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('svc') / 'x.db'}")
    tree, _ = search(countdown_problem([4, 7, 8, 8], pid="cd"), generator, scorer, demo_config("mcts", 8))
    sid = store.create_session(tree, catalog=catalog.to_dict())
    yield store, generator, scorer, sid, tree
    store.close()


def test_estimate_by_rollouts_stores_the_label_and_reports_progress(setup):
    store, generator, scorer, sid, tree = setup
    node = next(n for n in leaf_paths(tree)[0] if not tree.node(n)["terminal"])
    seen = []
    got = estimate_by_rollouts(store, generator, scorer, sid, node, rollouts=4, seed=1,
                               progress=lambda d, t: seen.append((d, t)))
    assert got["rollouts"] == 4 and 0 <= got["successes"] <= 4 and got["value"] == got["successes"] / 4
    assert got["prm_score"] == tree.node(node)["score"] and seen[-1] == (1, 1)
    (label,) = [a for a in store.auto_labels(sid) if a.node_id == node]
    assert (label.rollouts, label.successes, label.method) == (4, got["successes"], "rollout")
    assert store.annotations(sid) == []  # never mixed with human ratings


def test_find_first_error_labels_the_path(setup):
    store, generator, scorer, sid, tree = setup
    leaf = leaf_paths(tree)[-1][-1]
    got = find_first_error(store, generator, scorer, sid, leaf, rollouts=3, seed=2)
    assert got["path"] == tree.path(leaf)[1:] and got["rounds"] >= 1
    assert got["first_error"] is None or got["first_error"] == got["path"][got["index"]]
    firsts = {a.node_id: a for a in store.auto_labels(sid) if a.method == "first_error"}
    assert set(got["path"]) <= set(firsts)


def test_stop_event_stops_before_anything_is_stored(setup):
    store, generator, scorer, sid, tree = setup
    node = leaf_paths(tree)[0][0]
    before = store.auto_labels(sid)
    stop = threading.Event()
    stop.set()
    if tree.node(node)["terminal"]:
        pytest.skip("the first step answered already")
    with pytest.raises(Stopped):
        estimate_by_rollouts(store, generator, scorer, sid, node, rollouts=4, stop=stop)
    assert store.auto_labels(sid) == before


def test_bad_parameters_are_refused(setup):
    store, generator, scorer, sid, _ = setup
    with pytest.raises(ValueError, match="rollouts must be"):
        estimate_by_rollouts(store, generator, scorer, sid, "0.0", rollouts=0)
    with pytest.raises(ValueError, match="no step '9.9'"):
        estimate_by_rollouts(store, generator, scorer, sid, "9.9", rollouts=2)
