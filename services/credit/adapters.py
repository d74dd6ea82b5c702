"""The outside world behind small interfaces: which identity runs which account (kept from
registration's events by the consumer), and the traffic detector's baselines and samples in
SQL (one statement per batch on PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import orjson
from sqlalchemy import text

from libs.events.db import Tx

_LINK = text("INSERT INTO credit_identities (account_id, identity_blind) VALUES (:a, :b) "
             "ON CONFLICT (account_id) DO UPDATE SET identity_blind = excluded.identity_blind")
_IDENTITY_OF = text("SELECT identity_blind FROM credit_identities WHERE account_id = :a")
_ACCOUNTS_OF = text("SELECT account_id FROM credit_identities WHERE identity_blind = :b "
                    "ORDER BY account_id")
_IDENTITIES = text("SELECT DISTINCT identity_blind FROM credit_identities "
                   "ORDER BY identity_blind")
_ALL_ACCOUNTS = text("SELECT account_id FROM credit_identities ORDER BY account_id")


class IdentityDirectory:
    """Account -> identity (the ID number's blind index), as registration announced it."""

    async def link(self, tx: Tx, account_id: str, identity_blind: str) -> None:
        await tx.execute(_LINK, {"a": account_id, "b": identity_blind})

    async def identity_of(self, tx: Tx, account_id: str) -> str | None:
        return await tx.fetchval(_IDENTITY_OF, {"a": account_id})

    async def accounts_of(self, tx: Tx, identity_blind: str) -> list[str]:
        return [r[0] for r in await tx.fetch(_ACCOUNTS_OF, {"b": identity_blind})]

    async def accounts(self, tx: Tx) -> list[str]:
        return [r[0] for r in await tx.fetch(_ALL_ACCOUNTS)]

    async def identities(self, tx: Tx) -> list[str]:
        return [r[0] for r in await tx.fetch(_IDENTITIES)]


Key = tuple[str, str, int]  # account, metric, bucket
ALL = "*"  # one row per account and hour of week holds every metric's values

_LOAD_PG = text(  # one index probe per row (no scan of the whole table)
    "SELECT u.a, u.k, b.vals "
    "FROM unnest(CAST(:a AS text[]), CAST(:k AS int[])) AS u(a, k) "
    "CROSS JOIN LATERAL (SELECT vals FROM credit_baselines WHERE account_id = u.a "
    "AND metric = '*' AND bucket = u.k) AS b")
_LOAD_ONE = text("SELECT account_id, bucket, vals FROM credit_baselines "
                 "WHERE account_id = :a AND metric = '*' AND bucket = :k")
_SAVE_PG = text(
    "INSERT INTO credit_baselines (account_id, metric, bucket, vals) "
    "SELECT u.a, '*', u.k, u.v FROM unnest(CAST(:a AS text[]), CAST(:k AS int[]), "
    "CAST(:v AS text[])) AS u(a, k, v) ON CONFLICT (account_id, metric, bucket) "
    "DO UPDATE SET vals = excluded.vals")
_SAVE = text("INSERT INTO credit_baselines (account_id, metric, bucket, vals) "
             "VALUES (:a, '*', :k, :v) ON CONFLICT (account_id, metric, bucket) "
             "DO UPDATE SET vals = excluded.vals")
_SAMPLES_PG = text(
    "INSERT INTO credit_samples (account_id, metric, at, value) "
    "SELECT * FROM unnest(CAST(:a AS text[]), CAST(:m AS text[]), "
    "CAST(:t AS timestamptz[]), CAST(:v AS float8[])) "
    "ON CONFLICT (account_id, metric, at) DO UPDATE SET value = excluded.value")
_SAMPLES = text("INSERT INTO credit_samples (account_id, metric, at, value) "
                "VALUES (:a, :m, :t, :v) ON CONFLICT (account_id, metric, at) "
                "DO UPDATE SET value = excluded.value")


class Baselines:
    """The detector's memory: recent values per account, metric and hour of week (bucket
    -1: the ratios), stored one row per account and bucket (every metric in it)."""

    async def load(self, tx: Tx, keys: Iterable[Key]) -> dict[Key, list[float]]:
        """The values of ``keys`` and of every other metric in their rows."""
        rows_wanted = sorted({(a, k) for a, _, k in keys})
        if not rows_wanted:
            return {}
        if tx.dialect == "postgresql":
            rows = await tx.fetch(_LOAD_PG, {"a": [r[0] for r in rows_wanted],
                                             "k": [r[1] for r in rows_wanted]})
        else:
            rows = []
            for a, k in rows_wanted:
                rows += await tx.fetch(_LOAD_ONE, {"a": a, "k": k})
        out: dict[Key, list[float]] = {}
        for a, k, vals in rows:
            for metric, values in orjson.loads(vals).items():
                out[(a, metric, k)] = values
        return out

    async def save(self, tx: Tx, values: dict[Key, list[float]]) -> None:
        """Write whole rows: ``values`` must hold every metric of each row it touches
        (what :meth:`load` returned, updated)."""
        if not values:
            return
        rows: dict[tuple[str, int], dict[str, list[float]]] = {}
        for (a, metric, k), v in values.items():
            rows.setdefault((a, k), {})[metric] = v
        items = sorted(rows.items())
        docs = [orjson.dumps(d).decode() for _, d in items]
        if tx.dialect == "postgresql":
            await tx.execute(_SAVE_PG, {"a": [r[0] for r, _ in items],
                                        "k": [r[1] for r, _ in items], "v": docs})
        else:
            await tx.executemany(_SAVE, [{"a": r[0], "k": r[1], "v": d}
                                         for (r, _), d in zip(items, docs, strict=True)])

    async def samples(self, tx: Tx, rows: list[tuple[str, str, datetime, float]]) -> None:
        """Keep the raw samples (the last write of a key wins)."""
        if not rows:
            return
        latest = {(a, m, t): v for a, m, t, v in rows}
        if tx.dialect == "postgresql":
            await tx.execute(_SAMPLES_PG, {"a": [k[0] for k in latest],
                                           "m": [k[1] for k in latest],
                                           "t": [k[2] for k in latest],
                                           "v": list(latest.values())})
        else:
            await tx.executemany(_SAMPLES, [{"a": a, "m": m, "t": t, "v": v}
                                            for (a, m, t), v in latest.items()])
