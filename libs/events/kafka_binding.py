"""CloudEvents Kafka protocol binding (binary content mode) for :class:`Envelope`.

On the wire an event is a Kafka record whose key is the stream id, whose value is
the JSON payload, and whose headers carry every context attribute as
``ce_<attribute>`` (UTF-8) plus ``content-type`` for the payload's media type.
Extensions use CloudEvents-legal names (lower-case alphanumerics): ``streamid``,
``streamversion``, ``schemaversion``, ``correlationid``, ``causationid`` and the
distributed-tracing extension ``traceparent``, which is also sent as a plain
``traceparent`` header so that OpenTelemetry's W3C propagator picks it up.

This is written out here instead of going through the ``cloudevents`` SDK because
it runs once per published and consumed record on the hot path; the unit tests
check that the SDK's own ``from_binary``/``to_binary`` read and write the same
records (docs/decisions/0005-cloudevents-binding.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import orjson

from .envelope import SPECVERSION, Envelope
from .errors import InvalidEventError

Headers = list[tuple[str, bytes]]

_REQUIRED = ("ce_id", "ce_source", "ce_type", "ce_specversion")


def encode_time(t: datetime) -> str:
    """RFC 3339 in UTC with a ``Z`` suffix."""
    return t.isoformat().replace("+00:00", "Z")


def to_kafka(env: Envelope) -> tuple[bytes, bytes, Headers]:
    """Encode an envelope as (key, value, headers) for a Kafka record."""
    headers: Headers = [
        ("ce_specversion", SPECVERSION.encode()),
        ("ce_id", env.id.encode()),
        ("ce_source", env.source.encode()),
        ("ce_type", env.type.encode()),
        ("ce_subject", env.subject.encode()),
        ("ce_time", encode_time(env.time).encode()),
        ("content-type", env.datacontenttype.encode()),
        ("ce_streamid", env.stream_id.encode()),
        ("ce_streamversion", str(env.stream_version).encode()),
        ("ce_schemaversion", str(env.schema_version).encode()),
        ("ce_correlationid", env.correlation_id.encode()),
    ]
    if env.causation_id:
        headers.append(("ce_causationid", env.causation_id.encode()))
    if env.traceparent:
        tp = env.traceparent.encode()
        headers.append(("ce_traceparent", tp))
        headers.append(("traceparent", tp))
    # Data read with ``decode_data=False`` is still the stored JSON text: forward it as is.
    data = env.data
    value = data.encode() if isinstance(data, str) else orjson.dumps(data)
    return env.stream_id.encode(), value, headers


def header_map(headers: Sequence[tuple[str, bytes]] | None) -> dict[str, str]:
    """Kafka headers as a dict of text values (the last value of a repeated key wins).

    Raises :class:`InvalidEventError` for a value that is not UTF-8: the binding says
    header values are UTF-8 text, and anything else is a record no consumer can read.
    """
    try:
        return {k: v.decode() for k, v in (headers or ()) if v is not None}
    except UnicodeDecodeError as exc:
        raise InvalidEventError(f"a header value is not UTF-8: {exc}") from exc


def event_type_of(headers: Sequence[tuple[str, bytes]] | None) -> str | None:
    """The ``ce_type`` header alone, without decoding the rest of the record (None when
    absent; its bytes decoded leniently, so a filter never raises)."""
    for k, v in headers or ():
        if k == "ce_type":
            return v.decode(errors="replace") if v is not None else None
    return None


def from_kafka(
    key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]]
) -> Envelope:
    """Decode a binary-mode CloudEvents Kafka record; raises :class:`InvalidEventError`."""
    h = header_map(headers)
    missing = [name for name in _REQUIRED if name not in h]
    if missing:
        raise InvalidEventError(f"not a CloudEvents record: missing headers {missing}")
    if h["ce_specversion"] != SPECVERSION:
        raise InvalidEventError(f"unsupported CloudEvents specversion {h['ce_specversion']!r}")
    try:
        stream_id = h.get("ce_streamid") or (key.decode() if key else h.get("ce_subject", ""))
        return Envelope(
            id=h["ce_id"],
            source=h["ce_source"],
            type=h["ce_type"],
            subject=h.get("ce_subject", stream_id),
            time=datetime.fromisoformat(h["ce_time"]),
            stream_id=stream_id,
            stream_version=int(h.get("ce_streamversion", "0")),
            schema_version=int(h.get("ce_schemaversion", "1")),
            data=orjson.loads(value) if value else {},
            correlation_id=h.get("ce_correlationid", h["ce_id"]),
            causation_id=h.get("ce_causationid"),
            traceparent=h.get("ce_traceparent") or h.get("traceparent"),
            datacontenttype=h.get("content-type", "application/json"),
        )
    except (KeyError, ValueError, TypeError, orjson.JSONDecodeError) as exc:
        raise InvalidEventError(f"malformed CloudEvents record: {exc}") from exc
