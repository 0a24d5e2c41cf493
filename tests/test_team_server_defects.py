"""The defects a probe of a labeling team's server found (issue 26): each test fails without its fix.

Login throttling that a multipart body cannot bypass, that no stranger can turn against a user and that survives a
restart; a refused `/search` stores nothing; reading commands never create a database; a chunk of 0 is refused; one
problem limit everywhere; bounded imports; and the rough edges (one-line refusals, no tracebacks, paths named).
"""
from __future__ import annotations

import asyncio
import json
import os
import resource
import socket
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import app
from engine.server import EngineServer, EngineServerError, ServerSpec
from experiments.autolabel import label_rollouts
from reasoning import limits
from reasoning.backends import load_generator, load_scorer
from reasoning.factors import load_catalog
from reasoning.http_client import free_port
from reasoning.labeling import RolloutConfig
from reasoning.limits import MAX_PROBLEM_CHARS
from reasoning.training.prm import TrainConfig
from reasoning.tree import ReasoningTree
from reasoning.types import Problem, Step
from storage import StorageError, Store
from storage.logins import LoginBook
from ui.app import build_app
from ui.login import Keys, LoginThrottle, LoginThrottleMiddleware, ThrottlePolicy
from ui.service import Explorer
from ui.testing import serve
from ui.validate import UserError

pytestmark = pytest.mark.model  # tiny models built from configs
ROOT = Path(__file__).resolve().parents[1]
PROBLEM = "Natalia sold clips to 48 of her friends in April, and then half as many in May. How many in all?"


@pytest.fixture(scope="module")
def models(tiny):
    return load_generator(tiny.gpt2_tags, max_step_tokens=6), load_scorer(tiny.token_classification)


@pytest.fixture
def engine(models, db_url):
    store = Store(db_url)
    yield Explorer(generator=models[0], scorer=models[1], store=store)
    store.close()


# -- defect 3: a refused search stores nothing ---------------------------------------------------------------
@pytest.mark.parametrize("settings,needle", [
    ({"factors": ["nope"]}, "unknown thought factor 'nope'"),
    ({"answer_selection": "orm"}, "outcome reward model"),
])
def test_a_search_refused_for_its_settings_stores_no_session(engine, settings, needle):
    config = engine.config({"algorithm": "mcts", "budget": 4, **settings})
    with pytest.raises(UserError, match=needle):
        list(engine.run_search(PROBLEM, config))
    assert engine.store.list_sessions(include_deleted=True) == []


# -- defect 6: one problem limit for the API, the command line and imports ---------------------------------------
def test_the_api_takes_a_problem_as_long_as_an_import_may_be(engine):
    text = "What is 2 + 3? " + "x" * (MAX_PROBLEM_CHARS - 100)
    assert engine.problem(text).text == text.strip()
    with pytest.raises(UserError, match=f"at most {MAX_PROBLEM_CHARS}"):
        engine.problem("y" * (MAX_PROBLEM_CHARS + 1))


# -- defects 4 and 5: reading commands create no database; a labeling run that would label nothing is refused -----
def run_app(argv: list[str], capsys) -> tuple[int, str]:
    capsys.readouterr()
    try:
        code = app.main(argv)
    except SystemExit as exc:  # argparse's refusal
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


def one_line(err: str, *needles: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


@pytest.mark.parametrize("argv", [
    ["export", "--format", "html", "--session", "1", "--out", "tree.html"],
    ["label", "--all", "--rollouts", "2"],
    ["label", "--session", "1", "--rollouts", "2"],
])
def test_a_mistyped_db_creates_no_database(argv, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    missing = tmp_path / "typo" / "explorer.db"
    code, err = run_app([*argv, "--db", f"sqlite:///{missing}"], capsys)
    assert code == 2
    one_line(err, "no database at", str(missing))
    assert not missing.parent.exists()


@pytest.mark.parametrize("flag,value,needle", [
    ("--chunk", "0", "--chunk"),
    ("--rollout-temperature", "nan", "rollout temperature"),
])
def test_label_refuses_settings_that_label_nothing_or_fail_in_the_model(flag, value, needle, tmp_path, capsys):
    db = tmp_path / "explorer.db"
    Store(f"sqlite:///{db}").close()
    code, err = run_app(["label", "--session", "1", "--rollouts", "2", flag, value, "--db", f"sqlite:///{db}"],
                        capsys)
    assert code == 2
    one_line(err, needle)


def test_label_rollouts_refuses_a_chunk_of_zero(tiny, store):
    t = ReasoningTree(Problem("p", "What is 2 + 3?", "5"))
    t.add_child("0", Step("2 + 3 = 5.", factor="compute", terminal=True, answer="5"))
    sid = store.create_session(t, name="chunk")
    config = RolloutConfig(load_catalog().enabled, n=2)
    with pytest.raises(ValueError, match="chunk must be at least 1"):
        label_rollouts(store, sid, load_generator(tiny.gpt2_tags, max_step_tokens=4), config, chunk=0)


# -- defect 7: import reads are bounded --------------------------------------------------------------------------
def test_import_refuses_a_file_larger_than_the_import_limit_before_storing(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(limits, "MAX_IMPORT_BYTES", 64)
    big = tmp_path / "problems.jsonl"
    big.write_text("".join(json.dumps({"id": f"p{i}", "problem": "What is 2 + 3?"}) + "\n" for i in range(4)))
    db = tmp_path / "explorer.db"
    code, err = run_app(["import", "--format", "problems", str(big), "--db", f"sqlite:///{db}"], capsys)
    assert code == 2
    one_line(err, "too large", "at most 64 bytes")
    with Store(f"sqlite:///{db}") as store:
        assert store.problems() == []


def test_import_of_a_fifo_is_refused_at_once(tmp_path, capsys):
    fifo = tmp_path / "traces.jsonl"
    os.mkfifo(fifo)
    done: list[tuple[int, str]] = []
    worker = threading.Thread(target=lambda: done.append(run_app(
        ["import", "--format", "problems", str(fifo), "--db", f"sqlite:///{tmp_path / 'explorer.db'}"], capsys)),
        daemon=True)
    worker.start()
    worker.join(timeout=30)
    if worker.is_alive():  # it waits for a writer: give it an empty one so the thread ends, then fail
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(timeout=30)
        pytest.fail("importing a FIFO waited for a writer")
    code, err = done[0]
    assert code == 2
    one_line(err, "is a pipe, not a regular file")


def test_import_of_dev_zero_is_refused_before_reading(tmp_path):
    def cap_memory() -> None:  # without the check, reading /dev/zero ends here instead of filling the machine
        resource.setrlimit(resource.RLIMIT_AS, (4 * 1024**3, 4 * 1024**3))

    run = subprocess.run([sys.executable, str(ROOT / "app.py"), "import", "--format", "problems", "/dev/zero",
                          "--db", f"sqlite:///{tmp_path / 'explorer.db'}"], capture_output=True, text=True,
                         timeout=300, preexec_fn=cap_memory, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 2
    one_line(run.stderr, "/dev/zero is a device, not a regular file")


def test_web_uploads_are_bounded_by_the_import_limit(models, tmp_path):
    with Store(f"sqlite:///{tmp_path / 'explorer.db'}") as store:
        _, launch_kwargs = build_app(generator=models[0], scorer=models[1], store=store)
    assert launch_kwargs["max_file_size"] == limits.MAX_IMPORT_BYTES


# -- defect 1: login throttling that a multipart body cannot bypass and no stranger can turn against a user -------
PASSWORDS = {"alice": "right-pw", "bob": "bob-pw"}
FAST = ThrottlePolicy(limit=3, address_limit=3, user_limit=3, base_delay=0.0, max_delay=0.0)


async def _check_password(request: Request) -> JSONResponse:
    form = await request.form()
    ok = PASSWORDS.get(str(form.get("username", "")).strip()) == form.get("password")
    return JSONResponse({}, status_code=200 if ok else 400)


def throttled(**kwargs) -> LoginThrottleMiddleware:
    """Gradio's login answer (200 right, 400 wrong) behind the throttle, without a server."""
    return LoginThrottleMiddleware(Starlette(routes=[Route("/login", _check_password, methods=["POST"])]),
                                   **{"policy": FAST, **kwargs})


def attempt(app, user: str, password: str, address: str, *, multipart: bool = False) -> int:
    async def post() -> int:
        transport = httpx.ASGITransport(app=app, client=(address, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://explorer") as client:
            form = {"username": user, "password": password}
            if multipart:
                r = await client.post("/login", files={k: (None, val) for k, val in form.items()})
            else:
                r = await client.post("/login", data=form)
            return r.status_code

    return asyncio.run(post())


def test_multipart_logins_count_against_their_user_name():
    app = throttled()
    assert [attempt(app, "alice", "guess", f"10.0.0.{i}", multipart=True) for i in range(3)] == [400] * 3
    assert attempt(app, "alice", "right-pw", "10.0.0.7") == 429  # three addresses guessed: alice is locked
    assert attempt(app, "bob", "bob-pw", "10.0.0.7", multipart=True) == 200


def test_a_stranger_cannot_lock_a_user_out_of_the_address_she_logs_in_from():
    app = throttled(policy=replace(FAST, user_limit=5))
    assert attempt(app, "alice", "right-pw", "10.0.1.1") == 200
    assert [attempt(app, "alice", "guess", "10.0.2.1") for _ in range(3)] == [400] * 3
    assert attempt(app, "alice", "right-pw", "10.0.2.1") == 429  # the guessing address, and the pair
    assert [attempt(app, "alice", "guess", f"10.0.3.{i}", multipart=True) for i in range(2)] == [400] * 2
    assert attempt(app, "alice", "right-pw", "10.0.1.1", multipart=True) == 200  # her own address lets her in
    assert attempt(app, "alice", "right-pw", "10.0.4.1") == 429  # a new address waits out the per-user lock


def test_a_login_body_beyond_the_limit_is_refused_unread():
    assert attempt(throttled(), "alice" * 20_000, "x", "10.0.5.1") == 413


def test_lockouts_survive_a_restart_and_hold_on_every_server_of_the_database(db_url):
    policy, keys = replace(FAST, user_limit=10), Keys.of("alice", "10.0.0.1")
    with Store(db_url) as store:
        first = LoginThrottle(policy, book=LoginBook(store))
        for _ in range(3):
            first.failed(keys)
        assert first.wait(keys)[0] > 0
    with Store(db_url) as store:  # a new process on the same database
        again = LoginThrottle(policy, book=LoginBook(store))
        locked, _ = again.wait(keys)
        assert 0 < locked <= policy.lockout
        assert again.wait(Keys.of("alice", "10.0.0.2"))[0] == 0  # another address: under the per-user limit
        later = LoginThrottle(policy, clock=lambda: time.time() + policy.lockout + 1, book=LoginBook(store))
        assert later.wait(keys) == (0.0, 0.0)


# -- defect 8: rough edges ---------------------------------------------------------------------------------------
@pytest.fixture
def no_models(monkeypatch):
    """`serve` must refuse before loading models: loading them fails the test."""
    import cli.serve

    def load(*_args, **_kwargs):
        raise AssertionError("the models were loaded before the refusal")

    monkeypatch.setattr(cli.serve, "load_models", load)


def test_serve_refuses_a_missing_auth_file_before_loading_models(no_models, tmp_path, capsys):
    code, err = run_app(["serve", "--auth-file", str(tmp_path / "users.txt")], capsys)
    assert code == 2
    one_line(err, "cannot read auth file", "users.txt")


def test_serve_refuses_a_port_in_use_before_loading_models(no_models, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, err = run_app(["serve", "--port", str(port)], capsys)
    assert code == 2
    one_line(err, f"cannot listen on 127.0.0.1:{port}")


def test_a_database_that_cannot_open_is_named_in_the_error(no_models, tmp_path, capsys):
    bad = tmp_path / "notes.db"
    bad.write_text("not a database\\n" * 100)
    code, err = run_app(["serve", "--db", f"sqlite:///{bad}"], capsys)
    assert code == 2
    one_line(err, f"cannot open the database sqlite:///{bad}", "file is not a database")
    with pytest.raises(StorageError, match=r"postgresql\+psycopg://postgres:\*\*\*@127\.0\.0\.1:1/x: "):
        Store("postgresql://postgres:secret@127.0.0.1:1/x")


@pytest.fixture(scope="module")
def served(models, tmp_path_factory):
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('team-served') / 'explorer.db'}")
    with serve(generator=models[0], scorer=models[1], store=store) as url:
        yield url.rstrip("/")
    store.close()


def raw_call(url: str, name: str, data: list) -> tuple[str, str]:
    """A raw REST call (no gradio_client): the event and data lines of its answer."""
    event_id = httpx.post(f"{url}/gradio_api/call/{name}", json={"data": data}, timeout=30).json()["event_id"]
    lines = httpx.get(f"{url}/gradio_api/call/{name}/{event_id}", timeout=120).text.splitlines()
    event = next(ln for ln in lines if ln.startswith("event:")).split(":", 1)[1].strip()
    return event, next(ln for ln in lines if ln.startswith("data:")).split(":", 1)[1].strip()


@pytest.mark.parametrize("name,data,needle", [
    ("search", [], "search takes"),
    ("rate", [1], "missing node_id, rating"),
])
def test_a_raw_rest_call_short_of_inputs_says_which_are_missing(served, name, data, needle):
    event, payload = raw_call(served, name, data)
    assert event == "error"
    message = json.loads(payload)["error"]
    assert message and needle in message and "\\n" not in message, message


def test_errors_written_for_the_user_log_no_traceback(served, capfd):
    capfd.readouterr()
    for name, data in (("rate_children", [1, "0", [1]]), ("export", ["trl", "human", "drop", False, False, None, 99])):
        event, payload = raw_call(served, name, data)
        assert event == "error" and json.loads(payload)["error"], payload
    assert "Traceback" not in capfd.readouterr().err


def test_engine_serve_refuses_a_core_beyond_the_machine_and_a_zero_context(tmp_path, capsys, monkeypatch):
    def start(*_args, **_kwargs):
        raise AssertionError("the engine was started")

    monkeypatch.setattr(EngineServer, "start", start)
    (tmp_path / "config.json").write_text("{}")
    for flags, needle in ((["--first-core", "-1"], "--first-core must be between 0 and"),
                          (["--first-core", str(os.cpu_count() or 1)], "--first-core must be between 0 and"),
                          (["--max-model-len", "0"], "--max-model-len must be at least 1")):
        code, err = run_app(["engine", "serve", "--model", str(tmp_path), *flags], capsys)
        assert code == 2
        one_line(err, needle)


def test_a_failing_engine_without_a_log_file_says_why(tmp_path):
    server = EngineServer(ServerSpec(model=tmp_path, port=free_port()))
    server._spawn([sys.executable, "-c", "import sys; print('loading'); print('ValueError: no such model type');"
                   "sys.exit(1)"], dict(os.environ))
    try:
        with pytest.raises(EngineServerError, match="exited with code 1 .*ValueError: no such model type"):
            server.wait_ready(60, lambda _line: None)
    finally:
        server.stop()


def test_train_prm_refuses_a_max_length_of_zero():
    with pytest.raises(ValueError, match="max length must be at least 1"):
        TrainConfig(max_length=0)


def test_web_import_errors_name_the_uploaded_file_not_the_servers_copy(engine, tmp_path):
    upload = tmp_path / "gradio" / "0f3a9c" / "traces.jsonl"
    upload.parent.mkdir(parents=True)
    upload.write_text(json.dumps({"id": "p1", "problem": "What is 2 + 3?"}) + "\n{broken\n")
    for act in (engine.validate_import, engine.import_file):
        with pytest.raises(UserError) as exc:
            act(str(upload), "problems")
        assert "traces.jsonl:2: invalid JSON" in str(exc.value) and str(upload.parent) not in str(exc.value)


# -- defect 9: a tree kept by one process sees another process's changes ------------------------------------------
def test_a_kept_tree_sees_what_another_server_on_the_database_changed(engine, models, db_url):
    t = ReasoningTree(Problem("p1", "What is 2 + 3?", "5"))
    first = t.add_child("0", Step("2 + 3 = 5.", factor="compute", terminal=True, answer="5"))
    sid = engine.store.create_session(t, name="shared")
    assert first in engine.tree(sid)  # this server keeps the tree
    with Store(db_url) as other_store:
        other = Explorer(generator=models[0], scorer=models[1], store=other_store)
        added = other.add_human_step(sid, "0", "Add 2 and 3 to get 5.", "compute", annotator="bob")
        assert added in engine.tree(sid)
        other.prune(sid, first, annotator="bob")
        assert engine.tree(sid).node(first)["pruned"]
        searched = other_store.load_tree(sid)  # a search resumed elsewhere saves new statistics
        searched.node(first)["visits"] += 3
        other_store.save_tree(sid, searched)
        assert engine.tree(sid).node(first)["visits"] == searched.node(first)["visits"]


def test_two_servers_editing_under_one_parent_at_once_both_keep_their_step(engine, models, db_url):
    """Each server takes a new node's id from its own copy of the tree: an edit stored by the other server between
    this one's read and its write took the same id. The write is refused as stale inside its transaction and made
    again on the stored tree, under the next id; both edits are kept (before: a duplicate-key error for one)."""
    t = ReasoningTree(Problem("p1", "What is 2 + 3?", "5"))
    first = t.add_child("0", Step("2 + 3 = 5.", factor="compute", terminal=True, answer="5"))
    sid = engine.store.create_session(t, name="race")
    with Store(db_url) as other_store:
        other = Explorer(generator=models[0], scorer=models[1], store=other_store)
        ratings = engine.ratings
        real = ratings._add_step
        raced = []

        def add_step_while_the_other_server_edits(*a, **kw):
            nid = real(*a, **kw)  # this server's copy now holds its new node; the other stores the same id first
            if not raced:
                raced.append(other.edit(sid, first, "2 + 3 = 5, so the answer is 5.", annotator="bob"))
            return nid

        ratings._add_step = add_step_while_the_other_server_edits
        try:
            mine = engine.edit(sid, first, "Adding 2 and 3 gives 5.", annotator="alice")
        finally:
            ratings._add_step = real
    stored = engine.store.load_tree(sid)
    assert raced and mine != raced[0] and {mine, raced[0]} <= set(stored.graph.nodes)
    assert stored.node(raced[0])["text"] == "2 + 3 = 5, so the answer is 5."
    assert stored.node(mine)["text"] == "Adding 2 and 3 gives 5."
    assert [stored.node(n)["origin"] for n in (mine, raced[0])] == ["edited", "edited"]


def test_a_serve_refusal_is_the_only_line_a_fresh_process_prints(tmp_path):
    run = subprocess.run([sys.executable, str(ROOT / "app.py"), "serve", "--auth-file", str(tmp_path / "users.txt")],
                         capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 2
    one_line(run.stderr, "cannot read auth file")
