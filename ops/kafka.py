"""Small Kafka look-ups of the tool: end offsets, committed offsets, a topic's records."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient


async def partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """The topic's partitions (none if the topic does not exist)."""
    if topic not in await consumer.topics():  # also refreshes the metadata
        return []
    parts = consumer.partitions_for_topic(topic)
    for _ in range(20):  # a topic just created: its partitions' metadata follow shortly
        if parts:
            break
        await asyncio.sleep(0.25)
        await consumer._client.force_metadata_update()
        parts = consumer.partitions_for_topic(topic)
    return [TopicPartition(topic, p) for p in sorted(parts or ())]


async def end_offsets(bootstrap: str, topics: list[str]) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [tp for t in topics for tp in await partitions(consumer, t)]
        return dict(await consumer.end_offsets(tps)) if tps else {}
    finally:
        await consumer.stop()


async def committed_offsets(bootstrap: str, group: str) -> dict[TopicPartition, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}


async def read_records(bootstrap: str, topic: str, *, until: dict[TopicPartition, int] | None
                       = None) -> list[Any]:
    """Every record of ``topic`` from the beginning up to ``until`` (default: the end)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                isolation_level="read_committed")
    await consumer.start()
    try:
        tps = await partitions(consumer, topic)
        if not tps:
            return []
        ends = dict(await consumer.end_offsets(tps))
        if until is not None:
            ends = {tp: min(ends[tp], until.get(tp, 0)) for tp in tps}
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        out: list[Any] = []
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
            for tp, records in batch.items():
                out += [r for r in records if r.offset < ends[tp]]
        return out
    finally:
        await consumer.stop()


def header(record: Any, name: str) -> str | None:
    for k, v in record.headers or ():
        if k == name:
            return v.decode() if isinstance(v, bytes) else v
    return None
