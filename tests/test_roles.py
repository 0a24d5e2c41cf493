"""Roles (issue 26, "What a team needs"): the auth file's `username:password[:role]`, and every endpoint refusing
an action the logged-in user's role does not allow in one line, with the database unchanged (through gradio_client
logged in as each role)."""
from __future__ import annotations

import pytest

from reasoning.tree import ReasoningTree
from reasoning.types import Problem, Step
from ui.roles import ACTIONS, Access

USERS = [("ada", "ada-pw", "admin"), ("alice", "alice-pw", "annotator"), ("vic", "vic-pw", "viewer"),
         ("old", "old-pw")]  # a line without a role: an annotator


# -- the auth file and the table (unit) -------------------------------------------------------------------
def test_auth_file_roles_default_and_unknown(tmp_path):
    from ui.app import load_auth_file

    f = tmp_path / "users"
    f.write_text("# team\nada:pw1:admin\nalice:pw2\nvic:pw3:Viewer\n", encoding="utf-8")
    assert load_auth_file(f) == [("ada", "pw1", "admin"), ("alice", "pw2", "annotator"), ("vic", "pw3", "viewer")]
    f.write_text("ada:pw1:admin\nbob:pw:owner\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"users:2: unknown role 'owner' \(admin, annotator or viewer\)") as exc:
        load_auth_file(f)
    assert "\n" not in str(exc.value)


def test_access_table():
    access = Access.from_auth(USERS)
    assert [access.role(u[0]) for u in USERS] == ["admin", "annotator", "viewer", "annotator"]
    assert all(access.allows("ada", a) for a in ACTIONS)
    assert not any(access.allows("vic", a) for a in ACTIONS)
    assert {a for a in ACTIONS if not access.allows("alice", a)} == {"delete", "restore", "import", "models",
                                                                      "adjudicate", "assign"}
    with pytest.raises(ValueError, match="^deleting a session needs the admin role; alice is an annotator$"):
        access.check("alice", "delete")
    with pytest.raises(ValueError, match="^rating a step needs the annotator role; vic is a viewer$"):
        access.check("vic", "rate")
    assert all(Access.from_auth(None).allows(None, a) for a in ACTIONS)  # no login: everyone is an admin


# -- through the API, logged in as each role -----------------------------------------------------------------
@pytest.fixture(scope="module")
def team(demo_models, tmp_path_factory):
    from storage import Store
    from ui.testing import serve

    store = Store(f"sqlite:///{tmp_path_factory.mktemp('roles') / 'explorer.db'}")
    t = ReasoningTree(Problem("p1", "Use 2 3 4 6 to make 24.", "24"))
    t.add_child("0", Step("6 * 4 = 24", factor="compute", terminal=True, answer="24"))
    sid = store.create_session(t, name="seed")
    with serve(generator=demo_models[0], scorer=demo_models[1], store=store, auth=USERS) as url:
        yield url, store, sid
    store.close()


def client(url: str, user: str):
    from gradio_client import Client

    pw = next(u[1] for u in USERS if u[0] == user)
    return Client(url, auth=(user, pw), verbose=False)


def refusal(c, *args, api_name: str) -> str:
    with pytest.raises(Exception) as exc:  # noqa: PT011 - gradio_client raises AppError with the server's line
        c.predict(*args, api_name=api_name)
    return str(exc.value)


def snapshot(store, sid: int):
    info = store.session(sid)
    return (store.load_tree(sid).to_dict(), [a.to_json() for a in store.annotations(sid)], info.name, info.deleted)


# every endpoint that changes something, with arguments, and the action named in its refusal
CHANGES = [
    ("/rate", lambda s: (s, "0.0", 1), "rating a step"),
    ("/rate_children", lambda s: (s, "0", {"0.0": 1}), "rating a step"),
    ("/edit_step", lambda s: (s, "0.0", "6 * 4 = 24."), "editing a step"),
    ("/human_step", lambda s: (s, "0", "4 * 6 = 24"), "writing a step"),
    ("/expand", lambda s: (s, "0", "compute", 1), "expanding a step"),
    ("/prune", lambda s: (s, "0.0"), "pruning a subtree"),
    ("/undo", lambda s: (s,), "undoing an action"),
    ("/resume", lambda s: (s, "0", 2), "running a search"),
    ("/search", lambda s: ("Use 1 2 3 4 to make 24.",), "running a search"),
    ("/stop", lambda s: (s,), "stopping a search"),
    ("/summarize", lambda s: (s, "0.0"), "summarizing a trace"),
    ("/rename_session", lambda s: (s, "renamed"), "renaming a session"),
    ("/delete_session", lambda s: (s,), "deleting a session"),
    ("/restore_session", lambda s: (s,), "restoring a session"),
    ("/estimate_rollouts", lambda s: (s, "0.0", 1, 2), "labeling by rollouts"),
    ("/first_error", lambda s: (s, "0.0", 1, 2), "labeling by rollouts"),
    ("/label_rollouts", lambda s: (s, "0", 1, 2), "labeling by rollouts"),
    ("/stop_autolabel", lambda s: (s,), "labeling by rollouts"),
    ("/use_prm", lambda s: ("",), "switching the models"),
]
ADMIN_ONLY = {"/delete_session", "/restore_session", "/use_prm"}


@pytest.mark.parametrize(("api_name", "args", "what"), CHANGES, ids=[c[0] for c in CHANGES])
def test_a_viewer_changes_nothing(team, api_name, args, what):
    url, store, sid = team
    before, sessions = snapshot(store, sid), len(store.list_sessions(include_deleted=True))
    text = refusal(client(url, "vic"), *args(sid), api_name=api_name)
    least = "admin" if api_name in ADMIN_ONLY else "annotator"
    assert f"{what} needs the {least} role; vic is a viewer" in text
    assert "\n" not in text.strip()
    assert snapshot(store, sid) == before and len(store.list_sessions(include_deleted=True)) == sessions


@pytest.mark.parametrize("api_name", sorted(ADMIN_ONLY))
def test_an_annotator_is_refused_the_admin_actions(team, api_name):
    url, store, sid = team
    args, what = next((a, w) for n, a, w in CHANGES if n == api_name)
    before = snapshot(store, sid)
    for user, role in (("alice", "an annotator"), ("old", "an annotator")):
        text = refusal(client(url, user), *args(sid), api_name=api_name)
        assert f"{what} needs the admin role; {user} is {role}" in text
    assert snapshot(store, sid) == before and not store.session(sid).deleted


def test_an_annotators_delete_is_refused_and_the_session_stays(team):
    url, store, sid = team
    text = refusal(client(url, "alice"), sid, api_name="/delete_session")
    assert "deleting a session needs the admin role; alice is an annotator" in text
    assert not store.session(sid).deleted
    assert sid in [s["id"] for s in client(url, "vic").predict(api_name="/sessions")]


def test_an_annotator_rates_and_adjudicating_needs_an_admin(team):
    url, store, sid = team
    alice = client(url, "alice")
    alice.predict(sid, "0.0", 1, api_name="/rate")
    text = refusal(alice, sid, "0.0", -1, False, "", "", "", None, True, api_name="/rate")
    assert "adjudicating needs the admin role; alice is an annotator" in text
    ratings = [(a.annotator, a.rating, a.adjudicated) for a in store.annotations(sid)]
    assert ("alice", 1, False) in ratings and not any(adj for *_, adj in ratings)
    client(url, "ada").predict(sid, "0.0", 1, False, "", "", "", None, True, api_name="/rate")
    assert any(a.annotator == "ada" and a.adjudicated for a in store.annotations(sid))


def test_a_viewer_reads_and_exports(team):
    url, _, sid = team
    vic = client(url, "vic")
    assert vic.predict(sid, api_name="/tree")["problem"]["text"].startswith("Use 2 3 4 6")
    assert vic.predict("trl", api_name="/export")["manifest"]["format"] == "trl"


def test_an_admins_delete_and_restore_work(team):
    url, store, _ = team
    t = ReasoningTree(Problem("p2", "Use 3 3 8 8 to make 24.", "24"))
    other = store.create_session(t, name="to delete")
    ada = client(url, "ada")
    assert ada.predict(other, api_name="/delete_session")["deleted"] is True
    assert store.session(other).deleted
    assert ada.predict(other, api_name="/restore_session")["deleted"] is False


def test_an_annotators_import_is_refused_by_the_page_handler(team, tmp_path):
    """Import is a page action only: its handler refuses it (the report line), and nothing is stored."""
    from gradio_client import handle_file

    url, store, _ = team
    f = tmp_path / "problems.jsonl"
    f.write_text('{"id": "x1", "problem": "Use 1 1 4 6 to make 24."}\n', encoding="utf-8")
    sessions = len(store.list_sessions(include_deleted=True))
    line = client(url, "alice").predict(handle_file(str(f)), "problems", api_name="/do_import")
    assert line == "not valid, nothing imported: importing needs the admin role; alice is an annotator"
    assert len(store.list_sessions(include_deleted=True)) == sessions
