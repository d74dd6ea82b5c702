"""The outside world of the write side: look-up tables read and written in the handler's
transaction, and the in-memory index of closed accounts' names.

Limits (A10.1), velocity (A10.3) and bans (A8.3) must hold under concurrency, so they are
not read from the asynchronous projection: each registration upserts the rows of its keys
(identity, phone, device, network) in key order, which counts it and locks the rows until
commit. A second registration of the same identity waits on that lock and then sees the
first one counted (docs/decisions/0009-registration-limits-under-concurrency.md).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import text

from libs.events import Database
from libs.events.db import Tx

from .rules import KeyState

_RETURNING = "RETURNING key, kind, accounts, win_count"
_ON_CONFLICT = """
    ON CONFLICT (key) DO UPDATE SET
      accounts = r.accounts + excluded.accounts,
      win_count = CASE WHEN r.win_start > excluded.win_start - excluded.win_seconds
                       THEN r.win_count + 1 ELSE 1 END,
      win_start = CASE WHEN r.win_start > excluded.win_start - excluded.win_seconds
                       THEN r.win_start ELSE excluded.win_start END,
      win_seconds = excluded.win_seconds
"""
# One statement for all keys; ORDER BY fixes the lock order, so two registrations sharing
# a phone but not an identity cannot deadlock.
_COUNT_PG = text(f"""
    INSERT INTO registration_keys AS r (key, kind, accounts, win_start, win_count, win_seconds)
    SELECT u.k, u.kd, u.inc, u.now, 1, u.win
    FROM unnest(CAST(:keys AS text[]), CAST(:kinds AS text[]), CAST(:incs AS integer[]),
                CAST(:wins AS double precision[]), CAST(:nows AS double precision[]))
         AS u(k, kd, inc, win, now)
    ORDER BY u.k
    {_ON_CONFLICT}
    {_RETURNING}
""")
_COUNT_SQLITE = text(f"""
    INSERT INTO registration_keys AS r (key, kind, accounts, win_start, win_count, win_seconds)
    VALUES (:key, :kind, :inc, :now, 1, :win)
    {_ON_CONFLICT}
    {_RETURNING}
""")
_UNCOUNT = text("UPDATE registration_keys SET accounts = accounts - 1 WHERE key = :key")
_ADD_ACCOUNT = text("""
    INSERT INTO registration_keys AS r (key, kind, accounts) VALUES (:key, :kind, 1)
    ON CONFLICT (key) DO UPDATE SET accounts = r.accounts + 1
""")
# One row per measure: lifting a measure removes its own ban and no other (A8.3).
_BAN = text("""
    INSERT INTO registration_bans (key, measure_id, kind, banned_until, permanent)
    VALUES (:key, :measure, :kind, :until, :permanent)
    ON CONFLICT (key, measure_id) DO NOTHING
""")
_UNBAN = text("DELETE FROM registration_bans WHERE key = :key AND measure_id = :measure")
# The ban in force on each key: the latest end of its timed bans, and whether any is permanent.
_BANS_OF = """
    SELECT key, MAX(banned_until), MAX(CASE WHEN permanent THEN 1 ELSE 0 END)
    FROM registration_bans WHERE key {} GROUP BY key
"""
_BANS_OF_PG = text(_BANS_OF.format("= ANY(CAST(:keys AS text[]))"))
_BANS_OF_SQLITE = text(_BANS_OF.format("IN (SELECT value FROM json_each(:keys))"))
_CLOSE_NAME = text("""
    INSERT INTO registration_closed_names (account_id, name, closed_at)
    VALUES (:account_id, :name, :closed_at) ON CONFLICT (account_id) DO NOTHING
""")
_CLOSED_NAMES = text("""
    SELECT seq, account_id, name FROM registration_closed_names WHERE seq > :after
    ORDER BY seq LIMIT :limit
""")


async def count_attempt(tx: Tx, keys: Sequence[tuple[str, str, int, float]], now: float
                        ) -> list[KeyState]:
    """Count one attempt on each ``(key, kind, accounts increment, window seconds)``, lock
    the keys' rows until commit, and return their state including this attempt."""
    return await count_attempts(tx, [(keys, now)])


async def count_attempts(tx: Tx, attempts: Sequence[tuple[Sequence[tuple[str, str, int, float]],
                                                          float]]) -> list[KeyState]:
    """:func:`count_attempt` for several registrations at once, each ``(keys, now)`` with
    its own clock, in one statement on PostgreSQL (a group commit: writer.py). Their keys
    must be distinct: a row is counted once per statement."""
    rows_in = sorted((k, kd, inc, win, now) for keys, now in attempts
                     for k, kd, inc, win in keys)
    if tx.dialect == "postgresql":
        rows = await tx.fetch(_COUNT_PG, {
            "keys": [r[0] for r in rows_in], "kinds": [r[1] for r in rows_in],
            "incs": [r[2] for r in rows_in], "wins": [float(r[3]) for r in rows_in],
            "nows": [r[4] for r in rows_in]})
    else:
        rows = [await tx.fetchrow(_COUNT_SQLITE, {"key": k, "kind": kd, "inc": inc,
                                                   "now": now, "win": float(win)})
                for k, kd, inc, win, now in rows_in]
    names = [r[0] for r in rows_in]
    found = (await tx.fetch(_BANS_OF_PG, {"keys": names}) if tx.dialect == "postgresql"
             else await tx.fetch(_BANS_OF_SQLITE, {"keys": json.dumps(names)}))
    bans = {r[0]: (r[1], bool(r[2])) for r in found}
    return [KeyState(r[0], r[1], r[2], r[3], *bans.get(r[0], (None, False))) for r in rows]


async def uncount(tx: Tx, keys: Sequence[str]) -> None:
    """An account no longer held by ``keys``: a refused registration (its attempt still
    counts) or an account transferred away (A11.2)."""
    await tx.executemany(_UNCOUNT, [{"key": k} for k in keys])


async def add_account(tx: Tx, keys: Sequence[tuple[str, str]]) -> None:
    """An account reached ``keys`` by transfer (A11.2): it counts for the new owner."""
    await tx.executemany(_ADD_ACCOUNT, [{"key": k, "kind": kind} for k, kind in keys])


async def ban(tx: Tx, keys: Sequence[tuple[str, str]], *, until: datetime | None,
              measure_id: str) -> None:
    await tx.executemany(_BAN, [
        {"key": k, "kind": kind, "until": until.timestamp() if until else None,
         "permanent": until is None, "measure": measure_id} for k, kind in keys])


async def unban(tx: Tx, keys: Sequence[str], *, measure_id: str) -> None:
    await tx.executemany(_UNBAN, [{"key": k, "measure": measure_id} for k in keys])


async def record_closed_name(tx: Tx, *, account_id: str, name: str, at: datetime) -> None:
    await tx.execute(_CLOSE_NAME, {"account_id": account_id, "name": name, "closed_at": at})


async def closed_names_after(tx: Tx, after: int, limit: int = 50_000
                             ) -> list[tuple[int, str, str]]:
    return [(r[0], r[1], r[2]) for r in await tx.fetch(_CLOSED_NAMES,
                                                        {"after": after, "limit": limit})]


class ClosedNames:
    """Closed accounts' names in memory, for A8.3 similarity in well under a millisecond.

    Loaded at start-up from ``registration_closed_names`` and refreshed every few seconds,
    so each worker process picks up closures committed by the others (a closure reaches
    every worker within one refresh interval: docs/decisions/0010-registration-closed-names.md).
    """

    # Closures committed out of sequence order (two workers' consumers) are re-read.
    OVERLAP = 1000

    def __init__(self, *, affixes: Sequence[str] | None = None,
                 contained_min_length: int | None = 6) -> None:
        from libs.screening import DEFAULT_AFFIXES, Affixes, NameIndex

        self.index = NameIndex()
        self.seq = 0
        # A8.3 "closely associated names": a closed name with a label added (官方, 号, 说)
        # or inside a longer name is for a reviewer (docs/decisions/0024-closed-name-affixes.md)
        self.affixes = Affixes(DEFAULT_AFFIXES if affixes is None else affixes)
        self.contained_min_length = contained_min_length or None  # 0: no containment

    def similar(self, name: str, *, threshold: float):
        return self.index.similar(name, threshold=threshold, limit=5, affixes=self.affixes,
                                  contained_min_length=self.contained_min_length)

    def add(self, account_id: str, name: str) -> None:
        self.index.add(account_id, name)

    async def refresh(self, db: Database) -> int:
        """Index the names closed since the last refresh; returns how many were read."""
        read = 0
        async with db.connect() as conn:
            after = max(0, self.seq - self.OVERLAP)
            while rows := await closed_names_after(conn, after):
                self.index.bulk_load((account_id, name) for _, account_id, name in rows)
                after = rows[-1][0]
                read += len(rows)
        self.seq = max(self.seq, after)
        return read
