"""Benchmarks 1-4: appending events, ours against raw asyncpg and against ``eventsourcing``.

Three shapes, each on a freshly reset database:

- ``append_single``: one event per transaction, one connection. Writes go round-robin
  over 100 existing streams with correct expected versions, so every append after the
  first takes the optimistic-concurrency path (``EXISTS`` on the previous version).
- ``append_concurrent``: the same with 8 asyncio tasks on 8 connections, each task
  writing its own streams (eventsourcing: 4 and 8 threads).
- ``append_batch``: 100 events per transaction, each transaction a new stream.

Ours is ``async with db.transaction() as tx: await store.append(tx, stream, version, envs)``
(envelope built in the timed loop, since callers pay for it too). Raw is asyncpg
``async with conn.transaction(): await conn.execute(INSERT ...)`` (or ``executemany``)
into ``raw_events`` (bigserial id, stream id, version, type, jsonb data, timestamptz,
unique (stream id, version)). The sides alternate in rounds (two; six for the batch shape,
whose rounds are short) so that WAL checkpoints and table growth hit them alike.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import asyncpg
import orjson

from libs.events import Database, EventStore

from . import es_recorder
from .common import (
    RAW_INSERT,
    BenchEvent,
    Config,
    Result,
    create_raw_table,
    envelope,
    log,
    make_registry,
    maybe_profile,
    new_stream_id,
    payload,
    percentiles,
    reset_db,
    seed_history,
)

ROUNDS = 2
# A batch round is short (a second or so): with two rounds a WAL checkpoint or an autovacuum
# landing in one side's round decided the ratio (0.61x-0.91x over runs of the same code).
# Six shorter alternating rounds spread such moments over both sides.
BATCH_ROUNDS = 6
STREAMS_PER_WRITER = 100
TYPE = BenchEvent.event_type


class StreamSet:
    """Streams written round-robin, with the version each is at."""

    def __init__(self, count: int) -> None:
        self.ids = [new_stream_id() for _ in range(count)]
        self.version = dict.fromkeys(self.ids, 0)
        self.i = 0

    def take(self) -> tuple[str, int]:
        sid = self.ids[self.i % len(self.ids)]
        self.i += 1
        return sid, self.version[sid]


# -- one side of one shape -------------------------------------------------------------
class Ours:
    def __init__(self, cfg: Config, pool_size: int) -> None:
        self.db = Database(cfg.db_url, pool_size=pool_size)
        self.store = EventStore(make_registry(), dialect=self.db.dialect)

    async def one(self, streams: StreamSet, n: int) -> None:
        sid, v = streams.take()
        env = envelope(sid, n)
        async with self.db.transaction() as tx:
            await self.store.append(tx, sid, v, [env])
        streams.version[sid] = v + 1

    async def many(self, size: int) -> None:
        sid = new_stream_id()
        envs = [envelope(sid, n) for n in range(size)]
        async with self.db.transaction() as tx:
            await self.store.append(tx, sid, 0, envs)

    async def close(self) -> None:
        await self.db.dispose()


class Raw:
    def __init__(self, conns: list[asyncpg.Connection]) -> None:
        self.conns = conns

    @classmethod
    async def open(cls, cfg: Config, count: int) -> Raw:
        return cls([await asyncpg.connect(cfg.asyncpg_dsn) for _ in range(count)])

    async def one(self, streams: StreamSet, n: int, conn: asyncpg.Connection) -> None:
        sid, v = streams.take()
        data = orjson.dumps(payload(sid, n)).decode()
        async with conn.transaction():
            await conn.execute(RAW_INSERT, sid, v + 1, TYPE, data, datetime.now(UTC))
        streams.version[sid] = v + 1

    async def many(self, size: int, conn: asyncpg.Connection) -> None:
        sid = new_stream_id()
        now = datetime.now(UTC)
        rows = [
            (sid, n + 1, TYPE, orjson.dumps(payload(sid, n)).decode(), now) for n in range(size)
        ]
        async with conn.transaction():
            await conn.executemany(RAW_INSERT, rows)

    async def close(self) -> None:
        for c in self.conns:
            await c.close()


async def _loop(op, count: int, latencies: list[float]) -> None:
    pc = time.perf_counter
    for n in range(count):
        t = pc()
        await op(n)
        latencies.append(pc() - t)


async def _writers(make_op, writers: int, count: int, latencies: list[float]) -> float:
    """``count`` operations over ``writers`` tasks; ``make_op(w)`` gives task w's operation."""
    per = count // writers
    ops = [make_op(w) for w in range(writers)]
    start = time.perf_counter()
    await asyncio.gather(*(_loop(op, per, latencies) for op in ops))
    return time.perf_counter() - start


# -- shapes ----------------------------------------------------------------------------
async def bench_single(cfg: Config) -> list[Result]:
    log("== append_single: 1 event/transaction, 1 connection")
    await reset_db(cfg)
    await create_raw_table(cfg)
    await seed_history(cfg, raw=True)
    ours, raw = Ours(cfg, pool_size=1), await Raw.open(cfg, 1)
    ours_streams, raw_streams = StreamSet(STREAMS_PER_WRITER), StreamSet(STREAMS_PER_WRITER)
    conn = raw.conns[0]

    async def ours_op(n: int) -> None:
        await ours.one(ours_streams, n)

    async def raw_op(n: int) -> None:
        await raw.one(raw_streams, n, conn)

    lat_ours: list[float] = []
    lat_raw: list[float] = []
    await _loop(ours_op, cfg.warmup, [])
    await _loop(raw_op, cfg.warmup, [])
    t_ours = t_raw = 0.0
    per = cfg.single_txns // ROUNDS
    for r in range(ROUNDS):
        start = time.perf_counter()
        await _loop(raw_op, per, lat_raw)
        t_raw += time.perf_counter() - start
        with maybe_profile(cfg, f"append_single_{r}"):
            start = time.perf_counter()
            await _loop(ours_op, per, lat_ours)
            t_ours += time.perf_counter() - start
    await ours.close()
    await raw.close()
    n = per * ROUNDS
    ours_rate, raw_rate = n / t_ours, n / t_raw

    log("   eventsourcing PostgresApplicationRecorder, 1 thread")
    datastore, recorder = await asyncio.to_thread(es_recorder.open_recorder, cfg, 1)
    es_streams = es_recorder.Streams(STREAMS_PER_WRITER)
    lat_es: list[float] = []
    await asyncio.to_thread(es_recorder.single, recorder, cfg.warmup, [], es_streams)
    t_es = await asyncio.to_thread(es_recorder.single, recorder, n, lat_es, es_streams)
    datastore.close()
    es_rate = n / t_es

    return [
        Result("append 1 event/txn, 1 conn: ours vs raw asyncpg", ours_rate, "events/s",
               raw_rate, "raw asyncpg INSERT", target_ratio=0.8,
               ours_latency=percentiles(lat_ours), baseline_latency=percentiles(lat_raw)),
        Result("append 1 event/txn, 1 conn: ours vs eventsourcing", ours_rate, "events/s",
               es_rate, "eventsourcing insert_events", target_ratio=2.0,
               ours_latency=percentiles(lat_ours), baseline_latency=percentiles(lat_es)),
    ]


async def bench_concurrent(cfg: Config) -> list[Result]:
    w = cfg.writers
    log(f"== append_concurrent: 1 event/transaction, {w} writers on {w} connections")
    await reset_db(cfg)
    await create_raw_table(cfg)
    await seed_history(cfg, raw=True)
    ours, raw = Ours(cfg, pool_size=w), await Raw.open(cfg, w)
    ours_sets = [StreamSet(STREAMS_PER_WRITER) for _ in range(w)]
    raw_sets = [StreamSet(STREAMS_PER_WRITER) for _ in range(w)]

    def ours_op(i: int):
        async def op(n: int) -> None:
            await ours.one(ours_sets[i], n)
        return op

    def raw_op(i: int):
        async def op(n: int) -> None:
            await raw.one(raw_sets[i], n, raw.conns[i])
        return op

    lat_ours: list[float] = []
    lat_raw: list[float] = []
    await _writers(ours_op, w, cfg.warmup, [])
    await _writers(raw_op, w, cfg.warmup, [])
    t_ours = t_raw = 0.0
    per = cfg.concurrent_txns // ROUNDS // w * w
    for r in range(ROUNDS):
        t_raw += await _writers(raw_op, w, per, lat_raw)
        with maybe_profile(cfg, f"append_concurrent_{r}"):
            t_ours += await _writers(ours_op, w, per, lat_ours)
    await ours.close()
    await raw.close()
    n = per * ROUNDS
    ours_rate, raw_rate = n / t_ours, n / t_raw

    es_rates: dict[int, float] = {}
    es_lat: dict[int, list[float]] = {}
    for threads in cfg.es_threads:
        log(f"   eventsourcing PostgresApplicationRecorder, {threads} threads")
        datastore, recorder = await asyncio.to_thread(es_recorder.open_recorder, cfg, threads)
        await asyncio.to_thread(es_recorder.concurrent, recorder, threads, cfg.warmup, [])
        lat: list[float] = []
        secs = await asyncio.to_thread(es_recorder.concurrent, recorder, threads, n, lat)
        datastore.close()
        es_rates[threads] = (n // threads * threads) / secs
        es_lat[threads] = lat
    best = max(es_rates, key=es_rates.get)
    others = ", ".join(f"{t} threads {r:,.0f}/s" for t, r in es_rates.items())

    return [
        Result(f"append 1 event/txn, {w} writers: ours vs raw asyncpg", ours_rate, "events/s",
               raw_rate, f"raw asyncpg INSERT, {w} conns", target_ratio=0.7,
               ours_latency=percentiles(lat_ours), baseline_latency=percentiles(lat_raw)),
        Result(f"append 1 event/txn, {w} writers: ours vs eventsourcing", ours_rate,
               "events/s", es_rates[best], f"eventsourcing, best of threads: {best}",
               target_ratio=2.0, ours_latency=percentiles(lat_ours),
               baseline_latency=percentiles(es_lat[best]), notes=f"eventsourcing: {others}"),
    ]


async def bench_batch(cfg: Config) -> list[Result]:
    size = cfg.batch_size
    log(f"== append_batch: {size} events/transaction (one new stream each), 1 connection")
    await reset_db(cfg)
    await create_raw_table(cfg)
    await seed_history(cfg, raw=True)
    ours, raw = Ours(cfg, pool_size=1), await Raw.open(cfg, 1)
    conn = raw.conns[0]

    async def ours_op(n: int) -> None:
        await ours.many(size)

    async def raw_op(n: int) -> None:
        await raw.many(size, conn)

    warm = max(5, cfg.warmup // 20)
    await _loop(ours_op, warm, [])
    await _loop(raw_op, warm, [])
    lat_ours: list[float] = []
    lat_raw: list[float] = []
    t_ours = t_raw = 0.0
    per = cfg.batch_txns // BATCH_ROUNDS
    for r in range(BATCH_ROUNDS):
        start = time.perf_counter()
        await _loop(raw_op, per, lat_raw)
        t_raw += time.perf_counter() - start
        with maybe_profile(cfg, f"append_batch_{r}"):
            start = time.perf_counter()
            await _loop(ours_op, per, lat_ours)
            t_ours += time.perf_counter() - start
    await ours.close()
    await raw.close()
    txns = per * BATCH_ROUNDS
    ours_rate, raw_rate = txns * size / t_ours, txns * size / t_raw

    log("   eventsourcing PostgresApplicationRecorder, 1 thread")
    datastore, recorder = await asyncio.to_thread(es_recorder.open_recorder, cfg, 1)
    await asyncio.to_thread(es_recorder.batch, recorder, warm, size, [])
    lat_es: list[float] = []
    t_es = await asyncio.to_thread(es_recorder.batch, recorder, txns, size, lat_es)
    datastore.close()
    es_rate = txns * size / t_es

    return [
        Result(f"append {size} events/txn: ours vs raw asyncpg", ours_rate, "events/s",
               raw_rate, "raw asyncpg executemany", target_ratio=0.8,
               ours_latency=percentiles(lat_ours), baseline_latency=percentiles(lat_raw)),
        Result(f"append {size} events/txn: ours vs eventsourcing", ours_rate, "events/s",
               es_rate, "eventsourcing insert_events", target_ratio=2.0,
               ours_latency=percentiles(lat_ours), baseline_latency=percentiles(lat_es)),
    ]
