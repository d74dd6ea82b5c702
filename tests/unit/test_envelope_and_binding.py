"""The envelope and its CloudEvents Kafka binding, checked against the cloudevents SDK."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from cloudevents.core.bindings.kafka import KafkaMessage, from_binary, to_binary
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from libs.events import Envelope, InvalidEventError, new_event_id, new_id
from libs.events.kafka_binding import event_type_of, from_kafka, to_kafka

T0 = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)


def sample(**kw) -> Envelope:
    return Envelope.new(type="registration.AccountRegistered", data={"name": "茶馆", "n": 1},
                        stream_id="acc-1", source="/services/registration", time=T0,
                        **kw).with_stream_version(4, 17)


def test_new_ids_are_uuid7_in_creation_order_and_unique():
    before = int(time.time() * 1000)
    ids = [new_id() if n % 2 else new_event_id() for n in range(5000)]
    after = int(time.time() * 1000)
    parsed = [uuid.UUID(i) for i in ids]
    assert all(str(u) == i for u, i in zip(parsed, ids, strict=True))  # canonical text
    assert {u.version for u in parsed} == {7}
    assert {u.variant for u in parsed} == {uuid.RFC_4122}
    # Ids made one after the other sort one after the other, as text (what the indexes
    # compare): each insert lands on the unique index's right edge.
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    millis = [u.int >> 80 for u in parsed]  # the 48-bit Unix time in milliseconds
    assert before <= min(millis) and max(millis) <= after


def test_new_event_starts_its_own_causal_chain_and_caused_events_continue_it():
    first = sample()
    assert first.correlation_id == first.id and first.causation_id is None
    second = first.caused(type="verification.IdentityVerified", data={}, stream_id="acc-1",
                          source="/services/verification", time=T0)
    assert second.correlation_id == first.id and second.causation_id == first.id
    assert second.subject == "acc-1" and second.specversion == "1.0"


def test_naive_time_is_refused_and_other_zones_become_utc():
    with pytest.raises(ValueError, match="timezone-aware"):
        Envelope.new(type="t", data={}, stream_id="s", source="x", time=datetime(2026, 1, 1))
    e = Envelope.new(type="t", data={}, stream_id="s", source="x",
                     time=datetime(2026, 1, 1, 8, tzinfo=timezone(timedelta(hours=8))))
    assert e.time == datetime(2026, 1, 1, 0, tzinfo=UTC) and e.time.tzinfo is UTC


def test_round_trip_through_kafka_record_keeps_every_attribute():
    env = sample(traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                 causation_id="cause-1", correlation_id="corr-1")
    key, value, headers = to_kafka(env)
    assert key == b"acc-1"
    back = from_kafka(key, value, headers)
    assert back._replace(position=0) == env._replace(position=0)
    assert event_type_of(headers) == env.type


def test_sdk_reads_our_records_as_binary_mode_cloudevents():
    env = sample(causation_id="cause-1")
    key, value, headers = to_kafka(env)
    event = from_binary(KafkaMessage(headers=dict(headers), key=key, value=value), JSONFormat(),
                        CloudEvent)
    assert event.get_id() == env.id
    assert event.get_type() == env.type
    assert event.get_source() == env.source
    assert event.get_subject() == "acc-1"
    assert event.get_time() == T0
    assert event.get_data() == {"name": "茶馆", "n": 1}
    assert event.get_extension("streamversion") == "4"
    assert event.get_extension("causationid") == "cause-1"
    assert event.get_extension("partitionkey") == "acc-1"


def test_we_read_records_the_sdk_writes():
    event = CloudEvent(
        attributes={"id": "e-1", "source": "/elsewhere", "type": "test.Noted",
                    "specversion": "1.0", "time": T0, "subject": "acc-7",
                    "datacontenttype": "application/json", "streamid": "acc-7",
                    "streamversion": "2", "schemaversion": "1", "partitionkey": "acc-7"},
        data={"n": 3},
    )
    msg = to_binary(event, JSONFormat())
    env = from_kafka(msg.key if isinstance(msg.key, bytes) else msg.key.encode(), msg.value,
                     list(msg.headers.items()))
    assert (env.id, env.stream_id, env.stream_version, env.data) == ("e-1", "acc-7", 2, {"n": 3})
    assert env.correlation_id == "e-1"  # no correlation id given: the event starts a chain


@pytest.mark.parametrize("headers", [
    [("ce_type", b"t")],
    [("ce_id", b"1"), ("ce_source", b"s"), ("ce_type", b"t"), ("ce_specversion", b"0.3")],
    [("ce_id", b"1"), ("ce_source", b"s"), ("ce_type", b"t"), ("ce_specversion", b"1.0"),
     ("ce_time", b"yesterday")],
])
def test_malformed_records_are_a_clear_error(headers):
    with pytest.raises(InvalidEventError):
        from_kafka(b"k", b"{}", headers)
