"""Consumer with inbox, retries and dead letters, against the real broker, on both backends."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from libs.events import (
    Consumer,
    DocumentProjection,
    Envelope,
    each,
    ensure_topics,
    list_dead_letters,
    redrive,
)
from libs.events.kafka_binding import header_map, to_kafka
from libs.runtime.kafka import make_consumer
from tests.conftest import BACKENDS, eventually, registry
from tests.integration.kafka_helpers import read_topic

T0 = datetime(2026, 3, 1, tzinfo=UTC)
pytestmark = pytest.mark.kafka


def count(doc, event):
    doc = doc or {"count": 0, "ns": []}
    return {"count": doc["count"] + 1, "ns": doc["ns"] + [event.data["n"]]}


def noted(key: str, n: int, type_: str = "test.Noted") -> Envelope:
    return Envelope.new(type=type_, data={"n": n}, stream_id=key, source="tests",
                        time=T0, schema_version=1).with_stream_version(n + 1)


async def publish(producer, topic: str, events: list[Envelope]) -> None:
    futures = []
    for e in events:
        key, value, headers = to_kafka(e)
        futures.append(await producer.send(topic, value=value, key=key, headers=headers))
    await asyncio.gather(*futures)


class ProcessKilled(Exception):
    """Stands for the process dying: nothing after the raise point runs."""


class CountingSource:
    """The real aiokafka consumer, counting the records it delivers."""

    def __init__(self, real) -> None:
        self.real, self.delivered, self.commits = real, 0, 0

    async def start(self):
        await self.real.start()

    async def stop(self):
        await self.real.stop()

    async def commit(self, offsets=None):
        await self.real.commit(offsets)
        self.commits += 1

    def seek(self, tp, offset):
        self.real.seek(tp, offset)

    async def getmany(self, *partitions, timeout_ms=0, max_records=None):
        got = await self.real.getmany(*partitions, timeout_ms=timeout_ms, max_records=max_records)
        self.delivered += sum(len(v) for v in got.values())
        return got


def consumer_for(db, bootstrap, topic, name, handler, producer, **kw) -> Consumer:
    return Consumer(name=name, db=db, registry=registry,
                    source=CountingSource(make_consumer(bootstrap, name, [topic])),
                    handler=handler, dead_letter_producer=producer, **kw)


async def inbox_size(db, name) -> int:
    async with db.connect() as conn:
        return await conn.fetchval(text("SELECT COUNT(*) FROM inbox WHERE consumer = :c"),
                                   {"c": name})


@BACKENDS
async def test_killed_after_db_commit_before_offset_commit_is_redelivered_and_applied_once(
        db, kafka_bootstrap, topic, producer):
    name = f"it-{uuid.uuid4().hex[:8]}"
    projection = DocumentProjection(f"{name}-counts", count)
    events = [noted(f"acc-{k}", n) for k in range(4) for n in range(5)]
    await publish(producer, topic, events)

    async def crash(_handled):
        raise ProcessKilled("killed between database commit and offset commit")

    first = consumer_for(db, kafka_bootstrap, topic, name, projection.apply, producer,
                         after_db_commit=crash)
    await first.start()
    await eventually(lambda: _async(first.handled > 0), what="first batch committed")
    await first.stop()  # the run loop died: no offset was committed

    second = consumer_for(db, kafka_bootstrap, topic, name, projection.apply, producer)
    await second.start()
    try:
        await eventually(lambda: _async(second.source.delivered >= first.source.delivered
                                        and second.source.commits > 0),
                         what="the uncommitted batch redelivered and committed")
        assert first.handled + second.handled == 20
        assert await inbox_size(db, name) == 20
    finally:
        await second.stop()
    async with db.connect() as conn:
        for k in range(4):
            doc = await projection.get(conn, f"acc-{k}")
            assert doc == {"count": 5, "ns": [0, 1, 2, 3, 4]}, "each event applied exactly once"


@BACKENDS
async def test_poison_event_is_dead_lettered_after_n_tries_and_other_events_keep_flowing(
        db, kafka_bootstrap, topic, producer):
    name = f"it-{uuid.uuid4().hex[:8]}"
    dlq = f"{name}.deadletter"
    await ensure_topics(kafka_bootstrap, [dlq])
    projection = DocumentProjection(f"{name}-counts", count)
    attempts: dict[str, int] = {}
    healed = False

    async def handler(conn, event):
        if event.data["n"] == 13 and not healed:
            attempts[event.id] = attempts.get(event.id, 0) + 1
            raise RuntimeError("cannot handle 13")
        await projection.apply(conn, [event])

    poison = noted("acc-bad", 13)
    unknown = noted("acc-odd", 0, type_="test.NobodyKnowsMe")
    events = [noted("acc-bad", 0), poison, unknown] + [noted(f"acc-{k}", n)
                                                       for k in range(3) for n in range(4)]
    await publish(producer, topic, events)
    consumer = consumer_for(db, kafka_bootstrap, topic, name, each(handler), producer,
                            max_attempts=3, backoff_seconds=0.01)
    await consumer.start()
    try:
        await eventually(lambda: _async(consumer.handled == 13 and consumer.dead_lettered == 2),
                         what="13 handled and 2 dead letters")
    finally:
        await consumer.stop()
    assert attempts == {poison.id: 3}
    letters = await list_dead_letters(db, name)
    by_id = {d.event_id: d for d in letters}
    assert set(by_id) == {poison.id, unknown.id}
    assert by_id[poison.id].attempts == 3 and "cannot handle 13" in by_id[poison.id].error
    assert by_id[unknown.id].attempts == 1, "an unknown type is not retried"
    assert "NobodyKnowsMe" in by_id[unknown.id].error
    async with db.connect() as conn:
        assert (await projection.get(conn, "acc-2"))["count"] == 4
        assert (await projection.get(conn, "acc-bad"))["ns"] == [0]

    records = await read_topic(kafka_bootstrap, dlq, 2)
    headers = {header_map(r.headers)["ce_id"]: header_map(r.headers) for r in records}
    assert headers[poison.id]["ce_type"] == "test.Noted"  # the original headers travel along
    assert "cannot handle 13" in headers[poison.id]["deadletter_error"]
    assert headers[poison.id]["deadletter_topic"] == topic

    healed = True
    await redrive(db, registry, name, by_id[poison.id].id, each(handler))
    async with db.connect() as conn:
        assert (await projection.get(conn, "acc-bad"))["ns"] == [0, 13]
    assert [d.event_id for d in await list_dead_letters(db, name)] == [unknown.id]


@BACKENDS
async def test_graceful_shutdown_finishes_the_event_in_flight(db, kafka_bootstrap, topic,
                                                             producer):
    name = f"it-{uuid.uuid4().hex[:8]}"
    projection = DocumentProjection(f"{name}-counts", count)
    started = asyncio.Event()

    async def slow(conn, events):
        started.set()
        await asyncio.sleep(0.5)
        await projection.apply(conn, events)

    await publish(producer, topic, [noted("acc-1", 0)])
    consumer = consumer_for(db, kafka_bootstrap, topic, name, slow, producer)
    await consumer.start()
    await asyncio.wait_for(started.wait(), 30)
    await consumer.stop()  # asked to stop mid-handler
    assert consumer.handled == 1
    assert await inbox_size(db, name) == 1

    # Its offset was committed too: a new member of the group gets nothing again.
    again = consumer_for(db, kafka_bootstrap, topic, name, slow, producer)
    await publish(producer, topic, [noted("acc-1", 1)])
    await again.start()
    try:
        await eventually(lambda: _async(again.handled == 1), what="the new event")
        assert again.source.delivered == 1
    finally:
        await again.stop()


async def _async(value: bool) -> bool:
    return value

