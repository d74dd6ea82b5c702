"""The consumers' batched fetches (ADRs 0045 and 0048), against the real broker.

A fetch waits for ``KAFKA_FETCH_MIN_BYTES`` (64 KiB) or ``KAFKA_FETCH_MAX_WAIT_MS`` (100 ms),
whichever comes first: a lone record on a quiet topic still arrives (the wait bounds it),
and a burst arrives in batches rather than record by record.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import pytest

from libs.runtime.kafka import FETCH_MAX_WAIT_MS, FETCH_MIN_BYTES, make_consumer
from libs.runtime.settings import ServiceSettings
from tests.integration.kafka_helpers import fresh_topic, started_producer

pytestmark = pytest.mark.kafka


async def _records(consumer, want: int, deadline_s: float = 20.0) -> list[list]:
    """The non-empty ``getmany`` answers until ``want`` records came (with a deadline)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + deadline_s
    answers: list[list] = []
    while sum(map(len, answers)) < want:
        assert loop.time() < deadline, f"{sum(map(len, answers))} of {want} records came"
        got = await consumer.getmany(timeout_ms=100)
        records = [r for recs in got.values() for r in recs]
        if records:
            answers.append(records)
    return answers


@contextlib.asynccontextmanager
async def _topic_with_both_ends(bootstrap: str):
    """A fresh topic, a started producer and a started consumer (the kernel's settings)."""
    topic = await fresh_topic(bootstrap, "fetch")
    consumer = make_consumer(bootstrap, f"fetch-{uuid.uuid4().hex[:8]}", [topic])
    producer = await started_producer(bootstrap)
    await consumer.start()
    try:
        yield topic, producer, consumer
    finally:
        await consumer.stop()
        await producer.stop()


async def test_a_lone_record_on_a_quiet_topic_arrives_despite_the_minimum_bytes(kafka_bootstrap):
    async with _topic_with_both_ends(kafka_bootstrap) as (topic, producer, consumer):
        assert consumer._fetch_min_bytes == FETCH_MIN_BYTES > 1000  # far more than a record
        await producer.send_and_wait(topic, b'{"one": "record"}', key=b"k")
        answers = await _records(consumer, 1)
        assert [r.value for batch in answers for r in batch] == [b'{"one": "record"}']


async def test_a_burst_arrives_in_batches(kafka_bootstrap):
    async with _topic_with_both_ends(kafka_bootstrap) as (topic, producer, consumer):
        await _wait_assigned(consumer)
        # 300 records sent one by one, each acknowledged before the next (as a relay's
        # pages trickle in): without the minimum, a fetch would answer nearly every one
        reading = asyncio.create_task(_records(consumer, 300))
        for i in range(300):
            await producer.send_and_wait(topic, b"x" * 200, key=str(i % 7).encode())
        answers = await reading
        assert sum(map(len, answers)) == 300
        assert len(answers) < 150, f"{len(answers)} answers for 300 records"


async def _wait_assigned(consumer, deadline_s: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + deadline_s
    while not consumer.assignment():
        assert loop.time() < deadline, "no partition assigned"
        await consumer.getmany(timeout_ms=100)


def test_the_settings_reach_every_consumer_and_refuse_nonsense(monkeypatch):
    monkeypatch.setenv("ENVIRONMENT", "development")
    s = ServiceSettings(service="registration", port=1)
    assert (s.kafka_fetch_min_bytes, s.kafka_fetch_max_wait_ms) == (FETCH_MIN_BYTES,
                                                                    FETCH_MAX_WAIT_MS)
    monkeypatch.setenv("KAFKA_FETCH_MIN_BYTES", "1")
    monkeypatch.setenv("KAFKA_FETCH_MAX_WAIT_MS", "0")
    s = ServiceSettings(service="registration", port=1)
    assert (s.kafka_fetch_min_bytes, s.kafka_fetch_max_wait_ms) == (1, 0)
    monkeypatch.setenv("KAFKA_FETCH_MAX_WAIT_MS", "501")  # past a consumer's poll
    with pytest.raises(ValueError, match="KAFKA_FETCH_MAX_WAIT_MS"):
        ServiceSettings(service="registration", port=1)
