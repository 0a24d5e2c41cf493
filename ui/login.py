"""Login throttling for Gradio's password login: a growing delay after failures, then a lockout, by the pair (user
name, client address) and by address, with a slower limit per user name that no stranger can turn against its user.

Why here and not in the auth callable: Gradio calls an auth function with the name and password only, so it cannot
see the client's address; an ASGI middleware in front of `POST /login` sees both, and it sees the answer (400 for
wrong credentials) without changing how Gradio checks passwords (constant-time compare of the auth file's pairs).
The user name is read from the body the way Gradio reads it (urlencoded or multipart form), so the form's encoding
cannot choose the throttle key.

Why three keys: a lock by user name alone lets anyone lock any user out by guessing wrong; a lock by the pair holds
one guesser at one address; a lock by address holds one address guessing many names; and the per-user limit holds
guessing spread over many addresses, but only at addresses the user never logged in from, so the user's own
address still lets the right password in. The records live in the database when one is given (`storage.logins`):
a restart forgets no lockout and every server on that database sees the same ones.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from starlette.requests import Request

from storage.records import LoginEntry

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Change = Callable[[dict[str, LoginEntry]], dict[str, LoginEntry]]

MAX_LOGIN_BODY = 64 * 1024  # a login form is a few hundred bytes; a larger body is refused unread
MAX_TRACKED = 10_000  # keys remembered at most in memory (old ones are dropped first), so failures cannot fill it
MAX_KEY_NAME = 200  # a longer user name is keyed by its hash (the key column is 500 characters)


@dataclass(frozen=True)
class ThrottlePolicy:
    """`limit` failures of one user name from one address within `window` seconds lock that pair out for `lockout`
    seconds, and `address_limit` failures from one address (any names) lock the address. `user_limit` failures of
    one user name from addresses it has not logged in from within `user_window` lock it out of those addresses for
    `user_lockout`; a right password marks its pair trusted for `trust` seconds. Before a lock, each attempt after
    a failure of its pair or address waits `base_delay * 2**(failures-1)` seconds, at most `max_delay`."""

    limit: int = 5
    window: float = 300.0
    lockout: float = 300.0
    address_limit: int = 20
    user_limit: int = 50
    user_window: float = 3600.0
    user_lockout: float = 900.0
    trust: float = 30 * 86400.0
    base_delay: float = 0.25
    max_delay: float = 2.0


class Book(Protocol):
    """Where the throttle keeps its entries: this process's memory, or the database (`storage.logins.LoginBook`)."""

    def read(self, keys: Sequence[str], now: float) -> dict[str, LoginEntry]: ...

    def change(self, keys: Sequence[str], change: Change, now: float) -> None: ...


@dataclass
class MemoryBook:
    """Entries in this process only: bounded in size, forgotten on restart (the app with no database)."""

    entries: OrderedDict[str, LoginEntry] = field(default_factory=OrderedDict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def read(self, keys: Sequence[str], now: float) -> dict[str, LoginEntry]:
        with self.lock:
            return {k: e for k in keys if (e := self.entries.get(k)) is not None and e.expires > now}

    def change(self, keys: Sequence[str], change: Change, now: float) -> None:
        with self.lock:
            current = {k: e if (e := self.entries.get(k)) is not None and e.expires > now else LoginEntry()
                       for k in keys}
            for key, entry in change(current).items():
                self.entries.pop(key, None)
                if entry.expires > now:
                    self.entries[key] = entry
            while len(self.entries) > MAX_TRACKED:
                self.entries.popitem(last=False)


@dataclass(frozen=True)
class Keys:
    """The three throttle keys of one attempt."""

    pair: str
    address: str
    user: str

    @classmethod
    def of(cls, user: str, address: str) -> Keys:
        name = user if len(user) <= MAX_KEY_NAME else "sha256:" + hashlib.sha256(user.encode()).hexdigest()
        address = address[:MAX_KEY_NAME]
        return cls(f"pair:{name}\n{address}", f"addr:{address}", f"user:{name}")

    def all(self) -> list[str]:
        return [self.pair, self.address, self.user]


@dataclass
class LoginThrottle:
    """The policy over a book of entries; thread-safe as its book is. Times are wall-clock seconds, so entries kept
    in the database mean the same after a restart."""

    policy: ThrottlePolicy = field(default_factory=ThrottlePolicy)
    clock: Callable[[], float] = time.time
    book: Book = field(default_factory=MemoryBook)

    def wait(self, keys: Keys) -> tuple[float, float]:
        """(seconds locked out, seconds to delay this attempt) for the worst of `keys`."""
        now = self.clock()
        got = self.book.read(keys.all(), now)
        pair, address, user = (got.get(k, LoginEntry()) for k in keys.all())
        locks = [pair.locked_until, address.locked_until]
        if pair.trusted_until <= now:  # the user's own address is never locked by failures from elsewhere
            locks.append(user.locked_until)
        p = self.policy
        recent = max(len(_recent(pair, now, p.window)), len(_recent(address, now, p.window)))
        delay = 0.0 if recent == 0 else min(p.max_delay, p.base_delay * 2 ** (recent - 1))
        return max(0.0, max(locks) - now), delay

    def failed(self, keys: Keys) -> None:
        now, p = self.clock(), self.policy

        def change(current: dict[str, LoginEntry]) -> dict[str, LoginEntry]:
            pair = current[keys.pair]
            out = {keys.pair: _failure(pair, now, p.limit, p.window, p.lockout),
                   keys.address: _failure(current[keys.address], now, p.address_limit, p.window, p.lockout)}
            if pair.trusted_until <= now:
                out[keys.user] = _failure(current[keys.user], now, p.user_limit, p.user_window, p.user_lockout)
            return out

        self.book.change(keys.all(), change, now)

    def succeeded(self, keys: Keys) -> None:
        """A right password clears its pair's failures and trusts the pair; the address's failures stay (one good
        account must not unlock an address that guesses others' passwords), and so do the user's from elsewhere."""
        now = self.clock()
        until = now + self.policy.trust
        self.book.change([keys.pair], lambda _: {keys.pair: LoginEntry((), 0.0, until, until)}, now)


def _recent(entry: LoginEntry, now: float, window: float) -> tuple[float, ...]:
    return tuple(t for t in entry.failures if now - t <= window)


def _failure(entry: LoginEntry, now: float, limit: int, window: float, lockout: float) -> LoginEntry:
    """`entry` with one more failure at `now`: locked once `limit` fall within `window`; keeps the last `limit`."""
    failures = (*_recent(entry, now, window), now)[-limit:]
    locked = now + lockout if len(failures) >= limit else entry.locked_until
    return replace(entry, failures=failures, locked_until=locked,
                   expires=max(now + window, locked, entry.trusted_until))


class LoginThrottleMiddleware:
    """ASGI middleware: throttles `POST .../login`, passes every other request through untouched."""

    def __init__(self, app: ASGIApp, throttle: LoginThrottle | None = None, policy: ThrottlePolicy | None = None,
                 book: Book | None = None):
        self.app = app
        self.throttle = throttle or LoginThrottle(policy or ThrottlePolicy(), book=book or MemoryBook())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http" or scope.get("method") != "POST" or \
                not scope.get("path", "").rstrip("/").endswith("/login"):
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:
            await _answer(send, 413, f"a login form is at most {MAX_LOGIN_BODY} bytes")
            return
        client = scope.get("client") or ("unknown", 0)
        keys = Keys.of(await _login_name(scope, body), str(client[0]))
        locked, delay = await asyncio.to_thread(self.throttle.wait, keys)
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
            await asyncio.to_thread(self.throttle.failed, keys)
        elif status and 200 <= status[0] < 300:
            await asyncio.to_thread(self.throttle.succeeded, keys)


async def _login_name(scope: Scope, body: bytes) -> str:
    """The `username` field as Gradio's login reads it (a urlencoded or multipart form, stripped); "" without one."""
    try:
        form = await Request(scope, _replay(body)).form(max_files=0, max_fields=100)
    except Exception:  # noqa: BLE001 - a form Gradio cannot read either: it answers that itself
        return ""
    name = form.get("username")
    return name.strip() if isinstance(name, str) else ""


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body, or None once it passes MAX_LOGIN_BODY (the rest is not kept)."""
    chunks: list[bytes] = []
    size = 0
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
    return b"".join(chunks) if size <= MAX_LOGIN_BODY else None


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
    await _answer(send, 429, f"too many failed logins: try again in {wait} s", [(b"retry-after", str(wait).encode())])


async def _answer(send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    payload = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), *(headers or []),
                            (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})
