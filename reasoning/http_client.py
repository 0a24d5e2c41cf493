"""A small client for OpenAI-compatible model servers (vLLM): several URLs, retries, a bound on requests.

Every failure a user can meet (server down, another model served, a timeout, a rejected request) becomes one
`ServerError` line naming the server and what to do, never a traceback from the HTTP library.
"""
from __future__ import annotations

import functools
import hashlib
import logging
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

log = logging.getLogger(__name__)

RETRY_STATUS = {429, 500, 502, 503, 504}
START_HINT = "start one with `python app.py engine serve --model DIR --port P`"


class ServerError(RuntimeError):
    """A model server that cannot be used; the message is one line naming the server."""


def is_url(value: object) -> bool:
    """True for `http(s)://...` (one URL or several separated by commas): a served model, not a directory."""
    return isinstance(value, str) and value.strip().lower().startswith(("http://", "https://"))


@dataclass(frozen=True)
class ServerOptions:
    timeout_s: float = 120.0  # one request, connect included
    connect_timeout_s: float = 5.0
    retries: int = 3  # tries after the first, on connection errors, timeouts and 429/5xx
    backoff_s: float = 0.5  # doubled after each retry
    max_in_flight: int = 16  # requests open at once per server


def split_urls(spec: str) -> tuple[list[str], str | None]:
    """`http://a/v1,http://b/v1#name` -> the base URLs (ending in /v1) and the model name asked for (or None)."""
    spec, _, name = spec.strip().partition("#")
    urls = []
    for raw in spec.split(","):
        url = raw.strip().rstrip("/")
        if not url:
            continue
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ServerError(f"not a server URL: {raw.strip()!r} (expected http://host:port/v1)")
        if not parts.path.endswith("/v1"):
            url += "/v1"
        urls.append(url)
    if not urls:
        raise ServerError(f"no server URL in {spec!r}")
    return urls, name.strip() or None


@functools.lru_cache(maxsize=32)
def served_model_root(spec: str) -> str | None:
    """The local directory the (first) server loaded its model from, when it reports one that exists here."""
    try:
        urls, wanted = split_urls(spec)
        with httpx.Client(timeout=5.0, trust_env=False) as client:
            models = client.get(urls[0] + "/models").json().get("data", [])
    except (ServerError, httpx.HTTPError, ValueError, AttributeError):
        return None
    for m in models:
        root = m.get("root") if isinstance(m, dict) else None
        if root and (wanted is None or m.get("id") == wanted) and Path(str(root)).is_dir():
            return str(root)
    return None


class Server:
    """One server: its base URL (…/v1), the model it serves and a bound on open requests."""

    def __init__(self, url: str, client: httpx.Client, options: ServerOptions):
        self.url, self.client, self.options = url, client, options
        self.root = url[: -len("/v1")]  # vLLM serves /tokenize and /pooling beside /v1
        self.slots = threading.BoundedSemaphore(options.max_in_flight)
        self.model: dict[str, Any] = {}

    def describe(self) -> dict[str, Any]:
        """The served models as /v1/models lists them."""
        data = self.request("GET", "/v1/models")
        models = data.get("data") if isinstance(data, dict) else None
        if not isinstance(models, list) or not models:
            raise ServerError(f"{self.url}/models lists no model: is this an OpenAI-compatible server?")
        return data

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """JSON in, JSON out, with retries and backoff on transient failures; a ServerError line otherwise."""
        url = self.root + path
        delay, last = self.options.backoff_s, ""
        for attempt in range(self.options.retries + 1):
            if attempt:
                time.sleep(delay)
                delay *= 2
            try:
                with self.slots:
                    resp = self.client.request(method, url, json=body)
            except httpx.ConnectError:
                last = f"cannot connect to {self.url} (is the server running? {START_HINT})"
                continue
            except httpx.TimeoutException:
                last = f"{self.url} did not answer {path} within {self.options.timeout_s:g} s"
                continue
            except httpx.HTTPError as exc:
                last = f"{self.url}: {type(exc).__name__}: {exc}"
                continue
            if resp.status_code in RETRY_STATUS:
                last = f"{self.url}{path.removeprefix('/v1')} answered HTTP {resp.status_code}: {_message(resp)}"
                continue
            if resp.status_code >= 400:
                raise ServerError(f"{self.url} rejected {path}: HTTP {resp.status_code}: {_message(resp)}")
            try:
                return resp.json()
            except ValueError:
                raise ServerError(f"{self.url}{path} answered something that is not JSON") from None
        tries = self.options.retries + 1
        raise ServerError(f"{last} ({tries} {'try' if tries == 1 else 'tries'})")


def _message(resp: httpx.Response) -> str:
    """The server's own error message, on one short line."""
    try:
        data = resp.json()
        msg = data.get("message") or data.get("detail") or data.get("error") or data
        if isinstance(msg, dict):
            msg = msg.get("message", msg)
    except ValueError:
        msg = resp.text
    flat = " ".join(str(msg).split())
    return flat[:240] or resp.reason_phrase


class ServerPool:
    """The servers behind one `--generator`/`--prm` value; all must serve the same model.

    Work is spread by a key (a request's problem and first step), so that a subtree's requests keep going to the
    server whose prefix cache holds its prefix, and every key lands on the same server in every run.
    """

    def __init__(self, spec: str, *, role: str, options: ServerOptions | None = None):
        self.spec, self.role = spec, role
        self.options = options or ServerOptions()
        urls, wanted = split_urls(spec)
        timeout = httpx.Timeout(self.options.timeout_s, connect=self.options.connect_timeout_s)
        limits = httpx.Limits(max_connections=self.options.max_in_flight * len(urls),
                              max_keepalive_connections=self.options.max_in_flight * len(urls))
        self.client = httpx.Client(timeout=timeout, limits=limits, trust_env=False)
        self.servers = [Server(u, self.client, self.options) for u in urls]
        self.model_name = self._check_models(wanted)

    def _check_models(self, wanted: str | None) -> str:
        """The one model every server serves; a ServerError when one is down or serves another model."""
        name = wanted
        for server in self.servers:
            try:
                models = server.describe()["data"]
            except ServerError as exc:
                raise ServerError(f"{self.role} server: {exc}") from None
            ids = [str(m.get("id")) for m in models]
            if name is None:
                if len(ids) > 1:
                    raise ServerError(f"{self.role} server {server.url} serves several models ({', '.join(ids)}); "
                                      f"name one as {server.url}#MODEL")
                name = ids[0]
            if name not in ids:
                raise ServerError(f"{self.role} server {server.url} serves {', '.join(ids)}, not {name!r}")
            server.model = next(m for m in models if str(m.get("id")) == name)
        assert name is not None
        return name

    @property
    def urls(self) -> list[str]:
        return [s.url for s in self.servers]

    @property
    def max_model_len(self) -> int | None:
        lens = [s.model.get("max_model_len") for s in self.servers]
        ints = [n for n in lens if isinstance(n, int) and n > 0]
        return min(ints) if ints else None

    @property
    def root(self) -> str | None:
        """Where the model was loaded from, as the (first) server reports it (vLLM: the model path)."""
        root = self.servers[0].model.get("root")
        return str(root) if root else None

    def pick(self, key: str) -> Server:
        if len(self.servers) == 1:
            return self.servers[0]
        digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
        return self.servers[int.from_bytes(digest, "big") % len(self.servers)]

    def post(self, path: str, body: dict[str, Any], key: str = "") -> Any:
        try:
            return self.pick(key).request("POST", path, {"model": self.model_name, **body})
        except ServerError as exc:
            raise ServerError(f"{self.role} server: {exc}") from None

    def close(self) -> None:
        self.client.close()


def chunks(items: Sequence[Any], sizes: Sequence[int], cap: int) -> list[list[int]]:
    """Indices of `items` grouped so that each group's total size stays under `cap` (an item alone may exceed it)."""
    groups: list[list[int]] = []
    total = 0
    for i, size in enumerate(sizes):
        if not groups or (total + size > cap and groups[-1]):
            groups.append([])
            total = 0
        groups[-1].append(i)
        total += size
    return groups


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on at `host` now (for a server about to start: an engine, the app in a test)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]
