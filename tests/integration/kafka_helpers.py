"""Helpers for tests against the real broker: fresh topics and reading a topic whole."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from libs.events import ensure_topics
from libs.runtime.kafka import make_producer


async def fresh_topic(bootstrap: str, prefix: str = "test") -> str:
    name = f"{prefix}.{uuid.uuid4().hex[:10]}.events"
    await ensure_topics(bootstrap, [name], partitions=3)
    return name


async def started_producer(bootstrap: str) -> AIOKafkaProducer:
    producer = make_producer(bootstrap, f"test-{uuid.uuid4().hex[:6]}")
    await producer.start()
    return producer


async def read_topic(bootstrap: str, topic: str, expect_at_least: int, timeout: float = 30):
    """Every record of ``topic`` from the beginning, once at least ``expect_at_least`` arrived
    and the end of every partition was reached."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        parts = await _partitions(consumer, topic)
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        records = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for recs in batch.values():
                records.extend(recs)
            if len(records) >= expect_at_least and not batch:
                ends = await consumer.end_offsets(parts)
                positions = [await consumer.position(tp) for tp in parts]
                if all(pos >= ends[tp] for pos, tp in zip(positions, parts, strict=True)):
                    return records
        raise AssertionError(f"{topic}: {len(records)} records, expected >= {expect_at_least}")
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    for _ in range(50):
        parts = consumer.partitions_for_topic(topic)
        if parts:
            return [TopicPartition(topic, p) for p in sorted(parts)]
        await consumer._client.force_metadata_update()  # new topic: metadata may lag
        await asyncio.sleep(0.1)
    raise AssertionError(f"no partitions for {topic}")
