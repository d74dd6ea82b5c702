"""The fake-traffic detector's memory (A12.1, ADR 0029) on both databases: kept in the
process and written behind, it decides as if every batch had been learned in one place,
whichever process ingests, after a crash before any flush, after a rolled-back batch, and
with the journal pruned."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from libs.events import EventStore
from libs.events.contracts import all_contracts
from services.credit import bootstrap as boot
from services.credit import handlers, rules
from services.credit.settings import Settings
from tests.conftest import BACKENDS
from tests.service_support import Clock, service_dependencies

pytestmark = pytest.mark.postgres
T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


def _process(deps, settings: Settings | None = None):
    """A second process on the same database: its own, empty memory."""
    return boot.dependencies(settings or Settings(), deps.db, EventStore(all_contracts(),
                                                           dialect=deps.db.dialect),
                             clock=deps.clock)


@pytest.fixture
async def deps(database_url):
    async with service_dependencies(boot, Settings(), database_url, clock=Clock(T0)) as d:
        yield d


def _batches(accounts: list[str], weeks: int, seed: int = 1) -> list[list[rules.Sample]]:
    """A day per batch: hourly clicks, forwards and followers with noise and a few jumps."""
    rng = random.Random(seed)
    start = T0 - timedelta(weeks=weeks + 1)
    out = []
    for day in range(weeks * 7):
        batch = []
        for hour in range(24):
            at = start + timedelta(days=day, hours=hour)
            for acc in accounts:
                clicks = rng.gauss(200, 12) * (8 if rng.random() < 0.01 else 1)
                batch += [rules.Sample(acc, "clicks", at, round(clicks)),
                          rules.Sample(acc, "forwards", at, max(0, round(rng.gauss(10, 3)))),
                          rules.Sample(acc, "followers", at, max(0, round(rng.gauss(5, 2))))]
        out.append(batch)
    return out


def _oracle(batches):
    """What one memory that learned every batch in order decides."""
    memory = rules.DetectorMemory(rules.DetectorModel())
    verdicts = []
    for b in batches:
        found, _ = rules.detect(b, memory)
        verdicts.append([(s.account_id, s.metric, s.at, v.kind) for s, v in found])
    return verdicts


async def _ingest(deps, batch):
    out = await handlers.ingest_metrics(deps, handlers.MetricsBatch(samples=batch),
                                        key=None, digest="-")
    return [(a["account_id"], a["metric"], datetime.fromisoformat(a["at"]), a["kind"])
            for a in out.anomalies]


@BACKENDS
async def test_A12_1_processes_taking_turns_and_a_crash_before_any_flush_decide_as_one(deps):
    accounts = [f"acc-{uuid.uuid4().hex[:6]}" for _ in range(3)]
    batches = _batches(accounts, weeks=4)
    want = _oracle(batches)
    assert sum(map(len, want)) >= 3  # the run judges real anomalies
    a, b = deps, _process(deps)
    got = []
    for i, batch in enumerate(batches):
        if i == 20:  # process a dies without writing anything behind: a new one takes over
            a = _process(deps)
        got.append(await _ingest(b if i % 7 in (3, 4) else a, batch))
    assert got == want
    async with deps.db.connect() as conn:
        flushed = await conn.fetchval(text("SELECT flushed FROM credit_detector"))
    assert flushed == 0  # nothing was ever written behind: all of it came from the journal


@BACKENDS
async def test_A12_1_written_behind_rows_and_a_pruned_journal_keep_the_memory(deps):
    accounts = [f"acc-{uuid.uuid4().hex[:6]}" for _ in range(2)]
    batches = _batches(accounts, weeks=4, seed=2)
    want = _oracle(batches)
    settings = Settings(keep_samples=False)
    a = _process(deps, settings)
    got = []
    for i, batch in enumerate(batches):
        if i in (10, 21):  # written behind, then the process is replaced
            assert await handlers.flush_baselines(a) > 0
            a = _process(deps, settings)
        got.append(await _ingest(a, batch))
    assert got == want
    async with deps.db.connect() as conn:
        flushed, epoch = await conn.fetchrow(text("SELECT flushed, epoch FROM credit_detector"))
        kept = await conn.fetchval(text("SELECT min(batch) FROM credit_sample_batches"))
    assert flushed == 21 and epoch == len(batches)
    assert kept == 22  # pruned up to what the rows hold; the rest still journalled


@BACKENDS
async def test_A12_1_a_rolled_back_batch_is_not_remembered(deps):
    acc = f"acc-{uuid.uuid4().hex[:6]}"
    at = T0 - timedelta(weeks=1)
    history = [rules.Sample(acc, "clicks", at - timedelta(weeks=w), 100.0 + w)
               for w in range(6, 0, -1)]
    for s in history:
        await _ingest(deps, [s])

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with deps.db.transaction() as tx:
            await handlers.detect_and_learn(deps, tx, [rules.Sample(acc, "clicks", at, 9e6)])
            raise Boom
    # the same process goes on: what the rolled-back batch taught is not in its memory
    later = rules.Sample(acc, "clicks", at + timedelta(weeks=1), 5000.0)
    assert [k for *_, k in await _ingest(deps, [later])] == ["jump"]
    row = deps.baselines.memory.get((acc, rules.hour_of_week(at)))
    assert row["clicks"] == [105.0, 104.0, 103.0, 102.0, 101.0, 5000.0]
    async with deps.db.connect() as conn:
        journal = await conn.fetchval(text("SELECT count(*) FROM credit_sample_batches"))
    assert journal == len(history) + 1  # the rolled-back batch left nothing


@BACKENDS
async def test_A12_1_migration_keeps_what_the_detector_had_learned(database_url):
    """Revision 0004: a baseline row stored as JSON before is the same memory after, and
    the samples kept before are the journal's batch 0 (already learned)."""
    from libs.events import Database
    from libs.events.migrate import upgrade

    await asyncio.to_thread(upgrade, database_url, boot.MIGRATIONS, "0003_credit")
    db = Database(database_url)
    try:
        async with db.transaction() as tx:
            await tx.execute(text(
                "INSERT INTO credit_baselines (account_id, metric, bucket, vals) VALUES "
                "('a1', '*', 20, :s), ('a1', '*', -1, :r)"),
                {"s": '{"clicks": [100, 101, 99], "followers": [5, 6, 7, 8, 9, 10, 11]}',
                 "r": '{"forwards_per_click": [0.05, 0.06]}'})
            await tx.execute(text(
                "INSERT INTO credit_samples (account_id, metric, at, value) VALUES "
                "('a1', 'clicks', :at, 99)"), {"at": T0})
        await asyncio.to_thread(upgrade, database_url, boot.MIGRATIONS)
        deps = boot.dependencies(Settings(), db, EventStore(all_contracts(),
                                                            dialect=db.dialect))
        async with db.transaction() as tx:
            await deps.baselines.claim(tx)
            await deps.baselines.ensure(tx, {("a1", 20), ("a1", -1)})
            journal = await tx.fetch(text("SELECT batch, count FROM credit_sample_batches"))
    finally:
        await db.dispose()
    memory = deps.baselines.memory
    assert memory.get(("a1", 20)) == {"clicks": [100.0, 101.0, 99.0],
                                      "followers": [6.0, 7.0, 8.0, 9.0, 10.0, 11.0]}
    assert memory.get(("a1", -1)) == {"forwards_per_click": [0.05, 0.06]}
    assert [tuple(r) for r in journal] == [(0, 1)]
