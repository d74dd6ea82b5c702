"""Kill a relay or a consumer process with SIGKILL mid-stream: nothing lost, nothing twice."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from libs.events import DocumentProjection, Envelope
from libs.events.kafka_binding import from_kafka
from tests.conftest import ROOT, eventually
from tests.integration.kafka_helpers import fresh_topic, read_topic, started_producer
from tests.integration.test_consumer import publish

pytestmark = pytest.mark.kafka
T0 = datetime(2026, 3, 1, tzinfo=UTC)


async def spawn(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.fault.workers", *args, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)


PER_STREAM = 400


async def kill(proc: asyncio.subprocess.Process) -> None:
    proc.send_signal(signal.SIGKILL)
    await proc.wait()


async def topic_size(bootstrap: str, topic: str) -> int:
    from aiokafka import AIOKafkaConsumer, TopicPartition
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await c.start()
    try:
        parts = [TopicPartition(topic, p) for p in range(3)]
        return sum((await c.end_offsets(parts)).values())
    finally:
        await c.stop()


async def test_relay_killed_mid_stream_loses_nothing(database_url, db, store, kafka_bootstrap):
    topic = await fresh_topic(kafka_bootstrap, "fault")
    stored = []
    # Large enough that the kill lands mid-stream even when the relay runs at full speed.
    for s in range(20):
        async with db.transaction() as tx:
            stored += await store.append(tx, f"acc-{s}", 0, [
                Envelope.new(type="test.Noted", data={"n": i}, stream_id=f"acc-{s}",
                             source="tests", time=T0) for i in range(PER_STREAM)])
    first = await spawn("relay", database_url, topic)
    await eventually(lambda: _more_than(topic_size(kafka_bootstrap, topic), 100), timeout=60,
                     what="the relay to publish part of the log")
    await kill(first)
    published_before = await topic_size(kafka_bootstrap, topic)
    assert published_before < len(stored), "the kill must land mid-stream"

    second = await spawn("relay", database_url, topic)
    wanted = {e.id for e in stored}
    seen: dict[str, list] = {}

    async def everything_published() -> bool:
        # Count distinct ids, not records: the restart republishes from its checkpoint,
        # so the topic can hold as many records as the log while some are still missing.
        try:
            records = await read_topic(kafka_bootstrap, topic, published_before, timeout=10)
        except AssertionError:
            return False  # the relay is still publishing: the topic's end kept moving
        seen["envs"] = [from_kafka(r.key, r.value, r.headers) for r in records]
        return wanted <= {e.id for e in seen["envs"]}

    try:
        await eventually(everything_published, timeout=120, interval=0.5,
                         what="the restarted relay to publish the rest")
    finally:
        await kill(second)
    envs = seen["envs"]
    assert {e.id for e in envs} == wanted, "nothing lost, nothing foreign"
    for s in range(20):  # per stream, the first delivery of each version is in order
        versions = [e.stream_version for e in envs if e.stream_id == f"acc-{s}"]
        firsts = list(dict.fromkeys(versions))
        assert firsts == list(range(1, PER_STREAM + 1))


async def test_consumer_killed_mid_stream_applies_each_event_once(db, database_url,
                                                                  kafka_bootstrap):
    topic = await fresh_topic(kafka_bootstrap, "fault")
    group = f"fault-{os.getpid()}-{id(db)}"
    producer = await started_producer(kafka_bootstrap)
    try:
        events = [Envelope.new(type="test.Noted", data={"n": n}, stream_id=f"acc-{k}",
                               source="tests", time=T0, schema_version=1)
                  for k in range(10) for n in range(60)]
        await publish(producer, topic, events)
    finally:
        await producer.stop()

    async def handled() -> int:
        async with db.connect() as conn:
            return await conn.fetchval(text("SELECT COUNT(*) FROM inbox WHERE consumer = :g"),
                                       {"g": group})

    first = await spawn("consumer", database_url, topic, group)
    await eventually(lambda: _more_than(handled(), 60), timeout=60, what="some events handled")
    await kill(first)
    assert await handled() < len(events), "the kill must land mid-stream"

    second = await spawn("consumer", database_url, topic, group)
    try:
        await eventually(lambda: _more_than(handled(), len(events) - 1), timeout=120,
                         what="the restarted consumer to handle the rest")
    finally:
        await kill(second)
    projection = DocumentProjection("tally", lambda d, e: d)
    async with db.connect() as conn:
        for k in range(10):
            doc = await projection.get(conn, f"acc-{k}")
            assert doc["count"] == 60 and sorted(doc["ns"]) == list(range(60)), \
                "each event applied exactly once"


async def _more_than(value, n: int) -> bool:
    return await value > n
