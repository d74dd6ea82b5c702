"""Kafka consumer with inbox, bounded retries and dead letters.

The loop takes a batch of records from the consumer group, handles the events in
one database transaction together with their inbox records, commits that
transaction, and only then commits the Kafka offsets (acknowledging first would be
at-most-once). A crash anywhere before the offset commit means redelivery, which
the inbox turns into a no-op.

When a batch fails, its events are retried one at a time, each in its own
transaction, with exponential backoff. An event that still fails after
``max_attempts`` (or can never succeed: undecodable, a header that is not UTF-8,
unknown type or schema version, a type that does not belong to the topic it came
from, a payload its contract rejects) goes to the dead-letter topic with its original headers
plus the error, and into the ``dead_letters`` table, with its id in the inbox; then the
consumer moves on, so later events, of other keys or the same, keep flowing. A dead
letter redelivered after a crash finds its inbox record (or, without an event id, its
``dead_letters`` row) and is skipped: no record can end the consumer's task.
:func:`libs.events.redrive` hands a dead letter back to the handler once its cause is fixed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import asyncpg
import orjson
from aiokafka.errors import KafkaError
from sqlalchemy import text
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError

from .db import Database, Tx
from .envelope import Envelope
from .errors import EventKernelError, InvalidEventError, UnknownEventTypeError
from .inbox import claim
from .kafka_binding import event_type_of, from_kafka
from .registry import EventRegistry
from .topics import belongs_to_topic

log = logging.getLogger(__name__)

BatchHandler = Callable[[Tx, list[Envelope]], Awaitable[None]]
EventHandler = Callable[[Tx, Envelope], Awaitable[None]]

# Errors that no retry can cure: the record goes straight to the dead letters.
PERMANENT_ERRORS: tuple[type[Exception], ...] = (InvalidEventError, UnknownEventTypeError)

# Errors of the infrastructure, not of the event: dead-lettering would park healthy events
# while the database or broker is away. The batch is rolled back, the consumer seeks back
# to it and tries again after a pause, for as long as it takes.
INFRASTRUCTURE_ERRORS: tuple[type[Exception], ...] = (
    OperationalError, InterfaceError, DisconnectionError, ConnectionError, TimeoutError,
    OSError, KafkaError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
)


def each(handler: EventHandler) -> BatchHandler:
    """Adapt a one-event handler to the batch interface (events handled in order)."""

    async def handle(conn: Tx, events: list[Envelope]) -> None:
        for event in events:
            await handler(conn, event)

    return handle


class KafkaSource(Protocol):
    """What the consumer needs of ``aiokafka.AIOKafkaConsumer`` (the fake broker has it too)."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def getmany(self, *partitions, timeout_ms: int = 0, max_records: int | None = None): ...
    async def commit(self, offsets=None) -> None: ...
    def seek(self, partition, offset: int) -> None: ...


@dataclass
class _Item:
    record: Any
    event: Envelope | None = None
    error: Exception | None = None


_DEAD_LETTER = text(
    """
    INSERT INTO dead_letters (consumer, event_id, event_type, topic, partition, "offset", key,
                              value, headers, error, attempts, failed_at)
    VALUES (:consumer, :event_id, :event_type, :topic, :partition, :offset, :key, :value,
            :headers, :error, :attempts, :failed_at)
    """
)
_DEAD_LETTERED_AT = text(
    'SELECT 1 FROM dead_letters WHERE consumer = :consumer AND topic = :topic '
    'AND partition = :partition AND "offset" = :offset'
)


class Consumer:
    """Runs ``handler`` over the events of one consumer group, exactly once in effect."""

    def __init__(
        self,
        *,
        name: str,
        db: Database,
        registry: EventRegistry,
        source: KafkaSource,
        handler: BatchHandler,
        dead_letter_producer: Any,
        event_types: Collection[str] | None = None,
        dead_letter_topic: str | None = None,
        max_attempts: int = 3,
        backoff_seconds: float = 0.05,
        batch_size: int = 500,
        poll_timeout_ms: int = 200,
        after_db_commit: Callable[[list[Any]], Awaitable[None]] | None = None,
        event_context: Callable[[Envelope], AbstractContextManager] | None = None,
        observe_handler: Callable[[float, int], None] | None = None,
        observe_batch: Callable[[float, int], None] | None = None,
        namespace: str = "",
    ) -> None:
        self.name = name
        self.db = db
        self.registry = registry
        self.source = source
        self.handler = handler
        self.dlq_producer = dead_letter_producer
        self.event_types = frozenset(event_types) if event_types is not None else None
        self.dead_letter_topic = dead_letter_topic or f"{name}.deadletter"
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.batch_size = batch_size
        # The topics' namespace prefix, to know which service's topic a record came from.
        self.namespace = namespace
        # Entered around each event's handling (e.g. a span continuing the event's trace);
        # the handler is then called one event at a time within the batch's transaction.
        self.event_context = event_context
        self.poll_timeout_ms = poll_timeout_ms
        # Runs after the database commit and before the offset commit: the runtime wakes
        # its relay and projections there (the batch's events are in the log); tests
        # crash or pause there.
        self.after_db_commit = after_db_commit
        # Instrumentation: (seconds, events) of each handler call and of each batch
        # transaction (inbox, handler, commit); they observe, they change nothing.
        self.observe_handler = observe_handler
        self.observe_batch = observe_batch
        self.handled = 0
        self.dead_lettered = 0
        # partition -> the offset after the last record handled and committed (for lag)
        self.positions: dict[Any, int] = {}
        self._stopping = False
        self._task: asyncio.Task | None = None
        # partition -> first offset of the batch taken but not committed yet: where a
        # restarted run() reads again.
        self._in_flight: dict[Any, int] = {}

    # -- lifecycle ----------------------------------------------------------------
    async def start(
        self, spawn: Callable[[str, Callable[[], Awaitable[None]]], asyncio.Task] | None = None
    ) -> None:
        """Join the group and run :meth:`run` in a task; ``spawn(name, run)`` makes that task
        instead (the runtime's supervisor, which restarts a run that died)."""
        await self.source.start()
        name = f"consumer:{self.name}"
        self._task = (spawn(name, self.run) if spawn is not None
                      else asyncio.create_task(self.run(), name=name))

    @property
    def task(self) -> asyncio.Task | None:
        return self._task

    async def stop(self) -> None:
        """Finish the batch in flight (database and offsets), then leave the group."""
        self._stopping = True
        if self._task is not None:
            try:
                await self._task
            except Exception:
                log.exception("consumer %s ended with an error", self.name)
        await self.source.stop()

    async def run(self) -> None:
        """Consume until stopped. Callable again after it raised: it first goes back to the
        batch that was in flight, which nothing has committed."""
        self._rewind()
        pause = self.backoff_seconds
        while not self._stopping:
            batches = await self._next_batch()
            if not batches:
                continue
            self._in_flight = {tp: recs[0].offset for tp, recs in batches.items() if recs}
            records = [r for tp_records in batches.values() for r in tp_records]
            try:
                await self.process(records)
                if self.after_db_commit is not None:
                    await self.after_db_commit(records)
                offsets = {tp: recs[-1].offset + 1 for tp, recs in batches.items() if recs}
                await self.source.commit(offsets)
                self.positions.update(offsets)
                self._in_flight = {}
                pause = self.backoff_seconds
            except INFRASTRUCTURE_ERRORS as exc:
                # Nothing of this batch counts as consumed: read it again after a pause.
                log.warning("consumer %s: %r; retrying the batch in %.2fs", self.name, exc, pause)
                self._rewind()
                await asyncio.sleep(pause)
                pause = min(pause * 2, 5.0)

    def _rewind(self) -> None:
        """Seek back to the start of the batch in flight (a partition revoked meanwhile is
        someone else's now: its new owner reads from the committed offset)."""
        for tp, offset in self._in_flight.items():
            try:
                self.source.seek(tp, offset)
            except Exception:  # noqa: BLE001 - not assigned any more
                log.info("consumer %s: %s no longer assigned; not rewound", self.name, tp)
        self._in_flight = {}

    async def _next_batch(self) -> dict[Any, list[Any]]:
        """Wait for records, then take what else is already fetched, up to ``batch_size``.

        Each batch costs a database commit and an offset commit whatever its size, so a
        backlog is handled in full batches rather than in whatever trickle the first
        fetch response happened to hold.
        """
        batches = await self.source.getmany(
            timeout_ms=self.poll_timeout_ms, max_records=self.batch_size
        )
        count = sum(len(v) for v in batches.values())
        while batches and count < self.batch_size:
            more = await self.source.getmany(timeout_ms=0, max_records=self.batch_size - count)
            if not more:
                break
            for tp, recs in more.items():
                batches.setdefault(tp, []).extend(recs)
                count += len(recs)
        return batches

    # -- processing ---------------------------------------------------------------
    async def process(self, records: list[Any]) -> None:
        """Handle a batch of Kafka records; returns when every one is handled or dead-lettered."""
        items = [self._decode(r) for r in records]
        items = [i for i in items if i is not None]
        if not items:
            return
        good = [i for i in items if i.error is None]
        for bad in (i for i in items if i.error is not None):
            await self._dead_letter(bad, attempts=1)
        if not good:
            return
        try:
            await self._handle([i.event for i in good])
        except INFRASTRUCTURE_ERRORS:
            raise
        except Exception as exc:
            log.warning("consumer %s: batch of %d failed (%s); retrying one by one",
                        self.name, len(good), exc)
            for item in good:
                # The batch was everyone's first attempt; each event still gets at least
                # one attempt of its own, since the failure may have been another's.
                await self._handle_alone(item, first_attempt=2)

    def _decode(self, record: Any) -> _Item | None:
        """The record's event, checked, or the reason it can never be handled. Never raises:
        whatever a record holds, it is handled, dead-lettered, or not this consumer's."""
        try:
            etype = event_type_of(record.headers)
            if self.event_types is not None and etype not in self.event_types:
                return None
            env = from_kafka(record.key, record.value, record.headers)
            if not belongs_to_topic(env.type, record.topic, self.namespace):
                raise InvalidEventError(
                    f"an event of type {env.type!r} does not belong to topic {record.topic!r}")
            return _Item(record, self.registry.check(
                self.registry.upcast(env, stored=record.value)))
        except EventKernelError as exc:
            return _Item(record, error=exc)
        except Exception as exc:  # noqa: BLE001 - an upcaster's bug, a binding's gap
            return _Item(record, error=InvalidEventError(
                f"undecodable record: {type(exc).__name__}: {exc}"))

    async def _handle(self, events: list[Envelope]) -> None:
        started = time.perf_counter()
        async with self.db.transaction() as tx:
            await tx.plan_per_execution()
            new = await claim(tx, self.name, [e.id for e in events])
            todo: list[Envelope] = []
            for e in events:
                if e.id in new:
                    new.discard(e.id)  # a duplicate inside one batch is handled once too
                    todo.append(e)
            if todo and self.event_context is None:
                await self._call(tx, todo)
            else:
                # Each event in its own context (its trace), still in the batch's transaction.
                for e in todo:
                    with self.event_context(e):
                        await self._call(tx, [e])
        self.handled += len(todo)
        if self.observe_batch is not None:
            self.observe_batch(time.perf_counter() - started, len(todo))

    async def _call(self, tx: Tx, events: list[Envelope]) -> None:
        if self.observe_handler is None:
            await self.handler(tx, events)
            return
        started = time.perf_counter()
        await self.handler(tx, events)
        self.observe_handler(time.perf_counter() - started, len(events))

    async def _handle_alone(self, item: _Item, first_attempt: int = 1) -> None:
        delay = self.backoff_seconds
        last = max(self.max_attempts, first_attempt)
        for attempt in range(first_attempt, last + 1):
            try:
                await self._handle([item.event])
                return
            except PERMANENT_ERRORS as exc:
                item.error = exc
                break
            except INFRASTRUCTURE_ERRORS:
                raise
            except Exception as exc:  # noqa: BLE001 - any handler failure is retried
                item.error = exc
                log.warning("consumer %s: event %s failed (attempt %d/%d): %s", self.name,
                            item.event.id, attempt, last, exc)
                if attempt < last:
                    await asyncio.sleep(delay)
                    delay *= 2
        await self._dead_letter(item, attempts=attempt)

    async def _dead_letter(self, item: _Item, *, attempts: int) -> None:
        """Park the record: on the dead-letter topic, in ``dead_letters``, its id in the inbox.

        One transaction claims the inbox record first: a record dead-lettered (or handled)
        before, redelivered because a crash came before the offset commit, is skipped. The
        topic is written inside that transaction, so a crash before its commit only
        publishes the dead letter twice.
        """
        rec = item.record
        event_id = item.event.id if item.event else _header(rec.headers, "ce_id")
        async with self.db.transaction() as tx:
            if event_id:
                if not await claim(tx, self.name, [event_id]):
                    log.info("consumer %s: %s at %s[%d]@%d was parked or handled before; "
                             "skipped", self.name, event_id, rec.topic, rec.partition,
                             rec.offset)
                    return
            elif await tx.fetchrow(_DEAD_LETTERED_AT, {
                    "consumer": self.name, "topic": rec.topic, "partition": rec.partition,
                    "offset": rec.offset}):
                return
            await self._park(tx, item, event_id, attempts)

    async def _park(self, tx: Tx, item: _Item, event_id: str | None, attempts: int) -> None:
        rec = item.record
        error = f"{type(item.error).__name__}: {item.error}"
        headers = list(rec.headers or ()) + [
            ("deadletter_error", error.encode()),
            ("deadletter_consumer", self.name.encode()),
            ("deadletter_topic", rec.topic.encode()),
            ("deadletter_partition", str(rec.partition).encode()),
            ("deadletter_offset", str(rec.offset).encode()),
            ("deadletter_attempts", str(attempts).encode()),
        ]
        fut = await self.dlq_producer.send(
            self.dead_letter_topic, value=rec.value, key=rec.key, headers=headers
        )
        await fut
        await tx.execute(
            _DEAD_LETTER,
            {
                "consumer": self.name,
                "event_id": event_id,
                "event_type": (item.event.type if item.event
                               else _header(rec.headers, "ce_type")),
                "topic": rec.topic,
                "partition": rec.partition,
                "offset": rec.offset,
                "key": rec.key,
                "value": rec.value,
                "headers": orjson.dumps(
                    [[k, (v or b"").decode(errors="replace")] for k, v in rec.headers or ()]
                ).decode(),
                "error": error,
                "attempts": attempts,
                "failed_at": datetime.now(UTC),
            },
        )
        self.dead_lettered += 1
        log.error("consumer %s: dead-lettered %s at %s[%d]@%d after %d attempt(s): %s",
                  self.name, event_id, rec.topic, rec.partition, rec.offset, attempts, error)


def _header(headers, name: str) -> str | None:
    for k, v in headers or ():
        if k == name and v is not None:
            return v.decode(errors="replace")
    return None
