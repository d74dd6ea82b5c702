"""The event envelope: CloudEvents 1.0 attributes plus the kernel's extensions.

An :class:`Envelope` is what every service stores, publishes and consumes. The
CloudEvents context attributes (``id``, ``source``, ``type``, ``specversion``,
``time``, ``subject``, ``datacontenttype``) are complemented by extension
attributes that event sourcing needs: the stream and its version, the payload's
schema version, the correlation and causation ids of the causal chain and the
W3C ``traceparent`` of the trace that produced the event.

Envelopes are immutable. ``position`` is the row number the store gave the event
(``0`` until it is stored); it identifies a row, it is not the read order of the
global log (see :class:`libs.events.store.LogCursor`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NamedTuple

from uuid_utils import uuid7

SPECVERSION = "1.0"
JSON = "application/json"

def new_id() -> str:
    """A new unique id, time-ordered: a UUIDv7 (RFC 9562) in canonical text form.

    48 bits of Unix milliseconds, then a counter and random bits (``uuid_utils``): ids
    made one after the other sort one after the other, so the unique indexes they are
    stored under (events' ``event_id``, a new stream's ``stream_id``, the inbox, a read
    model's key) take each insert on their right edge instead of on a random leaf page,
    and a batch of 100 events dirties a few pages, not a hundred
    (docs/decisions/0038-time-ordered-ids.md). Used for event ids and for the ids of
    new aggregates (accounts, cases, measures, ...).
    """
    return str(uuid7())


new_event_id = new_id  # an event's id is a new id like any other


class Envelope(NamedTuple):
    """One event: CloudEvents attributes, stream coordinates, causal links and payload.

    Build new events with :meth:`Envelope.new`; the store assigns ``stream_version``
    and ``position`` when it appends them. A named tuple rather than a dataclass:
    replay builds millions of these and tuple construction is several times cheaper.
    """

    id: str
    source: str
    type: str
    subject: str
    time: datetime
    stream_id: str
    stream_version: int
    schema_version: int
    data: dict[str, Any]
    correlation_id: str
    causation_id: str | None = None
    traceparent: str | None = None
    datacontenttype: str = JSON
    position: int = 0

    @property
    def specversion(self) -> str:
        return SPECVERSION

    @classmethod
    def new(
        cls,
        *,
        type: str,
        data: dict[str, Any],
        stream_id: str,
        source: str,
        time: datetime,
        schema_version: int = 0,
        subject: str | None = None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        traceparent: str | None = None,
        event_id: str | None = None,
    ) -> Envelope:
        """Create an event not yet stored.

        ``schema_version`` 0 means "the contract's latest", filled in when the event is
        validated on append. ``subject`` defaults to the stream id (for account streams both are the
        account id). Without a ``correlation_id`` the event starts a new causal
        chain whose id is its own id.
        """
        tz = time.tzinfo
        if tz is not UTC:
            if tz is None:
                raise ValueError("event time must be timezone-aware (UTC)")
            time = time.astimezone(UTC)
        eid = event_id or new_event_id()
        # tuple.__new__ with the fields in order: the named tuple's keyword __new__ is a
        # Python call of its own, and batches build hundreds of these.
        return _new_tuple(cls, (
            eid, source, type, stream_id if subject is None else subject, time, stream_id,
            0, schema_version, data, correlation_id or eid, causation_id, traceparent, JSON,
            0,
        ))

    def caused(self, **kwargs: Any) -> Envelope:
        """A new event caused by this one: same correlation id, causation id = this id.

        Accepts the keyword arguments of :meth:`new`.
        """
        kwargs.setdefault("correlation_id", self.correlation_id)
        kwargs.setdefault("causation_id", self.id)
        kwargs.setdefault("traceparent", self.traceparent)
        return Envelope.new(**kwargs)

    def with_stream_version(self, version: int, position: int = 0) -> Envelope:
        return self._replace(stream_version=version, position=position)

    def with_data(self, data: dict[str, Any], schema_version: int) -> Envelope:
        return self._replace(data=data, schema_version=schema_version)


_new_tuple = tuple.__new__
