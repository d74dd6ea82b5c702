"""No record can end a consumer's task (issue 10, finding 1), against the real broker.

Every record a consumer cannot read — a header that is not UTF-8, an event type foreign to
its topic, a payload its contract rejects — goes to the dead-letter topic with the reason;
a dead letter redelivered after a crash is skipped; and the consumer goes on with the
records after it.
"""

from __future__ import annotations

import uuid

import pytest

from libs.events import Consumer, DocumentProjection, Envelope, ensure_topics, list_dead_letters
from libs.events.contracts import all_contracts
from libs.events.kafka_binding import header_map, to_kafka
from libs.runtime.kafka import make_consumer
from tests.conftest import BACKENDS, eventually
from tests.integration.kafka_helpers import read_topic
from tests.integration.test_consumer import (
    T0,
    CountingSource,
    ProcessKilled,
    _async,
    consumer_for,
    count,
    noted,
    publish,
)

pytestmark = pytest.mark.kafka



def alive(consumer: Consumer) -> bool:
    return consumer.task is not None and not consumer.task.done()


@BACKENDS
async def test_a_header_that_is_not_utf8_is_dead_lettered_and_the_consumer_goes_on(
        db, kafka_bootstrap, topic, producer):
    name = f"it-{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, [f"{name}.deadletter"])
    projection = DocumentProjection(f"{name}-counts", count)
    bad = noted("acc-1", 0)
    key, value, headers = to_kafka(bad)
    await (await producer.send(topic, value=value, key=key,
                               headers=headers + [("x-origin", b"\xff\xfe not utf-8")]))
    # A ce_type that is not UTF-8 either: the type filter must not choke on it.
    odd = noted("acc-2", 0)
    key2, value2, headers2 = to_kafka(odd)
    headers2 = [(k, b"\xc3\x28" if k == "ce_type" else v) for k, v in headers2]
    await (await producer.send(topic, value=value2, key=key2, headers=headers2))
    await publish(producer, topic, [noted("acc-1", 1)])

    consumer = consumer_for(db, kafka_bootstrap, topic, name, projection.apply, producer)
    await consumer.start()
    try:
        await eventually(lambda: _async(consumer.handled == 1 and consumer.dead_lettered == 2),
                         what="the good record handled and the two bad ones dead-lettered")
        assert alive(consumer)
    finally:
        await consumer.stop()
    letters = {d.event_id: d for d in await list_dead_letters(db, name)}
    assert set(letters) == {bad.id, odd.id}
    assert "UTF-8" in letters[bad.id].error and "UTF-8" in letters[odd.id].error
    records = await read_topic(kafka_bootstrap, f"{name}.deadletter", 2)
    reasons = [dict(r.headers)["deadletter_error"].decode() for r in records]
    assert all("UTF-8" in reason for reason in reasons), reasons
    async with db.connect() as conn:
        assert (await projection.get(conn, "acc-1"))["ns"] == [1]


@BACKENDS
async def test_a_dead_letter_redelivered_after_a_crash_is_skipped_not_fatal(
        db, kafka_bootstrap, topic, producer):
    name = f"it-{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, [f"{name}.deadletter"])
    projection = DocumentProjection(f"{name}-counts", count)
    unknown = noted("acc-odd", 0, type_="test.NobodyKnowsMe")
    await publish(producer, topic, [unknown, noted("acc-1", 0)])

    async def crash(_records):
        raise ProcessKilled("killed between database commit and offset commit")

    first = consumer_for(db, kafka_bootstrap, topic, name, projection.apply, producer,
                         after_db_commit=crash)
    await first.start()
    await eventually(lambda: _async(first.task.done()), what="the first consumer to crash")
    await first.stop()
    assert first.dead_lettered == 1  # parked, then the offsets were never committed

    await publish(producer, topic, [noted("acc-1", 1)])
    second = consumer_for(db, kafka_bootstrap, topic, name, projection.apply, producer)
    await second.start()
    try:
        await eventually(lambda: _async(second.source.commits > 0 and second.handled >= 1
                                        and second.source.delivered >= 3),
                         what="the redelivered batch and the new event")
        async with db.connect() as conn:
            doc = await projection.get(conn, "acc-1")
        assert doc["ns"] == [0, 1], "each event applied exactly once"
        assert alive(second), "the redelivered dead letter ended the consumer's task"
        assert second.dead_lettered == 0
    finally:
        await second.stop()
    assert len(await list_dead_letters(db, name, pending_only=False)) == 1


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_an_event_type_foreign_to_its_topic_is_dead_lettered(
        db, kafka_bootstrap, producer):
    """A credit event on registration's topic: whatever put it there, no handler sees it."""
    ns = f"it-{uuid.uuid4().hex[:8]}."
    topic, name = f"{ns}registration.events", "watcher"
    await ensure_topics(kafka_bootstrap, [topic, f"{ns}{name}.deadletter"])
    contracts = all_contracts()
    seen: list[str] = []

    async def handler(_tx, events):
        seen.extend(e.type for e in events)

    def account(type_: str, stream: str, data: dict) -> Envelope:
        return Envelope.new(type=type_, data=data, stream_id=stream, source="tests",
                            time=T0, schema_version=contracts.latest_version(type_))

    foreign = account("credit.CreditLevelChanged", "credit-account-a1",
                      {"account_id": "a1", "legal_basis": ["A13.1"], "level": "B",
                       "score": 80, "reasons": []})
    own = account("registration.AccountWarned", "account-a1",
                  {"account_id": "a1", "legal_basis": ["A19.2"], "measure_id": "m1"})
    for event in (foreign, own):  # both valid: only the foreign one's topic is wrong
        contracts.validate(event)
    await publish(producer, topic, [foreign, own])
    consumer = Consumer(name=f"{ns}{name}", db=db, registry=contracts, namespace=ns,
                        source=CountingSource(make_consumer(kafka_bootstrap, f"{ns}{name}",
                                                            [topic])),
                        handler=handler, dead_letter_producer=producer,
                        dead_letter_topic=f"{ns}{name}.deadletter")
    await consumer.start()
    try:
        await eventually(lambda: _async(consumer.handled == 1 and consumer.dead_lettered == 1),
                         what="the own event handled, the foreign one dead-lettered")
    finally:
        await consumer.stop()
    assert seen == ["registration.AccountWarned"]
    [letter] = await list_dead_letters(db, f"{ns}{name}")
    assert letter.event_id == foreign.id
    assert "does not belong to topic" in letter.error


@BACKENDS
async def test_a_payload_its_contract_rejects_is_dead_lettered_on_consume(
        db, kafka_bootstrap, topic, producer):
    name = f"it-{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, [f"{name}.deadletter"])
    projection = DocumentProjection(f"{name}-counts", count)
    wrong = Envelope.new(type="test.Noted", data={"n": "many"}, stream_id="acc-1",
                         source="tests", time=T0, schema_version=1)
    extra = Envelope.new(type="test.Noted", data={"n": 1, "sneaked": True}, stream_id="acc-1",
                         source="tests", time=T0, schema_version=1)
    await publish(producer, topic, [wrong, extra, noted("acc-1", 2)])
    consumer = consumer_for(db, kafka_bootstrap, topic, name, projection.apply, producer)
    await consumer.start()
    try:
        await eventually(lambda: _async(consumer.handled == 1 and consumer.dead_lettered == 2),
                         what="the valid event handled, the two invalid ones dead-lettered")
    finally:
        await consumer.stop()
    letters = {d.event_id: d for d in await list_dead_letters(db, name)}
    assert set(letters) == {wrong.id, extra.id}
    assert all("payload is invalid" in d.error for d in letters.values())
    assert all(d.attempts == 1 for d in letters.values()), "no retry can fix a payload"
    records = await read_topic(kafka_bootstrap, f"{name}.deadletter", 2)
    assert {header_map(r.headers)["ce_id"] for r in records} == {wrong.id, extra.id}
    async with db.connect() as conn:
        assert (await projection.get(conn, "acc-1"))["ns"] == [2]

