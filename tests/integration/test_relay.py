"""Outbox relay against the real broker, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import UTC, datetime

import pytest
from aiokafka.partitioner import DefaultPartitioner

from libs.events import Envelope, Relay, reset_checkpoint
from libs.events.kafka_binding import from_kafka, header_map
from tests.conftest import BACKENDS, eventually
from tests.integration.kafka_helpers import read_topic

T0 = datetime(2026, 3, 1, tzinfo=UTC)
pytestmark = pytest.mark.kafka


async def seed(db, store, streams: int, per_stream: int) -> list[Envelope]:
    out = []
    for s in range(streams):
        async with db.transaction() as tx:
            out += await store.append(tx, f"acc-{s}", 0, [
                Envelope.new(type="test.Noted", data={"n": i}, stream_id=f"acc-{s}",
                             source="tests", time=T0) for i in range(per_stream)])

    # a relay reads up to the gap-safe horizon, which a transaction open elsewhere on the
    # server (another database's, even) can hold back: hand the events over once they show
    async def visible() -> bool:
        async with db.connect() as conn:
            return len((await store.read_all(conn, limit=len(out))).events) >= len(out)

    await eventually(visible, timeout=15, what=f"{len(out)} seeded events readable")
    return out


async def drain(relay: Relay, expected: int) -> int:
    """Publish until ``expected`` events went out (polled: see the gap-safe horizon)."""
    total = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while total < expected and loop.time() < deadline:
        total += await relay.publish_pending()
    return total


class CrashingProducer:
    """Delivers ``allow`` records, then dies like a process killed mid-publish."""

    def __init__(self, real, allow: int) -> None:
        self.real, self.allow = real, allow

    async def send(self, topic, value=None, key=None, headers=None, **kw):
        if self.allow == 0:
            raise ConnectionError("relay process killed")
        self.allow -= 1
        return await self.real.send(topic, value=value, key=key, headers=headers, **kw)


@BACKENDS
async def test_relay_publishes_every_event_keyed_by_stream_in_version_order(
        db, store, kafka_bootstrap, topic, producer):
    stored = await seed(db, store, streams=5, per_stream=4)
    relay = Relay(db=db, store=store, producer=producer, topic=topic, batch_size=7)
    assert await drain(relay, 20) == 20
    records = await read_topic(kafka_bootstrap, topic, 20)
    assert len(records) == 20
    by_key = defaultdict(list)
    for r in records:
        env = from_kafka(r.key, r.value, r.headers)
        assert r.key.decode() == env.stream_id
        assert header_map(r.headers)["content-type"] == "application/json"
        by_key[env.stream_id].append((r.partition, env.stream_version))
    for versions in by_key.values():
        assert len({p for p, _ in versions}) == 1, "one stream, one partition"
        assert [v for _, v in versions] == [1, 2, 3, 4]
    assert {from_kafka(r.key, r.value, r.headers).id for r in records} == {e.id for e in stored}
    # the partition Kafka's own clients would choose for the key (murmur2): the relay picks
    # it once per stream and page, and keeps the mapping a plain producer has
    partitions = sorted(await producer.partitions_for(topic))
    assert len(partitions) == 3
    for r in records:
        assert r.partition == DefaultPartitioner()(r.key, partitions, partitions)
    assert len({r.partition for r in records}) > 1  # 5 streams spread over the partitions


@BACKENDS
async def test_relay_killed_between_commit_and_publish_delivers_after_restart(
        db, store, kafka_bootstrap, topic, producer):
    stored = await seed(db, store, streams=3, per_stream=5)
    dying = Relay(db=db, store=store, producer=CrashingProducer(producer, 4), topic=topic)
    with pytest.raises(ConnectionError):
        await dying.publish_pending()
    restarted = Relay(db=db, store=store, producer=producer, topic=topic)
    assert await drain(restarted, 15) == 15
    records = await read_topic(kafka_bootstrap, topic, 15)
    ids = [from_kafka(r.key, r.value, r.headers).id for r in records]
    assert set(ids) == {e.id for e in stored}, "nothing lost"
    assert len(ids) >= 15  # the 4 sent before the crash may come twice, with the same id


@BACKENDS
async def test_lost_checkpoint_republishes_duplicates_with_the_same_event_ids(
        db, store, kafka_bootstrap, topic, producer):
    stored = await seed(db, store, streams=2, per_stream=3)
    relay = Relay(db=db, store=store, producer=producer, topic=topic)
    await drain(relay, 6)
    async with db.transaction() as tx:  # the checkpoint write never happened
        await reset_checkpoint(tx, relay.name)
    assert await drain(relay, 6) == 6
    records = await read_topic(kafka_bootstrap, topic, 12)
    ids = [from_kafka(r.key, r.value, r.headers).id for r in records]
    assert len(ids) == 12 and set(ids) == {e.id for e in stored}
    assert all(ids.count(e.id) == 2 for e in stored)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_two_relays_of_one_service_publish_each_event_once(
        db, store, kafka_bootstrap, topic, producer):
    """Two worker processes of one service each run a relay: one publishes each page."""
    stored = await seed(db, store, streams=10, per_stream=30)
    relays = [Relay(db=db, store=store, producer=producer, topic=topic, batch_size=25)
              for _ in range(2)]

    async def run(relay: Relay) -> int:
        total, idle = 0, 0
        while idle < 20:  # until neither finds work for a while
            n = await relay.publish_pending()
            total, idle = total + n, (0 if n else idle + 1)
            await asyncio.sleep(0)
        return total

    counts = await asyncio.gather(*(run(r) for r in relays))
    assert sum(counts) == len(stored)
    records = await read_topic(kafka_bootstrap, topic, len(stored))
    ids = [from_kafka(r.key, r.value, r.headers).id for r in records]
    assert len(ids) == len(set(ids)) == len(stored), "no event published twice"
