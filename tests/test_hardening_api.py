"""Hardening of the API (issue 16) through gradio_client: out-of-range session ids and NUL text are one clear
message each, echoed input is escaped, an unexpected failure is one line with a log reference, and repeated wrong
passwords slow down and then lock out, per user name and per client address."""
from __future__ import annotations

import httpx
import pytest
from gradio_client import Client

from reasoning.backends import load_generator, load_scorer
from reasoning.tree import ReasoningTree
from reasoning.types import Problem, Step
from storage import Store
from tiny_models import build_gpt2_lm, build_token_classification_prm
from ui.login import ThrottlePolicy
from ui.testing import serve

pytestmark = pytest.mark.model
BIG = [2**31, 2**63, 2**64]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("hardening-api-models")
    gen = load_generator(build_gpt2_lm(root / "gen"), max_step_tokens=6)
    return gen, load_scorer(build_token_classification_prm(root / "prm"))


@pytest.fixture(scope="module")
def api(models, tmp_path_factory):
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('hardening-api') / 'explorer.db'}")
    t = ReasoningTree(Problem("p1", "What is 2 + 3?", "5"))
    t.add_child("0", Step("2 + 3 = 5.", factor="compute", terminal=True, answer="5"))
    sid = store.create_session(t, name="seed")
    with serve(generator=models[0], scorer=models[1], store=store) as url:
        yield Client(url, verbose=False), store, sid
    store.close()


def message(client: Client, *args, api_name: str, **kwargs) -> str:
    with pytest.raises(Exception) as exc:  # noqa: PT011 - gradio_client raises AppError with the server's message
        client.predict(*args, api_name=api_name, **kwargs)
    text = str(exc.value)
    assert "upstream Gradio app has raised an exception" not in text, text
    return text


@pytest.mark.parametrize("sid", BIG)
@pytest.mark.parametrize("call", [
    ("/tree", ()), ("/trace", ("0.0",)), ("/rate", ("0.0", 1)), ("/prune", ("0.0",)), ("/undo", ()),
    ("/rename_session", ("x",)), ("/delete_session", ()), ("/analytics", ()),
])
def test_session_ids_beyond_the_database_integer_are_one_clear_message(api, sid, call):
    client, _, _ = api
    name, rest = call
    text = message(client, sid, *rest, api_name=name)
    assert "session id must be a positive integer (at most 2147483647)" in text, text


def test_export_of_a_huge_session_id_is_one_clear_message(api):
    client, _, _ = api
    text = message(client, "trl", "human", "drop", False, False, [2**63], 5, api_name="/export")
    assert "session id must be a positive integer (at most 2147483647)" in text


def test_nul_in_notes_and_names_is_refused(api):
    client, store, sid = api  # (a lone surrogate cannot even leave gradio_client; the store tests cover it)
    bad = "ok\x00no"
    text = message(client, sid, "0.0", 1, False, bad, "alice", api_name="/rate")
    assert "note contains a NUL character" in text
    text = message(client, sid, bad, "alice", api_name="/rename_session")
    assert "name contains a" in text
    assert store.annotations(sid) == [] and store.session(sid).name == "seed"


def test_echoed_input_in_an_error_is_escaped(api):
    client, _, _ = api
    text = message(client, "<b>B</b><a/href=//x.invalid>L</a>", api_name="/tree")
    assert "<b>" not in text and "&lt;b&gt;B&lt;/b&gt;" in text


def test_an_unexpected_failure_is_one_line_with_a_log_reference(api, monkeypatch, caplog):
    import ui.app

    client, _, _ = api

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire\nsecond line")

    monkeypatch.setattr(ui.app.ENGINE, "sessions", broken)
    with caplog.at_level("ERROR"):
        text = message(client, "", False, api_name="/sessions")
    assert "the server could not do this (RuntimeError; ref " in text and "disk on fire" not in text
    ref = text.split("ref ")[1][:8]
    assert ref in caplog.text and "disk on fire" in caplog.text


# -- case 6: login throttling --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def login_app(models, tmp_path_factory):
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('hardening-login') / 'explorer.db'}")
    policy = ThrottlePolicy(limit=4, window=60, lockout=60, address_limit=4, user_limit=6, base_delay=0.05,
                            max_delay=0.2)
    with serve(generator=models[0], scorer=models[1], store=store,
               auth=[("alice", "right-pw"), ("bob", "bob-pw"), ("carol", "carol-pw")], login_policy=policy) as url:
        yield url
    store.close()


def login(url: str, user: str, password: str, *, address: str = "127.0.0.1", multipart: bool = False) -> httpx.Response:
    """A login from a loopback `address`, as a urlencoded form or (as `curl -F` sends it) a multipart one."""
    form = {"username": user, "password": password}
    body = {"files": {k: (None, v) for k, v in form.items()}} if multipart else {"data": form}
    with httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=30) as client:
        return client.post(url.rstrip("/") + "/login", **body)


def test_repeated_wrong_passwords_lock_the_user_and_the_address_out(login_app):
    assert login(login_app, "bob", "bob-pw").status_code == 200
    codes = [login(login_app, "alice", f"guess-{i}").status_code for i in range(4)]
    assert codes == [400, 400, 400, 400]
    locked = login(login_app, "alice", "right-pw")  # even the right password waits out the lockout
    assert locked.status_code == 429 and "too many failed logins" in locked.json()["detail"]
    assert int(locked.headers["retry-after"]) > 0
    assert login(login_app, "bob", "bob-pw").status_code == 429  # the guessing address is locked out too


def test_multipart_guesses_from_many_addresses_lock_the_user_out_of_new_ones(login_app):
    """issue 26: multipart logins were all keyed `user:`, so they never counted against the name they guessed."""
    for address in ("127.0.0.3", "127.0.0.4"):
        codes = [login(login_app, "carol", f"guess-{i}", address=address, multipart=True).status_code
                 for i in range(3)]
        assert codes == [400, 400, 400]
    assert login(login_app, "carol", "carol-pw", address="127.0.0.5").status_code == 429


# -- served paths: Gradio's file routes give nothing outside what the app serves -----------------------------
def test_file_routes_serve_neither_the_database_nor_models_nor_system_files(api, tmp_path):
    from reasoning.backends import DEMO_GENERATOR_DIR

    client, store, _ = api
    secret = tmp_path / "auth.txt"
    secret.write_text("alice:secret\n")
    targets = [store.url.split("sqlite:///", 1)[1], str(secret), "/etc/passwd",
               str(DEMO_GENERATOR_DIR / "model.safetensors"), str(DEMO_GENERATOR_DIR / "config.json")]
    base = client.src.rstrip("/")
    for target in targets:
        for route in (f"/gradio_api/file={target}", f"/file={target}", f"/gradio_api/file={target.lstrip('/')}"):
            r = httpx.get(base + route, timeout=30)
            assert r.status_code in (400, 403, 404), (route, r.status_code)
            assert b"alice:secret" not in r.content and b"root:" not in r.content
