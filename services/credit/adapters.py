"""The outside world behind small interfaces: which identity runs which account (kept from
registration's events by the consumer), and the traffic detector's memory (cached in the
process, written behind to SQL; the samples journalled with each batch)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

import orjson
from sqlalchemy import text

from libs.events.db import Tx

from . import rules

_LINK = text("INSERT INTO credit_identities (account_id, identity_blind, province) "
             "VALUES (:a, :b, :p) ON CONFLICT (account_id) DO UPDATE SET "
             "identity_blind = excluded.identity_blind, province = excluded.province")
_IDENTITY_OF = text("SELECT identity_blind FROM credit_identities WHERE account_id = :a")
_PROVINCE_OF = text("SELECT province FROM credit_identities WHERE account_id = :a")
_ACCOUNTS_OF = text("SELECT account_id FROM credit_identities WHERE identity_blind = :b "
                    "ORDER BY account_id")
_IDENTITIES = text("SELECT DISTINCT identity_blind FROM credit_identities "
                   "ORDER BY identity_blind")
_ALL_ACCOUNTS = text("SELECT account_id FROM credit_identities ORDER BY account_id")


class IdentityDirectory:
    """Account -> identity (the ID number's blind index) and province, as registration
    announced them."""

    async def link(self, tx: Tx, account_id: str, identity_blind: str,
                   province: str | None = None) -> None:
        await tx.execute(_LINK, {"a": account_id, "b": identity_blind, "p": province})

    async def province_of(self, tx: Tx, account_id: str) -> str | None:
        """The account's registered province (A3 scope); None if credit has not learned it."""
        return await tx.fetchval(_PROVINCE_OF, {"a": account_id})

    async def identity_of(self, tx: Tx, account_id: str) -> str | None:
        return await tx.fetchval(_IDENTITY_OF, {"a": account_id})

    async def accounts_of(self, tx: Tx, identity_blind: str) -> list[str]:
        return [r[0] for r in await tx.fetch(_ACCOUNTS_OF, {"b": identity_blind})]

    async def accounts(self, tx: Tx) -> list[str]:
        return [r[0] for r in await tx.fetch(_ALL_ACCOUNTS)]

    async def identities(self, tx: Tx) -> list[str]:
        return [r[0] for r in await tx.fetch(_IDENTITIES)]



_LOAD_PG = text(  # one index probe per row (no scan of the whole table)
    "SELECT u.a, u.k, b.data "
    "FROM unnest(CAST(:a AS text[]), CAST(:k AS int[])) AS u(a, k) "
    "CROSS JOIN LATERAL (SELECT data FROM credit_baselines WHERE account_id = u.a "
    "AND bucket = u.k) AS b")
_LOAD_ONE = text("SELECT account_id, bucket, data FROM credit_baselines "
                 "WHERE account_id = :a AND bucket = :k")
_SAVE_PG = text(
    "INSERT INTO credit_baselines (account_id, bucket, data) "
    "SELECT * FROM unnest(CAST(:a AS text[]), CAST(:k AS int[]), CAST(:v AS bytea[])) "
    "ON CONFLICT (account_id, bucket) DO UPDATE SET data = excluded.data")
_SAVE = text("INSERT INTO credit_baselines (account_id, bucket, data) VALUES (:a, :k, :v) "
             "ON CONFLICT (account_id, bucket) DO UPDATE SET data = excluded.data")
_CLAIM = text(  # the row lock every batch and flush takes first: one writer at a time
    "UPDATE credit_detector SET epoch = epoch + 1, prev_writer = writer, writer = :me "
    "WHERE id = 1 RETURNING epoch, prev_writer, flushed")
_MARK_FLUSHED = text("UPDATE credit_detector SET flushed = epoch "
                     "WHERE id = 1 AND writer = :me RETURNING epoch")
_JOURNAL = text("SELECT samples FROM credit_sample_batches "
                "WHERE batch > :after AND batch < :before ORDER BY batch")
_JOURNAL_ADD = text("INSERT INTO credit_sample_batches (batch, count, samples) "
                    "VALUES (:batch, :n, :payload)")
_PRUNE = text("DELETE FROM credit_sample_batches WHERE batch <= :upto")
Row = rules.Row


class BaselineRows:
    """The detector's memory in SQL: one row per account and bucket (hour of week; -1 the
    ratios), its block of values as float64 bytes (``rules.DetectorMemory``'s layout)."""

    async def load(self, tx: Tx, rows: Iterable[Row]) -> dict[Row, bytes]:
        """The stored ``rows`` (absent ones are left out)."""
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
        return {(a, k): data for a, k, data in found}

    async def save(self, tx: Tx, rows: list[Row], data: list[bytes]) -> None:
        """Write whole rows."""
        if not rows:
            return
        if tx.dialect == "postgresql":
            await tx.execute(_SAVE_PG, {"a": [r[0] for r in rows], "k": [r[1] for r in rows],
                                        "v": data})
        else:
            await tx.executemany(_SAVE, [{"a": r[0], "k": r[1], "v": d}
                                         for r, d in zip(rows, data, strict=True)])


class Baselines:
    """The detector's memory, kept in this process and written behind (ADR 0029).

    Every ingest batch first takes the ``credit_detector`` row (:meth:`claim`): its epoch
    numbers the batch, and says whether this process wrote the previous one. If it did
    not (another process did, this one is new, or its last batch rolled back), what is
    cached is forgotten and rebuilt: the rows from ``credit_baselines``, then the journal
    of samples that the rows do not hold yet (batches after ``flushed``), learned again
    batch by batch exactly as they were. Samples go to the journal in the batch's own
    transaction, so nothing learned is lost with the process; the rows are written by
    :meth:`flush` (periodically, at shutdown, and when too many are dirty). With
    ``keep_samples`` off, the journal is pruned up to what the rows hold.
    """

    def __init__(self, model: rules.DetectorModel, *, keep_samples: bool = True,
                 max_rows: int = 2_000_000, max_dirty: int = 500_000) -> None:
        self.model = model
        self.keep_samples = keep_samples
        self.max_rows = max_rows
        self.max_dirty = max_dirty
        self.writer = uuid.uuid4().hex
        self.epoch: int | None = None  # the batch this process last wrote
        self.memory = rules.DetectorMemory(model)
        self.loaded: set[Row] = set()  # rows read from the table (or known to be absent)
        self.dirty: set[Row] = set()
        self.store = BaselineRows()

    def forget(self) -> None:
        self.epoch = None
        self.memory, self.loaded, self.dirty = rules.DetectorMemory(self.model), set(), set()

    async def claim(self, tx: Tx) -> int:
        """Number this batch and make the memory current; the batch's epoch."""
        epoch, prev, flushed = await tx.fetchrow(_CLAIM, {"me": self.writer})
        if self.epoch is None or prev != self.writer or self.epoch != epoch - 1:
            self.forget()
            await self._recover(tx, flushed, epoch)
        self.epoch = epoch
        return epoch

    async def _recover(self, tx: Tx, flushed: int, epoch: int) -> None:
        for (payload,) in await tx.fetch(_JOURNAL, {"after": flushed, "before": epoch}):
            await self.learn(tx, samples_of(payload))

    async def learn(self, tx: Tx, samples: list[rules.Sample]
                    ) -> list[tuple[rules.Sample, rules.Verdict]]:
        """Judge and learn one batch (the rows it needs loaded first); its verdicts."""
        await self.ensure(tx, rules.rows_of(samples))
        found, touched = rules.detect(samples, self.memory)
        self.dirty |= touched
        return found

    async def ensure(self, tx: Tx, rows: set[Row]) -> None:
        """Load the ``rows`` (account, bucket) that were never read."""
        missing = rows - self.loaded
        if missing:
            for row, data in (await self.store.load(tx, missing)).items():
                self.memory.put_block(row, data)
            self.loaded |= missing

    async def journal(self, tx: Tx, epoch: int, samples: list[rules.Sample]) -> None:
        """The batch's samples, one journal row (columns as JSON)."""
        await tx.execute(_JOURNAL_ADD, {"batch": epoch, "n": len(samples),
                                        "payload": journal_payload(samples)})

    async def flush(self, tx: Tx) -> int:
        """Write the dirty rows and mark the journal as held up to the last batch; the
        rows written. Inside a batch's transaction or in its own."""
        epoch = await tx.fetchval(_MARK_FLUSHED, {"me": self.writer})
        if epoch is None or epoch != self.epoch:  # another writer, or a batch rolled back
            self.forget()
            return 0
        dirty = sorted(self.dirty)
        await self.store.save(tx, dirty, self.memory.blocks(dirty))
        if not self.keep_samples:
            await tx.execute(_PRUNE, {"upto": epoch})
        self.dirty = set()
        if len(self.memory) > self.max_rows:  # all clean now: refilled on demand
            self.memory, self.loaded = rules.DetectorMemory(self.model), set()
        return len(dirty)


def journal_payload(samples: list[rules.Sample]) -> bytes:
    return orjson.dumps({"account_id": [s.account_id for s in samples],
                         "metric": [s.metric for s in samples],
                         "at": [s.at for s in samples],
                         "value": [s.value for s in samples]})


def samples_of(payload: bytes) -> list[rules.Sample]:
    cols = orjson.loads(payload)
    return [rules.Sample(a, m, datetime.fromisoformat(t), v) for a, m, t, v in zip(
        cols["account_id"], cols["metric"], cols["at"], cols["value"], strict=True)]
