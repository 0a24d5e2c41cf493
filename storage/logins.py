"""The login throttle's records in the database (`login_throttle`): every server on one database sees the same
failures and lockouts, and a restart forgets none of them. The policy that reads and writes them is ui/login.py's."""
from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from .models import LoginThrottleRow
from .records import LoginEntry
from .store import Store

Change = Callable[[dict[str, LoginEntry]], dict[str, LoginEntry]]


class LoginBook:
    """`read` and `change` the entries of some keys; an entry that has expired reads as none."""

    def __init__(self, store: Store):
        self.store = store

    def read(self, keys: Sequence[str], now: float) -> dict[str, LoginEntry]:
        with self.store.read() as s:
            rows = s.scalars(select(LoginThrottleRow).where(LoginThrottleRow.key.in_(list(keys)),
                                                            LoginThrottleRow.expires > now))
            return {r.key: _entry(r) for r in rows}

    def change(self, keys: Sequence[str], change: Change, now: float) -> None:
        """Apply `change` to the current entries of `keys` (an empty entry for a key without one) in one write
        transaction (rows locked on PostgreSQL, so two servers never lose each other's failures); entries that
        come back expired are deleted, and so is every other expired row."""

        def work(s: Session) -> None:
            rows = {r.key: r for r in s.scalars(select(LoginThrottleRow)
                                                .where(LoginThrottleRow.key.in_(list(keys))).with_for_update())}
            current = {k: _entry(rows[k]) if k in rows and rows[k].expires > now else LoginEntry() for k in keys}
            for key, entry in change(current).items():
                _put(s, rows.get(key), key, entry, now)
            s.execute(delete(LoginThrottleRow).where(LoginThrottleRow.expires <= now))

        self.store._transact(work)


def _put(s: Session, row: LoginThrottleRow | None, key: str, entry: LoginEntry, now: float) -> None:
    if entry.expires <= now:
        if row is not None:
            s.delete(row)
        return
    if row is None:
        row = LoginThrottleRow(key=key)
        s.add(row)
    row.failures, row.locked_until = list(entry.failures), entry.locked_until
    row.trusted_until, row.expires = entry.trusted_until, entry.expires


def _entry(row: LoginThrottleRow) -> LoginEntry:
    return LoginEntry(tuple(row.failures or ()), row.locked_until, row.trusted_until, row.expires)
