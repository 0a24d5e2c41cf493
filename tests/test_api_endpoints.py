"""Every named API endpoint through gradio_client, including out-of-range parameters rejected with a clear message."""
from __future__ import annotations

import time

import pytest
from gradio_client import Client

from reasoning.backends import load_generator, load_scorer
from reasoning.limits import MAX_PROBLEM_CHARS
from storage import Store
from ui.testing import serve

pytestmark = pytest.mark.model  # a served app on tiny models
PROBLEM = "Natalia sold clips to 48 of her friends in April, and then half as many in May. How many in all?"


@pytest.fixture(scope="module")
def api(tmp_path_factory, tiny):
    db = tmp_path_factory.mktemp("api") / "explorer.db"
    store = Store(f"sqlite:///{db}")
    generator = load_generator(tiny.gpt2_tags, max_step_tokens=8)
    scorer = load_scorer(tiny.token_classification)
    with serve(generator=generator, scorer=scorer, store=store) as url:
        yield Client(url, verbose=False), store
    store.close()


@pytest.fixture(scope="module")
def session(api):
    client, _ = api
    out = client.predict(PROBLEM, "mcts", 20, api_name="/search")
    return out["session_id"]


def rejected(client: Client, match: str, *args, api_name: str) -> None:
    with pytest.raises(Exception, match=match):
        client.predict(*args, api_name=api_name)


def test_api_lists_every_action(api):
    client, _ = api
    names = set(client.view_api(return_format="dict", print_info=False)["named_endpoints"])
    assert names >= {f"/{n}" for n in (
        "search", "stop", "tree", "trace", "rate", "rate_children", "edit_step", "human_step", "expand", "resume",
        "prune", "undo", "summarize", "sessions", "rename_session", "delete_session", "restore_session",
        "analytics", "export")}


def test_search_and_read(api, session):
    client, store = api
    tree = client.predict(session, api_name="/tree")
    assert len(tree["nodes"]) == 21 and tree["problem"]["text"] == PROBLEM
    assert len(store.load_tree(session)) == 21
    trace = client.predict(session, "0.0", api_name="/trace")
    assert [row["node"] for row in trace] == ["0", "0.0"] and trace[1]["PRM"] is not None
    assert client.predict(session, api_name="/stop") is False  # nothing running
    stats = client.predict(session, api_name="/analytics")
    assert stats and {"factor", "depth", "nodes", "visits", "value"} <= set(stats[0])


def test_search_rejects_bad_parameters(api):
    client, _ = api
    rejected(client, "budget must be between 1 and", PROBLEM, "mcts", 0, api_name="/search")
    rejected(client, "budget must be between 1 and", PROBLEM, "mcts", 10**6, api_name="/search")
    rejected(client, "algorithm must be one of", PROBLEM, "dfs", 8, api_name="/search")
    with pytest.raises(Exception, match="widen must be between 0 and 1"):
        client.predict(PROBLEM, "mcts", 8, widen=2.0, api_name="/search")
    with pytest.raises(Exception, match="answer selection must be one of"):
        client.predict(PROBLEM, "mcts", 8, answer_selection="gold", api_name="/search")
    with pytest.raises(Exception, match="merge repeated samples must be true or false"):
        client.predict(PROBLEM, "mcts", 8, merge_duplicates="yes", api_name="/search")
    widened = client.predict(PROBLEM, "mcts", 12, candidates=1, widen=0.5, fpu_reduction=0.3,
                             answer_selection="vote", api_name="/search")
    assert widened["nodes"] == 13
    rejected(client, "temperatures must be between", PROBLEM, "mcts", 8, 0, 3, 9.0, api_name="/search")
    rejected(client, "candidates must be between", PROBLEM, "mcts", 8, 0, 0, api_name="/search")
    rejected(client, "problem is empty", "   ", api_name="/search")
    rejected(client, "problem is too long", "x" * (MAX_PROBLEM_CHARS + 1), api_name="/search")


def test_rate_and_rate_children(api, session):
    client, store = api
    ann = client.predict(session, "0.0", -1, True, "off by one", "alice", api_name="/rate")
    assert (ann["rating"], ann["unsure"], ann["annotator"]) == (-1, True, "alice")
    assert [a.rating for a in store.annotations(session, "0.0")] == [-1]
    kids = [n["id"] for n in client.predict(session, api_name="/tree")["nodes"] if n["parent"] == "0.0"]
    assert client.predict(session, "0.0", {k: 1 for k in kids}, "bob", api_name="/rate_children") == len(kids)
    rejected(client, "rating must be -1, 0 or \\+1", session, "0.0", 2, api_name="/rate")
    rejected(client, "rating must be -1, 0 or \\+1", session, "0.0", {kids[0]: 7}, "bob", api_name="/rate_children")
    rejected(client, "is not a child of node", session, "0.0", {"0.5": 1}, "bob", api_name="/rate_children")
    rejected(client, "not a node id", session, "0.x", 1, api_name="/rate")
    rejected(client, "no node 0.99", session, "0.99", 1, api_name="/rate")
    rejected(client, "session 999 not found", 999, "0.0", 1, api_name="/rate")
    rejected(client, "session id must be a positive integer", -3, "0.0", 1, api_name="/rate")
    rejected(client, "the root is the problem", session, "0", 1, api_name="/rate")
    rejected(client, "note is too long", session, "0.0", 1, False, "n" * 3000, api_name="/rate")


def test_edit_human_expand_prune_undo(api, session):
    client, store = api
    edited = client.predict(session, "0.1", "a better step <b>", "alice", api_name="/edit_step")
    tree = store.load_tree(session)
    assert tree.node(edited)["origin"] == "edited" and tree.parent(edited) == "0"
    assert tree.node(edited)["score"] is not None and tree.node(edited)["text"] == "a better step <b>"
    human = client.predict(session, "0.1", "my own step", "verify", "alice", api_name="/human_step")
    assert store.load_tree(session).node(human)["origin"] == "human"
    new = client.predict(session, "0.1", "verify", 2, "alice", api_name="/expand")
    assert len(new) == 2 and all(n.startswith("0.1.") for n in new)
    assert client.predict(session, "0.2", "alice", api_name="/prune")["pruned"] is True
    assert store.load_tree(session).node("0.2")["pruned"] is True
    undone = client.predict(session, "alice", api_name="/undo")["undid"]
    assert undone["kind"] == "prune" and store.load_tree(session).node("0.2")["pruned"] is False
    rejected(client, "number of children must be between 1 and 16", session, "0.1", "verify", 99, api_name="/expand")
    rejected(client, "factor must be one of", session, "0.1", "dance", 2, api_name="/expand")
    rejected(client, "step text is empty", session, "0.1", "  ", api_name="/edit_step")
    rejected(client, "the text is unchanged", session, edited, "a better step <b>", api_name="/edit_step")
    rejected(client, "the root cannot be pruned", session, "0", api_name="/prune")


def test_resume_and_summarize(api, session):
    client, store = api
    before = len(store.load_tree(session))
    out = client.predict(session, "0.0", 5, api_name="/resume")
    assert out["nodes"] == before + 5 == len(store.load_tree(session))
    assert isinstance(client.predict(session, "0.0", api_name="/summarize"), str)
    rejected(client, "budget must be between 1 and", session, "0.0", 0, api_name="/resume")


def test_sessions_rename_delete_restore(api, session):
    client, _ = api
    assert client.predict(session, "renamed run", "alice", api_name="/rename_session")["name"] == "renamed run"
    assert [s["id"] for s in client.predict("renamed", False, api_name="/sessions")] == [session]
    assert client.predict(session, "alice", api_name="/delete_session")["deleted"] is True
    assert client.predict("renamed", False, api_name="/sessions") == []
    rejected(client, "is deleted: restore it", session, "0.0", 1, api_name="/rate")
    rejected(client, "is deleted: restore it", session, "0.0", "alice", api_name="/prune")
    assert [s["id"] for s in client.predict("renamed", True, api_name="/sessions")] == [session]
    assert client.predict(session, "alice", api_name="/restore_session")["deleted"] is False
    rejected(client, "name is empty", session, "", api_name="/rename_session")
    rejected(client, "session 4242 not found", 4242, "alice", api_name="/delete_session")


def test_export(api, session):
    client, _ = api
    client.predict(session, "0.0", 1, False, "", "carol", api_name="/rate")
    out = client.predict("trl", "human", "drop", False, False, [session], 3, api_name="/export")
    assert out["manifest"]["format"] == "trl" and out["manifest"]["counts"]["records"] >= 1
    rec = out["records"][0]
    assert set(rec) >= {"prompt", "completions", "labels"} and all(isinstance(x, bool) for x in rec["labels"])
    rejected(client, "format must be one of", "csv", api_name="/export")
    rejected(client, "neutral must be one of", "trl", "human", "maybe", api_name="/export")
    rejected(client, "preview must be an integer between 0 and 50", "trl", "human", "drop", False, False, None, 500,
             api_name="/export")
    rejected(client, "no session 777", "trl", "human", "drop", False, False, [777], api_name="/export")


def test_rate_retries_are_idempotent_and_stale_versions_conflict(api, session):
    client, store = api
    first = client.predict(session, "0.1", 1, False, "", "carol", "retry-1", None, api_name="/rate")
    again = client.predict(session, "0.1", -1, False, "", "carol", "retry-1", None, api_name="/rate")
    assert again == first  # the same action id twice has one effect
    mine = [a for a in store.annotations(session, "0.1") if a.annotator == "carol"]
    assert len(mine) == 1 and mine[0].rating == 1
    rejected(client, "(?i)conflict|version", session, "0.1", -1, False, "", "carol", "", 0, api_name="/rate")
    rejected(client, "action_id must be", session, "0.1", 1, False, "", "carol", "bad id!", None, api_name="/rate")


def test_the_web_can_only_load_model_folders_the_server_offers(api, tmp_path):
    from ui.app import ENGINE
    from ui.validate import UserError

    for path in ("/etc", "/nonexistent", str(tmp_path)):
        with pytest.raises(UserError, match="is not a model folder this server offers"):
            ENGINE.models(path, None)


def test_api_actions_do_not_rebuild_gradios_event_analytics(api, session, monkeypatch):
    """Gradio rebuilt a pandas table of its last 10,000 events after every event, for a summary nothing here reads:
    about a fifth of the server's CPU per rating with 16 annotators (BENCHMARKS.md, "Annotators at speed"). The served
    app's queue (`ui.app.configure_queue`) does not."""
    from gradio.queueing import Queue

    built: list[int] = []
    table = Queue._get_df

    def counted(records):
        built.append(len(records))
        return table(records)

    monkeypatch.setattr(Queue, "_get_df", staticmethod(counted))
    client, _ = api
    for rating in (1, 0, -1, 1):
        client.predict(session, "0.1", rating, False, "", "dora", "", None, api_name="/rate")
    assert built == []


def test_an_edit_does_not_wait_for_a_running_search(api, session):
    """Whole searches and short model calls have their own slots: an annotator's edit (re-scored by the PRM) is
    answered while another user's long search is still running, instead of queueing behind all of it."""
    client, _ = api
    known = {s["id"] for s in client.predict(api_name="/sessions")}
    job = client.submit(PROBLEM, "mcts", 4000, api_name="/search")
    started = None
    for _ in range(600):  # the search's session is stored when it starts
        started = next((s["id"] for s in client.predict(api_name="/sessions") if s["id"] not in known), None)
        if started is not None:
            break
        time.sleep(0.1)
    assert started is not None, "the long search never started"
    edited = client.predict(session, "0.1", "an edit during a search", "carol", api_name="/edit_step")
    still_running = client.predict(started, api_name="/stop")  # true only while the search runs
    job.result(timeout=300)
    assert edited.startswith("0.")
    assert still_running, "the edit was answered only after the search had ended"
