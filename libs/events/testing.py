"""Test fakes for unit tests of pure logic: an in-memory event store and a fake broker.

They keep the contracts of the real parts (expected-version conflicts, per-key order,
committed offsets per consumer group) without any I/O. Integration and end-to-end
tests use the real PostgreSQL/SQLite store and the real Kafka broker instead.
"""

from __future__ import annotations

import asyncio
import zlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .envelope import Envelope
from .errors import ConcurrencyError
from .registry import EventRegistry
from .store import START, LogCursor, LogPage


class InMemoryEventStore:
    """The :class:`libs.events.store.EventStore` API over a list; ``conn`` is ignored."""

    def __init__(self, registry: EventRegistry) -> None:
        self.registry = registry
        self.events: list[Envelope] = []
        self._versions: dict[str, int] = defaultdict(int)

    async def append(self, conn: Any, stream_id: str, expected_version: int,
                     events: Sequence[Envelope]) -> list[Envelope]:
        if self._versions[stream_id] != expected_version:
            raise ConcurrencyError(stream_id, expected_version,
                                   f"stream is at version {self._versions[stream_id]}")
        stored = []
        for i, e in enumerate(events, start=expected_version + 1):
            e = self.registry.validate(e).with_stream_version(i, len(self.events) + 1)
            self.events.append(e)
            stored.append(e)
        self._versions[stream_id] = expected_version + len(stored)
        return stored

    async def stream_version(self, conn: Any, stream_id: str) -> int:
        return self._versions[stream_id]

    async def read_stream(self, conn: Any, stream_id: str, *, after_version: int = 0,
                          as_of: datetime | None = None, limit: int | None = None
                          ) -> list[Envelope]:
        found = [
            self.registry.upcast(e) for e in self.events
            if e.stream_id == stream_id and e.stream_version > after_version
            and (as_of is None or e.time <= as_of)
        ]
        return found if limit is None else found[:limit]

    async def read_all(self, conn: Any, after: LogCursor = START, *, limit: int = 1000,
                       upcast: bool = True) -> LogPage:
        page = self.events[after.position: after.position + limit]
        if upcast:
            page = [self.registry.upcast(e) for e in page]
        return LogPage(page, LogCursor(0, after.position + len(page)) if page else after)


@dataclass(frozen=True)
class FakeRecord:
    """Shaped like ``aiokafka.structs.ConsumerRecord`` where the kernel reads it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


@dataclass(frozen=True)
class FakeTopicPartition:
    topic: str
    partition: int


@dataclass
class FakeBroker:
    """Topics as lists of records, partitioned by key like Kafka's default partitioner."""

    partitions: int = 3
    logs: dict[FakeTopicPartition, list[FakeRecord]] = field(
        default_factory=lambda: defaultdict(list))
    committed: dict[tuple[str, FakeTopicPartition], int] = field(default_factory=dict)

    def producer(self) -> FakeProducer:
        return FakeProducer(self)

    def consumer(self, group: str, *topics: str) -> FakeConsumer:
        return FakeConsumer(self, group, topics)

    def records(self, topic: str) -> list[FakeRecord]:
        return [r for tp, recs in sorted(self.logs.items(), key=lambda kv: kv[0].partition)
                if tp.topic == topic for r in recs]

    def _append(self, topic: str, key: bytes | None, value: bytes | None, headers) -> FakeRecord:
        part = zlib.crc32(key) % self.partitions if key else 0
        tp = FakeTopicPartition(topic, part)
        rec = FakeRecord(topic, part, len(self.logs[tp]), key, value, list(headers or ()))
        self.logs[tp].append(rec)
        return rec


class FakeProducer:
    def __init__(self, broker: FakeBroker) -> None:
        self.broker = broker

    async def start(self) -> None: ...
    async def stop(self) -> None: ...

    async def send(self, topic, value=None, key=None, partition=None, timestamp_ms=None,
                   headers=None) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(self.broker._append(topic, key, value, headers))
        return fut


class FakeConsumer:
    def __init__(self, broker: FakeBroker, group: str, topics: Sequence[str]) -> None:
        self.broker, self.group, self.topics = broker, group, tuple(topics)
        self._position: dict[FakeTopicPartition, int] = {}

    async def start(self) -> None:
        for tp in [tp for tp in self.broker.logs if tp.topic in self.topics]:
            self._position[tp] = self.broker.committed.get((self.group, tp), 0)

    async def stop(self) -> None: ...

    async def getmany(self, *partitions, timeout_ms: int = 0, max_records: int | None = None):
        out: dict[FakeTopicPartition, list[FakeRecord]] = {}
        budget = max_records or 10**9
        for tp, recs in self.broker.logs.items():
            if tp.topic not in self.topics or budget <= 0:
                continue
            start = self._position.get(tp, self.broker.committed.get((self.group, tp), 0))
            batch = recs[start:start + budget]
            if batch:
                out[tp] = batch
                self._position[tp] = start + len(batch)
                budget -= len(batch)
        if not out:
            await asyncio.sleep(timeout_ms / 1000)
        return out

    async def commit(self, offsets=None) -> None:
        for tp, offset in (offsets or {}).items():
            self.broker.committed[(self.group, tp)] = offset

    def seek(self, partition: FakeTopicPartition, offset: int) -> None:
        self._position[partition] = offset
