"""The loop's API endpoints through gradio_client against the app on the demo models: rollout estimates and
first-error search stored as auto labels, Stop, the review queue and its filters, agreement, calibration, switching
the active PRM without a restart, and out-of-range parameters refused with one clear line."""
from __future__ import annotations

import os
import time

import pytest
from gradio_client import Client

from storage import Store
from storage.labels import leaf_paths
from tiny_models import build_token_classification_prm
from ui.testing import demo_models, serve

pytestmark = [pytest.mark.model, pytest.mark.database, pytest.mark.slow]  # a served app on the demo models
PROBLEM = "Use 4 7 8 8 to make 24."


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    roots = tmp_path_factory.mktemp("offered")
    other_prm = build_token_classification_prm(roots / "tiny-prm")
    old = os.environ.get("REASONING_MODEL_ROOTS")
    os.environ["REASONING_MODEL_ROOTS"] = str(roots)  # the folder a web user may pick PRMs from
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('api-review') / 'explorer.db'}")
    generator, scorer = demo_models()
    try:
        with serve(generator=generator, scorer=scorer, store=store) as url:
            yield Client(url, verbose=False), store, other_prm
    finally:
        store.close()
        if old is None:
            os.environ.pop("REASONING_MODEL_ROOTS", None)
        else:
            os.environ["REASONING_MODEL_ROOTS"] = old


@pytest.fixture(scope="module")
def session(api):
    client, _, _ = api
    return client.predict(PROBLEM, "mcts", 12, api_name="/search")["session_id"]


def rejected(client: Client, match: str, *args, api_name: str) -> None:
    with pytest.raises(Exception, match=match):
        client.predict(*args, api_name=api_name)


def a_step(store: Store, sid: int, *, terminal: bool = False) -> str:
    tree = store.load_tree(sid)
    return next(n for path in leaf_paths(tree) for n in path if tree.node(n)["terminal"] == terminal)


def test_loop_endpoints_are_listed(api):
    client, _, _ = api
    names = set(client.view_api(return_format="dict", print_info=False)["named_endpoints"])
    assert names >= {"/estimate_rollouts", "/first_error", "/stop_autolabel", "/review_queue", "/calibration",
                     "/agreement", "/use_prm"}


def test_estimate_rollouts_stores_an_auto_label(api, session):
    client, store, _ = api
    node = a_step(store, session)
    got = client.predict(session, node, 4, 8, 3, api_name="/estimate_rollouts")
    assert got["stopped"] is False and got["node_id"] == node and got["rollouts"] == 4
    assert 0 <= got["successes"] <= 4 and got["prm_score"] == store.load_tree(session).node(node)["score"]
    (label,) = [a for a in store.auto_labels(session) if a.node_id == node and a.method == "rollout"]
    assert (label.rollouts, label.successes) == (4, got["successes"])
    assert store.annotations(session) == []  # auto labels never become human ratings
    queued = {q["node_id"]: q for q in client.predict(session, api_name="/review_queue") if q["session_id"] == session}
    assert queued[node]["rollouts"] == 4 and queued[node]["rollout"] == pytest.approx(got["successes"] / 4)


def test_first_error_labels_the_whole_path(api, session):
    client, store, _ = api
    tree = store.load_tree(session)
    leaf = leaf_paths(tree)[0][-1]
    got = client.predict(session, leaf, 2, 8, 5, api_name="/first_error")
    assert got["path"] == tree.path(leaf)[1:] and got["rounds"] >= 1
    assert got["first_error"] is None or got["first_error"] == got["path"][got["index"]]
    assert set(got["path"]) <= {a.node_id for a in store.auto_labels(session) if a.method == "first_error"}


def test_stop_ends_a_running_estimate_and_stores_nothing(api, session):
    client, store, _ = api
    node = a_step(store, session)
    before = [a for a in store.auto_labels(session) if a.node_id == node and a.method == "rollout"]
    job = client.submit(session, node, 64, 64, 11, api_name="/estimate_rollouts")
    stopped = False
    deadline = time.time() + 120
    while not job.done() and time.time() < deadline and not stopped:
        stopped = client.predict(session, api_name="/stop_autolabel")
        time.sleep(0.05)
    got = job.result(timeout=300)
    if not stopped:
        pytest.skip("the estimate finished before Stop reached it")
    assert got["stopped"] is True
    after = [a for a in store.auto_labels(session) if a.node_id == node and a.method == "rollout"]
    assert after == before  # the stopped estimate replaced nothing
    assert client.predict(session, api_name="/stop_autolabel") is False  # nothing runs any more


def test_review_queue_filters_and_agreement(api, session):
    client, store, _ = api
    queue = client.predict(session, api_name="/review_queue")
    assert queue and all(q["session_id"] == session for q in queue)
    keys = [(q["disagreement"] + 0.5 * q["uncertainty"]) for q in queue]
    assert keys == sorted(keys, reverse=True)
    first, second = queue[0]["node_id"], queue[1]["node_id"]
    for who, ratings in (("ann", (1, -1)), ("bob", (1, 1))):
        for node, rating in zip((first, second), ratings, strict=True):
            client.predict(session, node, rating, False, "", who, api_name="/rate")
    rated = client.predict(session, "", "ann", api_name="/review_queue")
    assert {q["node_id"] for q in rated} == {first, second} and rated[0]["ratings"].keys() == {"ann", "bob"}
    left = client.predict(session, "", "", "ann", api_name="/review_queue")
    assert {first, second}.isdisjoint(q["node_id"] for q in left) and len(left) == len(queue) - 2
    assert client.predict(session, "no such set", api_name="/review_queue") == []
    (row,) = [r for r in client.predict(session, api_name="/agreement") if r["annotators"] == "ann · bob"]
    assert row["measure"] == "Cohen" and row["nodes"] == 2 and row["kappa"] == pytest.approx(0.0)
    cal = client.predict(session, 5, api_name="/calibration")
    assert len(cal["human label"]) == 5 and sum(b["count"] for b in cal["human label"]) == 4


def test_use_prm_switches_scores_and_new_searches_without_a_restart(api, session):
    client, store, other = api
    stored = {q["node_id"]: q["prm"] for q in client.predict(session, "", "", "", 500, api_name="/review_queue")}
    try:
        active = client.predict(str(other), api_name="/use_prm")["active_prm"]
        assert active == str(other.resolve())
        assert client.predict(session, api_name="/calibration")["prm"] == active
        rescored = {q["node_id"]: q["prm"] for q in client.predict(session, "", "", "", 500,
                                                                    api_name="/review_queue")}
        assert rescored.keys() == stored.keys() and rescored != stored  # the tiny PRM scores differently
        sid = client.predict(PROBLEM, "greedy", 2, api_name="/search")["session_id"]
        assert store.session(sid).provenance["prm_dir"] == active
    finally:
        assert client.predict("", api_name="/use_prm")["active_prm"] != str(other.resolve())
    back = {q["node_id"]: q["prm"] for q in client.predict(session, "", "", "", 500, api_name="/review_queue")}
    assert back == stored


def test_bad_parameters_get_one_clear_line(api, session):
    client, store, _ = api
    node = a_step(store, session)
    rejected(client, "rollouts must be between 1 and 64", session, node, 0, api_name="/estimate_rollouts")
    rejected(client, "rollouts must be between 1 and 64", session, node, 1000, api_name="/estimate_rollouts")
    rejected(client, "max_steps must be between", session, node, 2, 0, api_name="/first_error")
    rejected(client, "not a node id", session, "x<y", 2, api_name="/first_error")
    rejected(client, "no step 0.99", session, "0.99", 2, api_name="/estimate_rollouts")
    rejected(client, "session id must be a positive integer", -3, node, 2, api_name="/estimate_rollouts")
    rejected(client, "limit must be between 1 and 500", session, "", "", "", 0, api_name="/review_queue")
    rejected(client, "bins must be between 1 and 50", session, 99, api_name="/calibration")
    rejected(client, "is not a model folder this server offers", "/etc", api_name="/use_prm")
    assert client.predict(session, api_name="/stop_autolabel") is False

