"""Assigned work (issue 26, "What a team needs"): an admin assigns sessions to annotators with an overlap and writes
the guideline; each annotator's queue says "N of M done", and skips and flags count as done; an annotator cannot
assign; `/review_queue`'s `assigned_only` keeps, in the queue's order, the annotator's assigned steps still to do.
Through gradio_client logged in as each role, on SQLite and PostgreSQL."""
from __future__ import annotations

import pytest

from reasoning.tree import ReasoningTree
from reasoning.types import Problem, Step

pytestmark = pytest.mark.model
USERS = [("ada", "ada-pw", "admin"), ("alice", "alice-pw"), ("bob", "bob-pw"), ("cy", "cy-pw")]


def client(url: str, user: str):
    from gradio_client import Client

    return Client(url, auth=(user, next(u[1] for u in USERS if u[0] == user)), verbose=False)


def refused(c, *args, api_name: str) -> str:
    with pytest.raises(Exception) as exc:  # noqa: PT011 - gradio_client raises AppError with the server's line
        c.predict(*args, api_name=api_name)
    return str(exc.value)


def test_assign_with_overlap_queue_progress_skip_and_flag(db_url, demo_models):
    from storage import Store
    from ui.testing import serve

    store = Store(db_url)
    sids = []
    for i in range(3):
        t = ReasoningTree(Problem(f"p{i}", f"Use {i + 1} 3 4 6 to make 24.", "24"))
        a = t.add_child("0", Step("6 * 4 = 24", factor="compute"))
        t.add_child(a, Step("24", factor="conclude", terminal=True, answer="24"))
        sids.append(store.create_session(t, name=f"s{i}"))
    try:
        with serve(generator=demo_models[0], scorer=demo_models[1], store=store, auth=USERS) as url:
            ada, alice = client(url, "ada"), client(url, "alice")
            text = refused(alice, sids, ["alice"], 1, api_name="/assign")
            assert "assigning work or writing the guideline needs the admin role; alice is an annotator" in text
            done = ada.predict(sids, ["alice", "bob", "cy"], 2, api_name="/assign")
            assert done["new"] == 6  # three sessions, two annotators each
            assert {k: len(val) for k, val in done["assignees"].items()} == {str(s): 2 for s in sids}
            assert ada.predict(sids, ["alice", "bob", "cy"], 2, api_name="/assign")["new"] == 0
            ada.predict("Rate each step as PRM800K did: +1 right and useful, 0 fine, -1 wrong.",
                        api_name="/set_guideline")

            mine = alice.predict(api_name="/my_queue")
            assert len(mine["sessions"]) == 2 and mine["total"] == 4 and mine["line"] == "0 of 4 done"
            assert mine["guideline"]["text"].startswith("Rate each step") and mine["guideline"]["author"] == "ada"
            first, second, third = mine["todo"][:3]
            alice.predict(first["session_id"], first["node_id"], 1, api_name="/rate")
            assert alice.predict(second["session_id"], second["node_id"], "skip",
                                 api_name="/mark_step")["line"] == "2 of 4 done"
            assert alice.predict(third["session_id"], third["node_id"], "flag", "badly split step",
                                 api_name="/mark_step")["line"] == "3 of 4 done"
            bad = refused(alice, third["session_id"], third["node_id"], "flag", "boring", api_name="/mark_step")
            assert "a flag's reason must be one of: badly split step, unsure" in bad
            mine = alice.predict(api_name="/my_queue")
            assert mine["line"] == "3 of 4 done" and len(mine["todo"]) == 1
            assert mine["flagged"] == [{**{k: third[k] for k in ("session_id", "node_id")},
                                        "reason": "badly split step"}]
            assert client(url, "bob").predict(api_name="/my_queue")["line"] == "0 of 4 done"  # his own progress
    finally:
        store.close()


def scored_session(store, i: int, first: float, second: float) -> int:
    """A session of two steps with the PRM scores given (the queue ranks PRM uncertainty when nothing disagrees)."""
    t = ReasoningTree(Problem(f"q{i}", f"Use {i + 1} 3 4 6 to make 24.", "24"))
    a = t.add_child("0", Step("6 * 4 = 24", factor="compute"), score=first)
    t.add_child(a, Step("24", factor="conclude", terminal=True, answer="24"), score=second)
    return store.create_session(t, name=f"scored {i}")


def keys(steps: list[dict]) -> list[tuple[int, str]]:
    return [(s["session_id"], s["node_id"]) for s in steps]


def test_the_review_queue_holds_only_my_assigned_steps_still_to_do(db_url, demo_models):
    from storage import Store
    from ui.testing import serve

    store = Store(db_url)
    # priorities (disagreement + half the PRM's uncertainty): s0 0.0 0.1, 0.0.0 0.5; s1 0.0 0.4, 0.0.0 0.05
    s0, s1 = scored_session(store, 0, 0.9, 0.5), scored_session(store, 1, 0.6, 0.95)
    other = scored_session(store, 2, 0.5, 0.5)  # not assigned, and first in the whole queue (bob disagrees)
    store.rate(other, "0.0", "bob", -1)
    mine = [(s0, "0.0.0"), (s1, "0.0"), (s0, "0.0"), (s1, "0.0.0")]  # the queue's order
    try:
        with serve(generator=demo_models[0], scorer=demo_models[1], store=store, auth=USERS) as url:
            ada, alice, cy = client(url, "ada"), client(url, "alice"), client(url, "cy")
            ada.predict([s0, s1], ["alice"], 1, api_name="/assign")
            assert keys(alice.predict(api_name="/review_queue"))[0] == (other, "0.0")
            assigned = ("", "", "", "", 50, False, True)
            # "bob" is ignored: with a login the queue is the logged-in user's
            assert keys(alice.predict(*assigned, "bob", api_name="/review_queue")) == mine

            alice.predict(*mine[0], 1, api_name="/rate")
            assert keys(alice.predict(*assigned, api_name="/review_queue")) == mine[1:]
            assert alice.predict(*mine[1], "skip", api_name="/mark_step")["line"] == "2 of 4 done"
            assert alice.predict(*mine[2], "flag", "unsure", api_name="/mark_step")["line"] == "3 of 4 done"
            assert keys(alice.predict(*assigned, api_name="/review_queue")) == mine[3:]
            assert alice.predict(s0, *assigned[1:], api_name="/review_queue") == []  # s0's steps are all done
            assert keys(client(url, "bob").predict(*assigned, api_name="/review_queue")) == []  # bob's: none

            assert cy.predict(*assigned, api_name="/review_queue") == []  # nothing assigned to cy
            assert cy.predict(api_name="/my_queue")["sessions"] == []
            bad = refused(alice, *assigned[:6], "yes", api_name="/review_queue")
            assert "assigned_only must be true or false, got 'yes'" in bad
            ada.predict(s1, api_name="/delete_session")  # nobody can rate a deleted session's steps: not work
            assert alice.predict(api_name="/my_queue")["line"] == "2 of 2 done"
            assert alice.predict(*assigned, api_name="/review_queue") == []
    finally:
        store.close()
