"""Benchmark 7: the consumer with inbox and a trivial projection, against a bare consumer.

``consumer_events`` CloudEvents records (our small payload, keys over 1,000 account
streams with increasing stream versions) are published to a fresh 3-partition topic
before anything is timed. Then:

- ours: ``libs.events.consumer.Consumer`` with ``source`` = ``AIOKafkaConsumer(topic,
  group_id=<fresh>, enable_auto_commit=False, auto_offset_reset="earliest")``,
  ``handler`` = ``DocumentProjection.apply`` of a projection counting events per key,
  and a started ``AIOKafkaProducer`` as dead-letter producer, run until
  ``consumer.handled`` reaches the count (deadline ``BENCH_CONSUMER_DEADLINE`` s).
  Every batch (up to 500 records) is one database transaction: inbox lookup, projection
  load + upsert, inbox insert, commit; then the Kafka offset commit.
- baseline (reference): a bare ``AIOKafkaConsumer`` of another fresh group reading the
  same records with ``getmany(max_records=500)`` and committing offsets per batch, no
  decoding and no database.

The figure is measured from the moment the first batch is handled to the last one, so
the one-off group join is left out; the run's end-to-end rate including the join is
in the notes. A warm-up consumer (own topic and group) warms the database pool first.
"""

from __future__ import annotations

import asyncio
import os
import time

import orjson
from aiokafka import AIOKafkaConsumer
from sqlalchemy import text

from libs.events import (
    Consumer,
    Database,
    DocumentProjection,
    Envelope,
    dead_letter_topic,
    ensure_topics,
)
from libs.events.kafka_binding import to_kafka

from .common import (
    Config,
    Result,
    envelope,
    log,
    make_registry,
    maybe_profile,
    new_stream_id,
    reset_db,
    run_id,
    seed_history,
    start_producer,
)

KEYS = 1000
DEADLINE = float(os.environ.get("BENCH_CONSUMER_DEADLINE", "300"))


def count_events(doc: dict | None, event: Envelope) -> dict:
    return {"count": (doc or {}).get("count", 0) + 1}


async def publish(cfg: Config, producer, topic: str, count: int) -> None:
    """Publish ``count`` events as a producing service's relay would: validated, versioned."""
    registry = make_registry()
    streams = [new_stream_id() for _ in range(KEYS)]
    versions = dict.fromkeys(streams, 0)
    futs = []
    for n in range(count):
        sid = streams[n % KEYS]
        versions[sid] += 1
        env = registry.validate(envelope(sid, n)).with_stream_version(versions[sid], n + 1)
        key, value, headers = to_kafka(env)
        futs.append(await producer.send(topic, value=value, key=key, headers=headers))
    await asyncio.gather(*futs)


def source(cfg: Config, topic: str, group: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(topic, bootstrap_servers=cfg.kafka, group_id=group,
                            enable_auto_commit=False, auto_offset_reset="earliest")


async def wait_handled(consumer: Consumer, count: int, deadline: float) -> tuple[float, int, float]:
    """Poll ``consumer.handled``: (time of the first handled batch, events in it, end time)."""
    pc = time.perf_counter
    t_first, n_first = None, 0
    end_by = pc() + deadline
    while consumer.handled < count:
        if consumer.handled and t_first is None:
            t_first, n_first = pc(), consumer.handled
        if pc() > end_by:
            raise TimeoutError(f"consumer handled {consumer.handled} of {count} events "
                               f"within {deadline:.0f} s")
        await asyncio.sleep(0.002)
    t_end = pc()
    if t_first is None:  # everything arrived in one poll interval
        t_first, n_first = t_end, 0
    return t_first, n_first, t_end


async def run_ours(cfg: Config, db: Database, topic: str, group: str, count: int,
                   dlq) -> tuple[float, float, int]:
    """(steady-state seconds, end-to-end seconds, events counted by the steady-state clock)."""
    projection = DocumentProjection(f"counts-{group}", count_events)
    consumer = Consumer(
        name=group, db=db, registry=make_registry(), source=source(cfg, topic, group),
        handler=projection.apply, dead_letter_producer=dlq,
    )
    start = time.perf_counter()
    await consumer.start()
    try:
        t_first, n_first, t_end = await wait_handled(consumer, count, DEADLINE)
    finally:
        await consumer.stop()
    if consumer.dead_lettered:
        raise RuntimeError(f"{consumer.dead_lettered} events were dead-lettered")
    async with db.connect() as conn:
        total = sum(d["count"] for d in await _docs(conn, projection))
    if total != count:
        raise RuntimeError(f"projection counted {total} events, expected {count}")
    return t_end - t_first, t_end - start, count - n_first


_DOCS = text("SELECT doc FROM projection_documents WHERE projection = :p")


async def _docs(conn, projection: DocumentProjection) -> list[dict]:
    rows = await conn.fetch(_DOCS, {"p": projection.name})
    return [orjson.loads(r[0]) for r in rows]


async def run_bare(cfg: Config, topic: str, group: str, count: int) -> tuple[float, float, int]:
    consumer = source(cfg, topic, group)
    pc = time.perf_counter
    start = pc()
    await consumer.start()
    got = 0
    t_first, n_first = None, 0
    try:
        end_by = pc() + DEADLINE
        while got < count:
            batches = await consumer.getmany(timeout_ms=200, max_records=500)
            if not batches:
                if pc() > end_by:
                    raise TimeoutError(f"bare consumer got {got} of {count} records")
                continue
            got += sum(len(recs) for recs in batches.values())
            await consumer.commit({tp: recs[-1].offset + 1 for tp, recs in batches.items()})
            if t_first is None:
                t_first, n_first = pc(), got
        t_end = pc()
    finally:
        await consumer.stop()
    return t_end - t_first, t_end - start, count - n_first


async def run(cfg: Config) -> list[Result]:
    n = cfg.consumer_events
    log(f"== consumer: {n:,} events through Consumer + inbox + DocumentProjection")
    await reset_db(cfg)
    await seed_history(cfg)
    rid = run_id()
    topic, warm_topic = f"bench.consumer.{rid}", f"bench.consumer-warm.{rid}"
    groups = (f"bench-warm-{rid}", f"bench-consumer-{rid}")
    # the dead-letter topics too (the broker does not auto-create topics): should an event
    # fail, it is dead-lettered and reported instead of retried forever
    await ensure_topics(cfg.kafka, [topic, warm_topic, *(dead_letter_topic(g) for g in groups)],
                        partitions=3)
    producer = await start_producer(cfg)
    db = Database(cfg.db_url, pool_size=2)
    try:
        await publish(cfg, producer, topic, n)
        warm_n = max(cfg.warmup, 500)
        await publish(cfg, producer, warm_topic, warm_n)

        await run_ours(cfg, db, warm_topic, groups[0], warm_n, producer)
        with maybe_profile(cfg, "consumer"):
            t_ours, e2e_ours, n_ours = await run_ours(cfg, db, topic, groups[1], n, producer)
        t_bare, e2e_bare, n_bare = await run_bare(cfg, topic, f"bench-bare-{rid}", n)
    finally:
        await producer.stop()
        await db.dispose()

    ours_rate = n_ours / t_ours if t_ours else float("inf")
    bare_rate = n_bare / t_bare if t_bare else float("inf")
    return [
        Result("consumer + inbox + projection (events/s)", ours_rate, "events/s", bare_rate,
               "bare AIOKafkaConsumer, no DB", target_abs=10_000,
               notes=f"{n:,} events; end-to-end incl. group join: ours {n / e2e_ours:,.0f}/s "
                     f"({e2e_ours:.2f} s), bare {n / e2e_bare:,.0f}/s ({e2e_bare:.2f} s)"),
    ]
