"""The outside world behind small interfaces: which identity runs which account (kept from
registration's events by the consumer), and the traffic detector's memory (cached in the
process, written behind to SQL; its samples journalled with each batch)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

import orjson
from sqlalchemy import text

from libs.domain import as_datetime
from libs.events.db import Tx

from . import rules

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


Key = rules.Key  # account, metric, bucket

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
_CLAIM = text(  # the row lock every batch and flush takes first: one writer at a time
    "UPDATE credit_detector SET epoch = epoch + 1, prev_writer = writer, writer = :me "
    "WHERE id = 1 RETURNING epoch, prev_writer, flushed")
_MARK_FLUSHED = text("UPDATE credit_detector SET flushed = epoch "
                     "WHERE id = 1 AND writer = :me RETURNING epoch")
_JOURNAL = text("SELECT batch, account_id, metric, at, value FROM credit_samples "
                "WHERE batch > :after AND batch < :before ORDER BY batch, seq")
_PRUNE = text("DELETE FROM credit_samples WHERE batch <= :upto")
_SAMPLE_COLUMNS = ("batch", "seq", "account_id", "metric", "at", "value")
Row = tuple[str, int]  # account, bucket


class BaselineRows:
    """The detector's memory in SQL: recent values per account, metric and hour of week
    (bucket -1: the ratios), one row per account and bucket holding every metric."""

    async def load(self, tx: Tx, rows: Iterable[Row]) -> dict[Key, list[float]]:
        """The values of every metric of ``rows`` (absent rows: no values)."""
        wanted = sorted(set(rows))
        if not wanted:
            return {}
        if tx.dialect == "postgresql":
            found = await tx.fetch(_LOAD_PG, {"a": [r[0] for r in wanted],
                                              "k": [r[1] for r in wanted]})
        else:
            found = []
            for a, k in wanted:
                found += await tx.fetch(_LOAD_ONE, {"a": a, "k": k})
        out: dict[Key, list[float]] = {}
        for a, k, vals in found:
            for metric, values in orjson.loads(vals).items():
                out[(a, metric, k)] = values
        return out

    async def save(self, tx: Tx, values: dict[Key, list[float]]) -> None:
        """Write whole rows: ``values`` must hold every metric of each row it touches."""
        if not values:
            return
        rows: dict[Row, dict[str, list[float]]] = {}
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


class Baselines:
    """The detector's memory, kept in this process and written behind (ADR 0029).

    Every ingest batch first takes the ``credit_detector`` row (:meth:`claim`): its epoch
    numbers the batch, and says whether this process wrote the previous one. If it did
    not (another process did, this one is new, or its last batch rolled back), what is
    cached is forgotten and rebuilt: the rows from ``credit_baselines``, then the journal
    of samples that the rows do not hold yet (batches after ``flushed``), learned again
    batch by batch exactly as they were. Samples go to the journal in the batch's own
    transaction (binary COPY), so nothing learned is lost with the process; the rows are
    written by :meth:`flush` (periodically, at shutdown, and when too many are dirty).
    With ``keep_samples`` off, the journal is pruned up to what the rows hold.
    """

    def __init__(self, model: rules.DetectorModel, *, keep_samples: bool = True,
                 max_rows: int = 2_000_000, max_dirty: int = 500_000) -> None:
        self.model = model
        self.keep_samples = keep_samples
        self.max_rows = max_rows
        self.max_dirty = max_dirty
        self.writer = uuid.uuid4().hex
        self.epoch: int | None = None  # the batch this process last wrote
        self.memory: dict[Key, list[float]] = {}
        self.rows: dict[Row, set[str]] = {}  # loaded rows, oldest first: their metrics
        self.dirty: set[Row] = set()
        self.store = BaselineRows()

    def forget(self) -> None:
        self.epoch = None
        self.memory, self.rows, self.dirty = {}, {}, set()

    async def claim(self, tx: Tx) -> int:
        """Number this batch and make the memory current; the batch's epoch."""
        epoch, prev, flushed = await tx.fetchrow(_CLAIM, {"me": self.writer})
        if self.epoch is None or prev != self.writer or self.epoch != epoch - 1:
            self.forget()
            await self._recover(tx, flushed, epoch)
        self.epoch = epoch
        return epoch

    async def _recover(self, tx: Tx, flushed: int, epoch: int) -> None:
        batch: list[rules.Sample] = []
        current = None
        for b, a, m, at, v in await tx.fetch(_JOURNAL, {"after": flushed, "before": epoch}):
            if b != current and batch:
                await self._relearn(tx, batch)
                batch = []
            current = b
            batch.append(rules.Sample(a, m, as_datetime(at), v))
        if batch:
            await self._relearn(tx, batch)

    async def _relearn(self, tx: Tx, samples: list[rules.Sample]) -> None:
        rows = rules.rows_of(samples)
        await self.ensure(tx, rows)
        _, changed = rules.detect(samples, self.memory, self.model)
        self.learn(changed, rows)

    async def ensure(self, tx: Tx, rows: set[Row]) -> None:
        """Load the ``rows`` (account, bucket) that are not in memory yet."""
        missing = rows.difference(self.rows)
        for row in missing:
            self.rows[row] = set()
        for (a, metric, k), values in (await self.store.load(tx, missing)).items():
            self.memory[(a, metric, k)] = values
            self.rows[(a, k)].add(metric)

    def learn(self, changed: dict[Key, list[float]], rows: set[Row]) -> None:
        """Remember what a batch learned; ``rows``: the rows it touched (``rows_of``)."""
        for a, metric, k in changed.keys() - self.memory.keys():
            self.rows.setdefault((a, k), set()).add(metric)
        self.memory.update(changed)
        self.dirty |= rows

    async def journal(self, tx: Tx, epoch: int, samples: list[rules.Sample]) -> None:
        await tx.copy_rows("credit_samples", _SAMPLE_COLUMNS,
                           [(epoch, i, s.account_id, s.metric, s.at, s.value)
                            for i, s in enumerate(samples)])

    async def flush(self, tx: Tx) -> int:
        """Write the dirty rows and mark the journal as held up to the last batch; the
        rows written. Inside a batch's transaction or in its own."""
        epoch = await tx.fetchval(_MARK_FLUSHED, {"me": self.writer})
        if epoch is None or epoch != self.epoch:  # another writer, or a batch rolled back
            self.forget()
            return 0
        dirty = sorted(self.dirty)
        await self.store.save(tx, {(a, m, k): self.memory[(a, m, k)]
                                   for a, k in dirty for m in self.rows[(a, k)]})
        if not self.keep_samples:
            await tx.execute(_PRUNE, {"upto": epoch})
        self.dirty = set()
        self._evict()
        return len(dirty)

    def _evict(self) -> None:
        """Past ``max_rows``, the rows loaded first leave the memory (all are clean
        here: just written)."""
        excess = len(self.rows) - self.max_rows
        for row in list(self.rows)[:max(excess, 0)]:
            if row not in self.dirty:
                for m in self.rows.pop(row):
                    self.memory.pop((row[0], m, row[1]), None)
