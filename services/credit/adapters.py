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


Key = tuple[str, str, int]  # account, metric, bucket

_LOAD_PG = text(
    "SELECT b.account_id, b.metric, b.bucket, b.vals FROM credit_baselines b "
    "JOIN unnest(CAST(:a AS text[]), CAST(:m AS text[]), CAST(:k AS int[])) AS u(a, m, k) "
    "ON b.account_id = u.a AND b.metric = u.m AND b.bucket = u.k")
_LOAD_ONE = text("SELECT account_id, metric, bucket, vals FROM credit_baselines "
                 "WHERE account_id = :a AND metric = :m AND bucket = :k")
_SAVE_PG = text(
    "INSERT INTO credit_baselines (account_id, metric, bucket, vals) "
    "SELECT * FROM unnest(CAST(:a AS text[]), CAST(:m AS text[]), CAST(:k AS int[]), "
    "CAST(:v AS text[])) ON CONFLICT (account_id, metric, bucket) DO UPDATE SET "
    "vals = excluded.vals")
_SAVE = text("INSERT INTO credit_baselines (account_id, metric, bucket, vals) "
             "VALUES (:a, :m, :k, :v) ON CONFLICT (account_id, metric, bucket) "
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
    """The detector's memory: recent values per account, metric and hour of week."""

    async def load(self, tx: Tx, keys: Iterable[Key]) -> dict[Key, list[float]]:
        keys = sorted(set(keys))
        if not keys:
            return {}
        if tx.dialect == "postgresql":
            rows = await tx.fetch(_LOAD_PG, {"a": [k[0] for k in keys],
                                             "m": [k[1] for k in keys],
                                             "k": [k[2] for k in keys]})
        else:
            rows = []
            for a, m, k in keys:
                rows += await tx.fetch(_LOAD_ONE, {"a": a, "m": m, "k": k})
        return {(r[0], r[1], r[2]): orjson.loads(r[3]) for r in rows}

    async def save(self, tx: Tx, values: dict[Key, list[float]]) -> None:
        if not values:
            return
        items = sorted(values.items())
        if tx.dialect == "postgresql":
            await tx.execute(_SAVE_PG, {"a": [k[0] for k, _ in items],
                                        "m": [k[1] for k, _ in items],
                                        "k": [k[2] for k, _ in items],
                                        "v": [orjson.dumps(v).decode() for _, v in items]})
        else:
            await tx.executemany(_SAVE, [{"a": k[0], "m": k[1], "k": k[2],
                                          "v": orjson.dumps(v).decode()} for k, v in items])

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
