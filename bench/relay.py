"""Benchmark 6: the outbox relay publishing stored events to Kafka, against a bare producer.

``relay_events`` events are appended to the store (500 per stream and transaction,
200 streams per 100,000 events, so keys spread over the 3 partitions). Then:

- ours: ``Relay(batch_size=1000)`` over an ``AIOKafkaProducer(acks="all",
  enable_idempotence=True)``, ``await relay.publish_pending()`` in a loop until every
  event is published to a fresh 3-partition topic. Each call reads a page after the
  checkpoint, sends it, awaits every delivery and saves the checkpoint (a commit).
- baseline: the same records, pre-encoded with ``kafka_binding.to_kafka`` before the
  clock starts, sent by a bare producer configured the same way to another fresh topic:
  ``send()`` every record, then await all the delivery futures.

The sides alternate in four rounds of a quarter of the events each (the relay runs until
it has published that many, rounded up to its page).

Both producers are started and warmed up (a few hundred records to a warm-up topic)
before timing; the relay's database pool is warmed by a one-page relay to that topic.
"""

from __future__ import annotations

import asyncio
import time

from libs.events import START, Database, EventStore, Relay, ensure_topics
from libs.events.kafka_binding import to_kafka

from .common import (
    Config,
    Result,
    log,
    make_registry,
    maybe_profile,
    reset_db,
    run_id,
    start_producer,
    topic_size,
    vacuum_analyze,
    warm_producer,
)
from .read_all import load_events

PER_STREAM = 500
ROUNDS = 4


async def read_stored(store: EventStore, conn, cursor):
    """A page of events as the relay reads them: payloads as stored, not upcast.

    The relay forwards the stored JSON text when the store can hand it out
    (``decode_data=False``); the baseline's records are then byte for byte the same.
    """
    try:
        return await store.read_all(conn, cursor, limit=5000, upcast=False, decode_data=False)
    except TypeError:  # a store without decode_data
        return await store.read_all(conn, cursor, limit=5000, upcast=False)


async def run(cfg: Config) -> list[Result]:
    n = cfg.relay_events
    log(f"== relay: {n:,} stored events to Kafka")
    await reset_db(cfg)
    db = Database(cfg.db_url, pool_size=4)
    store = EventStore(make_registry(), dialect=db.dialect)
    await load_events(db, store, n, per_txn=PER_STREAM)
    await vacuum_analyze(cfg)

    rid = run_id()
    topic, bare_topic, warm_topic = (f"bench.relay.{rid}", f"bench.relay-bare.{rid}",
                                     f"bench.warm.{rid}")
    await ensure_topics(cfg.kafka, [topic, bare_topic, warm_topic], partitions=3)

    # the baseline's records, encoded before its clock starts
    records = []
    cursor = START
    async with db.connect() as conn:
        while True:
            page = await read_stored(store, conn, cursor)
            if not page.events:
                break
            records.extend(to_kafka(e) for e in page.events)
            cursor = page.cursor
    if len(records) != n:
        raise RuntimeError(f"store holds {len(records)} events, expected {n}")

    bare = await start_producer(cfg)
    producer = await start_producer(cfg)
    try:
        await warm_producer(bare, warm_topic)
        await warm_producer(producer, warm_topic)
        await warm_producer(bare, bare_topic, 1)  # topic metadata of the timed topics
        await warm_producer(producer, topic, 1)
        warm = Relay(db=db, store=store, producer=producer, topic=warm_topic,
                     name=f"bench-warm-{rid}", batch_size=cfg.warmup)
        await warm.publish_pending()

        relay = Relay(db=db, store=store, producer=producer, topic=topic,
                      name=f"bench-relay-{rid}")
        # alternating rounds of a quarter of the events each, so that a busy moment of the
        # broker or the database does not land on one side only
        t_bare = t_relay = 0.0
        bounds = [n * i // ROUNDS for i in range(ROUNDS + 1)]
        for lo, hi in zip(bounds, bounds[1:], strict=False):
            start = time.perf_counter()
            send = bare.send
            futs = [await send(bare_topic, value=v, key=k, headers=h)
                    for k, v, h in records[lo:hi]]
            await asyncio.gather(*futs)
            t_bare += time.perf_counter() - start
            with maybe_profile(cfg, f"relay_{lo}"):
                start = time.perf_counter()
                while relay.published < hi:
                    if not await relay.publish_pending():
                        raise RuntimeError(f"relay stalled after {relay.published} events")
                t_relay += time.perf_counter() - start
    finally:
        await bare.stop()
        await producer.stop()
        await db.dispose()

    # one warm-up record was sent to each timed topic
    sizes = (await topic_size(cfg, topic) - 1, await topic_size(cfg, bare_topic) - 1)
    if sizes != (n, n):
        raise RuntimeError(f"topics hold {sizes} records, expected {n} each")
    ours_rate, bare_rate = relay.published / t_relay, n / t_bare
    return [
        Result("relay publish_pending to Kafka: ours vs bare producer", ours_rate, "events/s",
               bare_rate, "bare AIOKafkaProducer, pre-encoded", target_ratio=0.8,
               notes=f"{n:,} events, relay batch_size {relay.batch_size}; "
                     f"ours {t_relay:.2f} s, bare {t_bare:.2f} s; {ROUNDS} alternating rounds"),
    ]
