"""The HTTP server backends' error paths against a real HTTP server on loopback (no mocks of the HTTP client):
server down, another model served, timeouts, retries with backoff, rejected requests, the bound on requests in
flight, and the command line's one-line error."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from reasoning.backends import load_generator, load_scorer
from reasoning.http_client import ServerError, ServerOptions, ServerPool, chunks, free_port, is_url, split_urls

pytestmark = pytest.mark.model
REPO = Path(__file__).resolve().parents[1]
FAST = ServerOptions(timeout_s=1.0, connect_timeout_s=1.0, retries=2, backoff_s=0.05, max_in_flight=2)


class Behaviour:
    """What the test server does: the model it lists and how it answers POSTs."""

    def __init__(self, model: str = "demo-generator"):
        self.model = model
        self.fail_first = 0  # answer this many POSTs with HTTP 503 first
        self.delay = 0.0  # seconds before answering a POST
        self.reject = False  # answer POSTs with HTTP 400
        self.posts = 0
        self.open = 0
        self.most_open = 0
        self.lock = threading.Lock()


def make_handler(b: Behaviour):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep the test output clean
            pass

        def _json(self, code: int, data) -> None:
            body = json.dumps(data).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path == "/v1/models":
                self._json(200, {"object": "list", "data": [{"id": b.model, "max_model_len": 320}]})
            else:
                self._json(404, {"message": "not found"})

        def do_POST(self):
            length = int(self.headers.get("Content-Length", 0))
            request = json.loads(self.rfile.read(length) or b"{}")
            with b.lock:
                b.posts += 1
                b.open += 1
                b.most_open = max(b.most_open, b.open)
                n = b.posts
            try:
                time.sleep(b.delay)
                if n <= b.fail_first:
                    self._json(503, {"message": "engine busy"})
                elif b.reject:
                    self._json(400, {"message": "max_tokens is too large"})
                else:
                    self._json(200, {"echo": request, "tokens": [1, 2, 3]})
            finally:
                with b.lock:
                    b.open -= 1

    return Handler


@pytest.fixture
def server():
    """A real HTTP server on a free loopback port; yields (url, behaviour)."""
    servers = []

    def start(model: str = "demo-generator"):
        b = Behaviour(model)
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(b))
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers.append(httpd)
        return f"http://127.0.0.1:{httpd.server_address[1]}/v1", b

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


def test_urls_are_told_from_directories():
    assert is_url("http://127.0.0.1:8000/v1") and is_url(" https://host/v1,https://other/v1")
    assert not is_url("models/demo-generator") and not is_url(None)
    urls, name = split_urls("http://a:1/v1/, http://b:2#demo-prm")
    assert urls == ["http://a:1/v1", "http://b:2/v1"] and name == "demo-prm"
    with pytest.raises(ServerError, match="not a server URL"):
        split_urls("http://a:1/v1,ftp://b")


def test_server_down_is_one_line_after_retries():
    port = free_port()
    start = time.monotonic()
    with pytest.raises(ServerError) as err:
        ServerPool(f"http://127.0.0.1:{port}/v1", role="generator", options=FAST)
    msg = str(err.value)
    assert "\n" not in msg and "cannot connect" in msg and str(port) in msg and "engine serve" in msg
    assert "3 tries" in msg
    assert time.monotonic() - start >= 0.05 + 0.1  # backed off between the tries


def test_another_model_served_is_named(server):
    url, _ = server("some-other-model")
    with pytest.raises(ServerError, match=r"serves some-other-model, not 'demo-generator'"):
        ServerPool(url + "#demo-generator", role="generator", options=FAST)
    pool = ServerPool(url, role="generator", options=FAST)  # no name asked: the one served is taken
    assert pool.model_name == "some-other-model" and pool.max_model_len == 320


def test_servers_that_disagree_are_refused(server):
    a, _ = server("demo-generator")
    b, _ = server("other")
    with pytest.raises(ServerError, match=r"serves other, not 'demo-generator'"):
        ServerPool(f"{a},{b}", role="generator", options=FAST)


def test_timeout_is_reported_with_the_limit(server):
    url, b = server()
    pool = ServerPool(url, role="generator", options=FAST)
    b.delay = 1.5
    with pytest.raises(ServerError, match=r"did not answer /v1/completions within 1 s \(3 tries\)"):
        pool.post("/v1/completions", {"prompt": [1]})
    assert b.posts == 3


def test_transient_errors_are_retried_with_backoff(server):
    url, b = server()
    pool = ServerPool(url, role="generator", options=FAST)
    b.fail_first = 2
    start = time.monotonic()
    out = pool.post("/tokenize", {"prompt": "x"})
    assert out["tokens"] == [1, 2, 3] and out["echo"]["model"] == "demo-generator"
    assert b.posts == 3 and time.monotonic() - start >= 0.05 + 0.1
    b.fail_first, b.posts = 10, 0
    with pytest.raises(ServerError, match="HTTP 503: engine busy"):
        pool.post("/tokenize", {"prompt": "x"})


def test_rejected_request_is_not_retried(server):
    url, b = server()
    pool = ServerPool(url, role="PRM", options=FAST)
    b.reject = True
    with pytest.raises(ServerError, match=r"PRM server: .* rejected /pooling: HTTP 400: max_tokens is too large"):
        pool.post("/pooling", {"input": [[1]]})
    assert b.posts == 1


def test_requests_in_flight_are_bounded(server):
    url, b = server()
    pool = ServerPool(url, role="generator", options=FAST)
    b.delay = 0.1
    threads = [threading.Thread(target=pool.post, args=("/tokenize", {"prompt": str(i)})) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert b.posts == 8 and b.most_open == FAST.max_in_flight


def test_work_is_spread_over_servers_by_key(server):
    a, _ = server()
    b, _ = server()
    pool = ServerPool(f"{a},{b}", role="generator", options=FAST)
    picked = {pool.pick(f"problem {i}").url for i in range(32)}
    assert picked == {a, b}
    assert pool.pick("problem 3") is pool.pick("problem 3")


def test_token_chunks_respect_the_cap():
    assert chunks(list("abcde"), [3, 3, 3, 10, 1], cap=6) == [[0, 1], [2], [3], [4]]


def test_load_generator_and_scorer_dispatch_on_urls():
    port = free_port()
    with pytest.raises(ServerError, match="generator server: cannot connect"):
        load_generator(f"http://127.0.0.1:{port}/v1")
    with pytest.raises(ServerError, match="PRM server: cannot connect"):
        load_scorer(f"http://127.0.0.1:{port}/v1")


def test_command_line_says_one_line_when_the_server_is_down():
    port = free_port()
    proc = subprocess.run(
        [sys.executable, "app.py", "search", "4 7 8 8", "--budget", "4",
         "--generator", f"http://127.0.0.1:{port}/v1", "--prm", f"http://127.0.0.1:{port}/v1"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: generator server: cannot connect"), proc.stderr


def test_the_web_can_pick_only_the_model_servers_the_app_offers(server, monkeypatch):
    """The UI's model picker takes a server URL only from the operator's list (else the app would send requests
    wherever a web user says); an offered server that is down is one line, an offered one that is up loads (this
    test server's tokenizer splits the tags, so the generator reads it in cues mode)."""
    from reasoning.factors import load_catalog
    from ui.services.models import ModelRegistry
    from ui.validate import UserError

    url, _ = server("demo-generator")
    down = f"http://127.0.0.1:{free_port()}/v1"
    registry = ModelRegistry(generator=None, scorer=None, catalog=load_catalog())
    with pytest.raises(UserError, match=r"is not one this app offers \(offered: none"):
        registry.pair("http://169.254.169.254/v1", None)
    monkeypatch.setenv("REASONING_MODEL_URLS", f"{down} {url}")
    with pytest.raises(UserError, match="PRM server: cannot connect"):
        registry.pair(None, down)
    generator, _ = registry.pair(url, None)
    assert generator.name == "demo-generator" and generator.provenance()["server"] == [url]
    assert registry.pair(url, None)[0] is generator  # loaded once, then shared
