"""Transactional outbox and relay: the event table is the outbox.

An event reaches the outbox in the same transaction that decides it, because the
outbox *is* the events table: there is no second copy to keep in step
(docs/decisions/0004-event-table-as-outbox.md). The :class:`Relay` tails the global
log after its checkpoint, publishes each event to ``<service>.events`` with key =
stream id (so one stream stays in one partition, in order), waits for ``acks=all``,
and only then advances its checkpoint. A crash between commit and publish loses
nothing (the events are still after the checkpoint); a crash between publish and
checkpoint publishes them again, with the same CloudEvents id, which consumers'
inboxes absorb.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Protocol

from aiokafka.partitioner import DefaultPartitioner

from .checkpoints import hold_checkpoint, load_checkpoint, save_checkpoint
from .db import Database
from .kafka_binding import to_kafka
from .store import EventStore
from .tailer import IDLE_MAX_SECONDS, LINGER_SECONDS, LogTailer

# The partition of a key is the one the producer would choose itself (murmur2 of the key,
# as Kafka's Java clients do): the relay only hashes each stream's key once per page
# instead of once per event, and passes the partition along.
_PARTITIONER = DefaultPartitioner()


class Producer(Protocol):
    """The part of ``aiokafka.AIOKafkaProducer`` the relay uses (the fake broker has it too)."""

    async def send(self, topic, value=None, key=None, partition=None, timestamp_ms=None,
                   headers=None): ...


class Relay(LogTailer):
    """Publishes a service's events from its store to its Kafka topic, at least once, in order."""

    def __init__(
        self,
        *,
        db: Database,
        store: EventStore,
        producer: Producer,
        topic: str,
        name: str | None = None,
        batch_size: int = 1000,
        idle_seconds: float = 0.05,
        idle_max_seconds: float = IDLE_MAX_SECONDS,
        linger_seconds: float = LINGER_SECONDS,
        observe_publish: Callable[[float, int], None] | None = None,
        page_context: Callable[[list], AbstractContextManager] | None = None,
    ) -> None:
        super().__init__(name=name or f"relay:{topic}", batch_size=batch_size,
                         idle_seconds=idle_seconds, idle_max_seconds=idle_max_seconds,
                         linger_seconds=linger_seconds)
        self.db = db
        self.store = store
        self.producer = producer
        self.topic = topic
        self.published = 0
        self.last_publish_lag_seconds = 0.0
        # Instrumentation: (seconds, events) of each page published until its acks, and a
        # context entered around it (a publish span linked to the events' traces).
        self.observe_publish = observe_publish
        self.page_context = page_context

    async def publish_pending(self) -> int:
        """Publish one page of events after the checkpoint; returns how many were published."""
        if not self.db.is_postgres:
            async with self.db.connect() as conn:
                page = await self._page(conn)
            if page.events:
                await self._publish(page)
                async with self.db.transaction() as tx:
                    await save_checkpoint(tx, self.name, page.cursor)
            return self._published(page)
        # One worker publishes a page at a time (see hold_checkpoint): the lock lives for
        # the transaction, which writes nothing until the checkpoint at its very end, so it
        # holds back no reader's horizon while it waits for the broker's acks.
        async with self.db.transaction() as tx:
            if not await hold_checkpoint(tx, self.name):
                return 0
            page = await self._page(tx)
            if page.events:
                await self._publish(page)
                await save_checkpoint(tx, self.name, page.cursor)
        return self._published(page)

    async def _page(self, conn):
        cursor = await load_checkpoint(conn, self.name)
        # Payloads stay JSON text: published at their stored schema version, byte for
        # byte, without a decode/encode round trip (consumers upcast).
        return await self.store.read_all(conn, cursor, limit=self.batch_size,
                                         upcast=False, decode_data=False)

    async def _publish(self, page) -> None:
        started = time.perf_counter()
        if self.page_context is None:
            await self._send(page)
        else:
            with self.page_context(page.events):
                await self._send(page)
        if self.observe_publish is not None:
            self.observe_publish(time.perf_counter() - started, len(page.events))

    async def _send(self, page) -> None:
        send = self.producer.send
        topic = self.topic
        partitions = await self._partitions()
        chosen: dict[bytes, int] = {}  # a stream's events come together: hash its key once
        pending = []
        for env in page.events:
            key, value, headers = to_kafka(env)
            partition = None
            if partitions:
                partition = chosen.get(key)
                if partition is None:
                    partition = chosen[key] = _PARTITIONER(key, partitions, partitions)
            # send() only enqueues; awaiting the delivery futures together lets the
            # producer batch records while keeping their order within each partition.
            pending.append(await send(topic, value=value, key=key, headers=headers,
                                      partition=partition))
        await asyncio.gather(*pending)

    async def _partitions(self) -> list[int] | None:
        """The topic's partitions, sorted, as the producer's own partitioner takes them
        (None for a producer that does not say: it partitions each record itself)."""
        partitions_for = getattr(self.producer, "partitions_for", None)
        if partitions_for is None:
            return None
        return sorted(await partitions_for(self.topic))

    def _published(self, page) -> int:
        if not page.events:
            return 0
        self.published += len(page.events)
        self.last_publish_lag_seconds = max(0.0, time.time() - page.events[-1].time.timestamp())
        return len(page.events)

    step = publish_pending
