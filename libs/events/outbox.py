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
import contextlib
import logging
import time
from typing import Protocol

from .checkpoints import load_checkpoint, save_checkpoint
from .db import Database
from .kafka_binding import to_kafka
from .store import EventStore

log = logging.getLogger(__name__)


class Producer(Protocol):
    """The part of ``aiokafka.AIOKafkaProducer`` the relay uses (the fake broker has it too)."""

    async def send(self, topic, value=None, key=None, partition=None, timestamp_ms=None,
                   headers=None): ...


class Relay:
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
    ) -> None:
        self.db = db
        self.store = store
        self.producer = producer
        self.topic = topic
        self.name = name or f"relay:{topic}"
        self.batch_size = batch_size
        self.idle_seconds = idle_seconds
        self.published = 0
        self.last_publish_lag_seconds = 0.0
        self._wake = asyncio.Event()
        self._stopping = False

    def nudge(self) -> None:
        """Tell the relay new events were committed, so it need not wait for its next poll."""
        self._wake.set()

    async def publish_pending(self) -> int:
        """Publish one page of events after the checkpoint; returns how many were published."""
        async with self.db.connect() as conn:
            cursor = await load_checkpoint(conn, self.name)
            # Payloads stay JSON text: published at their stored schema version, byte for
            # byte, without a decode/encode round trip (consumers upcast).
            page = await self.store.read_all(conn, cursor, limit=self.batch_size,
                                             upcast=False, decode_data=False)
        if not page.events:
            return 0
        send = self.producer.send
        topic = self.topic
        pending = []
        for env in page.events:
            key, value, headers = to_kafka(env)
            # send() only enqueues; awaiting the delivery futures together lets the
            # producer batch records while keeping their order within each partition.
            pending.append(await send(topic, value=value, key=key, headers=headers))
        await asyncio.gather(*pending)
        async with self.db.transaction() as tx:
            await save_checkpoint(tx, self.name, page.cursor)
        self.published += len(page.events)
        self.last_publish_lag_seconds = max(0.0, time.time() - page.events[-1].time.timestamp())
        return len(page.events)

    async def run(self) -> None:
        """Publish until :meth:`stop`; transient failures are logged and retried with backoff."""
        backoff = 0.1
        while not self._stopping:
            try:
                n = await self.publish_pending()
                backoff = 0.1
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("relay %s failed; retrying in %.1fs", self.name, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if n < self.batch_size:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.idle_seconds)

    def stop(self) -> None:
        """Finish the page in flight, then leave :meth:`run`."""
        self._stopping = True
        self._wake.set()
