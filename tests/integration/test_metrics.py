"""Scrape-time metrics against the real databases and broker: the relay's backlog from its
checkpoint, a consumer's lag per partition, and the kernel's instrumentation hooks."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from libs.events import Consumer, Envelope, Relay, each
from libs.events.testing import FakeBroker
from libs.runtime.kafka import make_consumer
from libs.runtime.metrics import RuntimeMetrics
from tests.conftest import BACKENDS, eventually, registry
from tests.integration.test_consumer import noted, publish

pytestmark = pytest.mark.kafka


def runtime(db, store, relay=None, consumers=()):
    return SimpleNamespace(settings=SimpleNamespace(service="registration"), db=db,
                           store=store, relay=relay, consumers=list(consumers))


def value(text: bytes, name: str, **labels) -> float | None:
    from prometheus_client.parser import text_string_to_metric_families
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return None


async def drain(relay: Relay, expected: int) -> int:
    total = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while total < expected and loop.time() < deadline:
        total += await relay.publish_pending()
    return total


@BACKENDS
async def test_relay_backlog_and_the_age_of_the_oldest_come_from_the_checkpoint(db, store):
    relay = Relay(db=db, store=store, producer=FakeBroker().producer(), topic="r.events")
    metrics = RuntimeMetrics(runtime(db, store, relay))
    relay.observe_publish = metrics.relay_hook()
    then = datetime.now(UTC) - timedelta(seconds=60)
    for s in range(2):
        async with db.transaction() as tx:
            await store.append(tx, f"acc-{s}", 0, [
                Envelope.new(type="test.Noted", data={"n": i}, stream_id=f"acc-{s}",
                             source="tests", time=then) for i in range(5)])
    text = await metrics.exposition()
    assert value(text, "relay_backlog_events") == 10
    assert 59 <= value(text, "relay_backlog_oldest_age_seconds") < 120
    assert await drain(relay, 10) == 10
    text = await metrics.exposition()
    assert value(text, "relay_backlog_events") == 0
    assert value(text, "relay_backlog_oldest_age_seconds") == 0
    assert value(text, "events_published_total") == 10
    assert value(text, "relay_publish_duration_seconds_count") >= 1
    assert value(text, "log_reader_wait_seconds") is not None


@BACKENDS
async def test_consumer_lag_per_partition_and_handler_latency(db, store, kafka_bootstrap,
                                                              topic, producer):
    release = asyncio.Event()
    seen: list[int] = []

    async def handler(tx, event):
        if event.data["n"] >= 6:
            await release.wait()  # the second batch stays in flight
        seen.append(event.data["n"])

    name = f"metrics-{uuid.uuid4().hex[:6]}"
    consumer = Consumer(name=name, db=db, registry=registry,
                        source=make_consumer(kafka_bootstrap, name, [topic]),
                        handler=each(handler), dead_letter_producer=producer)
    metrics = RuntimeMetrics(runtime(db, store, consumers=[consumer]))
    for key, fn in metrics.consumer_hooks(name).items():
        setattr(consumer, key, fn)
    await publish(producer, topic, [noted(f"k{i}", i) for i in range(6)])
    await consumer.start()
    try:
        await eventually(lambda: _true(len(seen) == 6), what="the first six events")

        async def lag() -> float:
            text = await metrics.exposition()
            return sum(value(text, "consumer_lag_records", consumer=name, topic=topic,
                             partition=str(p)) or 0 for p in range(3))

        await eventually(lambda: _eq(lag(), 0), what="no lag once the events are handled")
        await publish(producer, topic, [noted(f"k{i}", i) for i in range(6, 9)])
        await eventually(lambda: _eq(lag(), 3), what="lag 3 while the batch is in flight")
        release.set()
        await eventually(lambda: _eq(lag(), 0), what="no lag after the batch")
        text = await metrics.exposition()
        assert value(text, "events_handled_total", consumer=name) == 9
        assert value(text, "consumer_handler_duration_seconds_count", consumer=name) >= 2
        assert value(text, "consumer_batch_duration_seconds_count", consumer=name) >= 2
    finally:
        release.set()
        await consumer.stop()


async def _true(x: bool) -> bool:
    return x


async def _eq(awaitable, expected) -> bool:
    return await awaitable == expected
