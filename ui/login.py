"""Login throttling for Gradio's password login: a growing delay after failures, then a lockout, per user name and
per client address.

Why here and not in the auth callable: Gradio calls an auth function with the name and password only, so it cannot
see the client's address; an ASGI middleware in front of `POST /login` sees both, and it sees the answer (400 for
wrong credentials) without changing how Gradio checks passwords (constant-time compare of the auth file's pairs).
"""
from __future__ import annotations

import asyncio
import json
import math
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_LOGIN_BODY = 64 * 1024  # a login form is a few hundred bytes
MAX_TRACKED = 10_000  # keys remembered at most (old ones are dropped first), so failures cannot fill memory


@dataclass(frozen=True)
class ThrottlePolicy:
    """`limit` failures within `window` seconds lock a user name (or a client address) out for `lockout` seconds;
    before that, each attempt after a failure waits `base_delay * 2**(failures-1)` seconds, at most `max_delay`."""

    limit: int = 5
    window: float = 300.0
    lockout: float = 300.0
    base_delay: float = 0.25
    max_delay: float = 2.0


@dataclass
class LoginThrottle:
    """Failure bookkeeping, keyed by `user:NAME` and `addr:IP`; thread-safe, bounded in size."""

    policy: ThrottlePolicy = field(default_factory=ThrottlePolicy)
    clock: Callable[[], float] = time.monotonic
    _failures: dict[str, deque[float]] = field(default_factory=dict)
    _locked_until: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def wait(self, keys: list[str]) -> tuple[float, float]:
        """(seconds locked out, seconds to delay this attempt) for the worst of `keys`."""
        now = self.clock()
        with self._lock:
            locked = max((self._locked_until.get(k, 0.0) - now for k in keys), default=0.0)
            recent = max((len(self._recent(k, now)) for k in keys), default=0)
        delay = 0.0 if recent == 0 else min(self.policy.max_delay, self.policy.base_delay * 2 ** (recent - 1))
        return max(0.0, locked), delay

    def failed(self, keys: list[str]) -> None:
        now = self.clock()
        with self._lock:
            for k in keys:
                times = self._recent(k, now)
                times.append(now)
                self._failures[k] = times
                if len(times) >= self.policy.limit:
                    self._locked_until[k] = now + self.policy.lockout
            self._bound()

    def succeeded(self, user_key: str) -> None:
        """A right password clears that user's failures (not the address's: one good account must not unlock an
        address that is guessing others' passwords)."""
        with self._lock:
            self._failures.pop(user_key, None)
            self._locked_until.pop(user_key, None)

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key, deque())
        while times and now - times[0] > self.policy.window:
            times.popleft()
        return times

    def _bound(self) -> None:
        for table in (self._failures, self._locked_until):
            while len(table) > MAX_TRACKED:
                table.pop(next(iter(table)))


class LoginThrottleMiddleware:
    """ASGI middleware: throttles `POST .../login`, passes every other request through untouched."""

    def __init__(self, app: ASGIApp, throttle: LoginThrottle | None = None, policy: ThrottlePolicy | None = None):
        self.app = app
        self.throttle = throttle or LoginThrottle(policy or ThrottlePolicy())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http" or scope.get("method") != "POST" or \
                not scope.get("path", "").rstrip("/").endswith("/login"):
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        user = (parse_qs(body.decode("utf-8", "replace")).get("username") or [""])[0].strip()
        client = scope.get("client") or ("unknown", 0)
        keys = [f"user:{user}", f"addr:{client[0]}"]
        locked, delay = self.throttle.wait(keys)
        if locked > 0:
            await _too_many(send, locked)
            return
        if delay > 0:
            await asyncio.sleep(delay)
        status: list[int] = []

        async def watch(message: Message) -> None:
            if message.get("type") == "http.response.start":
                status.append(int(message.get("status", 0)))
            await send(message)

        await self.app(scope, _replay(body), watch)
        if status and status[0] in (400, 401, 403):
            self.throttle.failed(keys)
        elif status and 200 <= status[0] < 300:
            self.throttle.succeeded(keys[0])


async def _read_body(receive: Receive) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message.get("type") != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size <= MAX_LOGIN_BODY:
            chunks.append(chunk)
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


async def _too_many(send: Send, seconds: float) -> None:
    wait = math.ceil(seconds)
    payload = json.dumps({"detail": f"too many failed logins: try again in {wait} s"}).encode()
    await send({"type": "http.response.start", "status": 429,
                "headers": [(b"content-type", b"application/json"), (b"retry-after", str(wait).encode()),
                            (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})
