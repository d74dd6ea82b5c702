"""Benchmark 5: reading the whole global log, decoded, ours against a raw asyncpg cursor.

The log holds ``read_events`` small events (written by our own ``append``, 1,000 per
transaction and stream, so there are many inserting transaction ids). Then, after
``VACUUM ANALYZE`` and one untimed pass of each reader:

- ours: ``store.read_all(conn, cursor, limit=read_page)`` page after page on one
  connection until a page comes back empty, payloads decoded into :class:`Envelope`\\ s;
- raw: one asyncpg server-side cursor (``conn.cursor(..., prefetch=read_page)`` in a
  transaction) over the same table and columns ``ORDER BY position``, decoding each
  row's data with ``orjson.loads``;
- the two readers alternate, two timed passes each;
- reference: ``eventsourcing``'s ``select_notifications`` paging through the same
  number of events in its own table, decoding each state with ``orjson.loads``.
"""

from __future__ import annotations

import asyncio

import asyncpg
import orjson

from libs.events import START, Database, EventStore

from . import es_recorder
from .common import (
    Config,
    Result,
    Timer,
    envelope,
    log,
    make_registry,
    maybe_profile,
    new_stream_id,
    reset_db,
    vacuum_analyze,
)

LOAD_PER_TXN = 1000
LOAD_WRITERS = 4
ROUNDS = 2

RAW_SELECT = """
SELECT position, event_id, stream_id, stream_version, type, schema_version, time,
       data::text, source, subject, correlation_id, causation_id, traceparent
FROM events ORDER BY position
"""


async def load_events(db: Database, store: EventStore, count: int,
                      per_txn: int = LOAD_PER_TXN, writers: int = LOAD_WRITERS) -> None:
    """Append ``count`` events, ``per_txn`` per new stream and transaction, ``writers`` at once."""
    sizes = [min(per_txn, count - i) for i in range(0, count, per_txn)]
    queue: asyncio.Queue[int] = asyncio.Queue()
    for s in sizes:
        queue.put_nowait(s)

    async def writer() -> None:
        while not queue.empty():
            size = queue.get_nowait()
            sid = new_stream_id()
            envs = [envelope(sid, n) for n in range(size)]
            async with db.transaction() as tx:
                await store.append(tx, sid, 0, envs)

    await asyncio.gather(*(writer() for _ in range(writers)))


async def read_ours(db: Database, store: EventStore, page: int) -> int:
    total = 0
    cursor = START
    async with db.connect() as conn:
        while True:
            p = await store.read_all(conn, cursor, limit=page)
            if not p.events:
                return total
            total += len(p.events)
            cursor = p.cursor


async def read_raw(conn: asyncpg.Connection, page: int) -> int:
    loads = orjson.loads
    total = 0
    async with conn.transaction():
        async for row in conn.cursor(RAW_SELECT, prefetch=page):
            loads(row[7])
            total += 1
    return total


async def run(cfg: Config) -> list[Result]:
    n = cfg.read_events
    log(f"== read_all: {n:,} events, pages of {cfg.read_page}")
    await reset_db(cfg)
    db = Database(cfg.db_url, pool_size=LOAD_WRITERS)
    store = EventStore(make_registry(), dialect=db.dialect)
    with Timer() as t:
        await load_events(db, store, n)
    log(f"   loaded {n:,} events in {t.seconds:.1f} s ({n / t.seconds:,.0f} events/s)")
    await vacuum_analyze(cfg)
    raw = await asyncpg.connect(cfg.asyncpg_dsn)

    # untimed pass of each: caches, prepared statements, hint bits
    await read_ours(db, store, cfg.read_page)
    await read_raw(raw, cfg.read_page)

    # two alternating timed passes of each reader
    t_raw = t_ours = 0.0
    got_raw = got_ours = 0
    for r in range(ROUNDS):
        with Timer() as t:
            got_raw += await read_raw(raw, cfg.read_page)
        t_raw += t.seconds
        with maybe_profile(cfg, f"read_all_{r}"), Timer() as t:
            got_ours += await read_ours(db, store, cfg.read_page)
        t_ours += t.seconds
    await raw.close()
    await db.dispose()
    if got_raw != n * ROUNDS:
        raise RuntimeError(f"raw cursor read {got_raw} events, expected {n * ROUNDS}")
    check = None
    if got_ours != n * ROUNDS:
        check = f"read_all returned {got_ours:,} of {n * ROUNDS:,} events"
    ours_rate, raw_rate = got_ours / t_ours, got_raw / t_raw

    log("   eventsourcing select_notifications")
    datastore, recorder = await asyncio.to_thread(es_recorder.open_recorder, cfg, 1)
    await asyncio.to_thread(es_recorder.load, recorder, n)
    await vacuum_analyze(cfg)
    await asyncio.to_thread(es_recorder.read_all, recorder, cfg.read_page)  # untimed pass
    got_es, t_es = await asyncio.to_thread(es_recorder.read_all, recorder, cfg.read_page)
    datastore.close()
    if got_es != n:
        raise RuntimeError(f"eventsourcing read {got_es} events, expected {n}")
    es_rate = n / t_es

    return [
        Result("read-all decoded to envelopes: ours vs raw asyncpg cursor", ours_rate,
               "events/s", raw_rate, f"asyncpg cursor prefetch={cfg.read_page} + orjson",
               target_ratio=0.6, check_failed=check,
               notes=f"{n:,} events, {ROUNDS} alternating passes each; "
                     f"ours {t_ours:.2f} s, raw {t_raw:.2f} s"),
        Result("read-all: eventsourcing select_notifications + orjson (reference)", es_rate,
               "events/s", raw_rate, "asyncpg cursor + orjson", reference=True,
               notes=f"ours / eventsourcing = {ours_rate / es_rate:.2f}x"),
    ]

