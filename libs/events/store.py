"""The event store: append with optimistic concurrency, read a stream, tail the global log.

The same :class:`EventStore` serves PostgreSQL and SQLite; only the few statements
that need database-specific features (arrays, transaction ids) differ, and they
live side by side below.

**Global order.** The log is read in :class:`LogCursor` order, ``(xid, position)``.
On PostgreSQL ``xid`` is the id of the inserting transaction and a reader only
passes rows whose transaction is older than every transaction still running, so a
transaction that commits late can never land behind a reader's checkpoint
(docs/decisions/0001-gap-safe-global-order.md). On SQLite writers are serialized by
the database lock, ``xid`` is always 0 and the order is the position.

Nothing here commits: every method takes the caller's :class:`libs.events.db.Tx`,
whose transaction the handler opened (:meth:`libs.events.db.Database.transaction`).
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter

import asyncpg
import orjson
from sqlalchemy import bindparam, text
from sqlalchemy.exc import IntegrityError

from .db import Tx
from .envelope import Envelope
from .errors import ConcurrencyError, InvalidEventError
from .registry import EventRegistry


@dataclass(frozen=True, order=True)
class LogCursor:
    """A place in the global log; reading "after" it yields every later event exactly once."""

    xid: int = 0
    position: int = 0

    def __str__(self) -> str:
        return f"{self.xid}:{self.position}"

    @classmethod
    def parse(cls, value: str) -> LogCursor:
        """Parse the ``"xid:position"`` text form (a bare number is a position)."""
        try:
            if ":" in value:
                xid, pos = value.split(":", 1)
                return cls(int(xid), int(pos))
            return cls(0, int(value))
        except ValueError:
            raise ValueError(f"not a log cursor: {value!r} (expected 'xid:position')") from None


START = LogCursor()


@dataclass(frozen=True)
class LogPage:
    """Events read from the global log and the cursor to resume after them."""

    events: list[Envelope]
    cursor: LogCursor


_COLUMNS = (
    "position, event_id, stream_id, stream_version, type, schema_version, time, data, "
    "source, subject, correlation_id, causation_id, traceparent"
)

# Appending after version N requires version N to exist (so no holes) and to have been
# written by an older transaction than ours or by ours (a later statement of one transaction
# takes larger positions), so that (xid, position) order keeps every stream in version
# order. Appending to a new stream (N = 0) relies on the unique (stream_id, stream_version)
# constraint alone. The append statements ask whether such a row exists; the COPY's check
# (_PG_PREDECESSOR) reads the condition off the row.
_WRITTEN_BY_OURS_OR_OLDER = "e.xid <= pg_current_xact_id()"
_PREDECESSOR_ROW = """FROM events e
        WHERE e.stream_id = CAST(:stream_id AS text)
          AND e.stream_version = CAST(:expected AS integer)"""
_PREDECESSOR = f"{_PREDECESSOR_ROW}\n          AND {_WRITTEN_BY_OURS_OR_OLDER}"

_PG_APPEND = text(
    """
    INSERT INTO events (xid, event_id, stream_id, stream_version, type, schema_version, time,
                        data, source, subject, correlation_id, causation_id, traceparent)
    SELECT pg_current_xact_id(), r.event_id, CAST(:stream_id AS text),
           CAST(:expected AS integer) + CAST(r.ord AS integer), r.type, r.schema_version,
           r.time, CAST(r.data AS jsonb), r.source, r.subject, r.correlation_id,
           r.causation_id, r.traceparent
    FROM unnest(CAST(:event_ids AS text[]), CAST(:types AS text[]),
                CAST(:schema_versions AS integer[]), CAST(:times AS timestamptz[]),
                CAST(:datas AS text[]), CAST(:sources AS text[]), CAST(:subjects AS text[]),
                CAST(:correlation_ids AS text[]), CAST(:causation_ids AS text[]),
                CAST(:traceparents AS text[]))
         WITH ORDINALITY AS r(event_id, type, schema_version, time, data, source, subject,
                              correlation_id, causation_id, traceparent, ord)
    WHERE CAST(:expected AS integer) = 0 OR EXISTS (SELECT 1 """ + _PREDECESSOR + """)
    ORDER BY r.ord
    RETURNING position, stream_version
    """
)

# Many new streams at once (a group commit of commands that each start a stream, e.g.
# registrations): every row carries its own stream and version. A stream that exists
# already fails the unique (stream_id, stream_version) constraint, as with _PG_APPEND at 0.
_PG_APPEND_NEW_STREAMS = text(
    """
    INSERT INTO events (xid, event_id, stream_id, stream_version, type, schema_version, time,
                        data, source, subject, correlation_id, causation_id, traceparent)
    SELECT pg_current_xact_id(), r.event_id, r.stream_id, r.stream_version, r.type,
           r.schema_version, r.time, CAST(r.data AS jsonb), r.source, r.subject,
           r.correlation_id, r.causation_id, r.traceparent
    FROM unnest(CAST(:event_ids AS text[]), CAST(:stream_ids AS text[]),
                CAST(:versions AS integer[]), CAST(:types AS text[]),
                CAST(:schema_versions AS integer[]), CAST(:times AS timestamptz[]),
                CAST(:datas AS text[]), CAST(:sources AS text[]), CAST(:subjects AS text[]),
                CAST(:correlation_ids AS text[]), CAST(:causation_ids AS text[]),
                CAST(:traceparents AS text[]))
         WITH ORDINALITY AS r(event_id, stream_id, stream_version, type, schema_version,
                              time, data, source, subject, correlation_id, causation_id,
                              traceparent, ord)
    ORDER BY r.ord
    RETURNING position, stream_id, stream_version
    """
)

# The one-event form of the same statement: scalar parameters are cheaper to bind and
# plan than arrays, and most commands append one event.
_PG_APPEND_ONE = text(
    """
    INSERT INTO events (xid, event_id, stream_id, stream_version, type, schema_version, time,
                        data, source, subject, correlation_id, causation_id, traceparent)
    SELECT pg_current_xact_id(), CAST(:event_id AS text), CAST(:stream_id AS text),
           CAST(:expected AS integer) + 1, CAST(:type AS text), CAST(:schema_version AS integer),
           CAST(:time AS timestamptz), CAST(:data AS jsonb), CAST(:source AS text),
           CAST(:subject AS text), CAST(:correlation_id AS text), CAST(:causation_id AS text),
           CAST(:traceparent AS text)
    WHERE CAST(:expected AS integer) = 0 OR EXISTS (SELECT 1 """ + _PREDECESSOR + """)
    RETURNING position, stream_version
    """
)

# A batch of at least this many events is written with COPY: one binary stream instead of
# an INSERT ... SELECT over ten arrays (about 15 % less time per 100-event transaction on
# PostgreSQL 15, bench/store_append.py), at the price of a round trip for the positions
# and, when the stream exists, one for the expected-version check
# (docs/decisions/0035-batch-append-read-all-group-commit.md).
COPY_MIN_EVENTS = 16

_PG_COPY_COLUMNS = ("event_id", "stream_id", "stream_version", "type", "schema_version",
                    "time", "data", "source", "subject", "correlation_id", "causation_id",
                    "traceparent")

# The expected-version check of _PG_APPEND, on its own, before the COPY: version N exists
# and was written by an older transaction than ours or by ours (this call gives ours its
# xid if it has none yet). Nothing is inserted when it fails, as with the single statement;
# a concurrent append of N + 1 after the check fails the COPY on the unique constraint.
_PG_PREDECESSOR = text("SELECT " + _WRITTEN_BY_OURS_OR_OLDER + " " + _PREDECESSOR_ROW)
# The positions the identity column gave the rows just copied (not contiguous when other
# transactions insert at the same time, so they are read back).
_PG_COPIED = text(
    """
    SELECT position, stream_version FROM events
    WHERE stream_id = CAST(:stream_id AS text)
      AND stream_version > CAST(:expected AS integer)
      AND stream_version <= CAST(:last AS integer)
    """
)

_PG_READ_ALL = text(
    f"""
    SELECT events.xid,
           {_COLUMNS.replace("data,", "CAST(data AS text),")}
    FROM events
    WHERE (events.xid, position) > (CAST(CAST(:xid AS text) AS xid8), CAST(:position AS bigint))
      -- The horizon, computed once per query (an InitPlan), not once per row.
      AND events.xid < (SELECT pg_snapshot_xmin(pg_current_snapshot()))
    -- Order by the xid8 column itself: its text form would sort "10" before "9".
    ORDER BY events.xid, position
    LIMIT CAST(:limit AS integer)
    """
)

_PG_READ_STREAM = text(
    f"""
    SELECT 0, {_COLUMNS.replace("data,", "CAST(data AS text),")} FROM events
    WHERE stream_id = CAST(:stream_id AS text) AND stream_version > CAST(:after AS integer)
      AND time <= CAST(:as_of AS timestamptz)
    ORDER BY stream_version
    LIMIT CAST(:limit AS integer)
    """
)

# How long the oldest transaction holding an xid has been open: the time a tailing
# reader can be held back by it (exported as a metric).
_PG_READER_WAIT = text(
    """
    SELECT COALESCE(EXTRACT(EPOCH FROM clock_timestamp() - MIN(xact_start)), 0)
    FROM pg_stat_activity
    WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()
    """
)

_SQLITE_VERSION = text(
    "SELECT COALESCE(MAX(stream_version), 0) FROM events WHERE stream_id = :stream_id"
)
_SQLITE_INSERT = text(
    """
    INSERT INTO events (event_id, stream_id, stream_version, type, schema_version, time, data,
                        source, subject, correlation_id, causation_id, traceparent)
    VALUES (:event_id, :stream_id, :stream_version, :type, :schema_version, :time, :data,
            :source, :subject, :correlation_id, :causation_id, :traceparent)
    RETURNING position
    """
)
_SQLITE_READ_ALL = text(
    f"SELECT 0 AS xid, {_COLUMNS} FROM events WHERE position > :position "
    "ORDER BY position LIMIT :limit"
)
_SQLITE_READ_STREAM = text(
    f"SELECT 0, {_COLUMNS} FROM events WHERE stream_id = :stream_id AND stream_version > :after "
    "AND time <= :as_of ORDER BY stream_version LIMIT :limit"
)
# The log between two cursors (after < (xid, position) <= until), in log order.
_PG_READ_RANGE = text(
    f"""
    SELECT events.xid,
           {_COLUMNS.replace("data,", "CAST(data AS text),")}
    FROM events
    WHERE (events.xid, position) > (CAST(CAST(:xid AS text) AS xid8), CAST(:position AS bigint))
      AND (events.xid, position) <= (CAST(CAST(:uxid AS text) AS xid8),
                                     CAST(:uposition AS bigint))
      AND events.xid < (SELECT pg_snapshot_xmin(pg_current_snapshot()))
    ORDER BY events.xid, position
    LIMIT CAST(:limit AS integer)
    """
)
_SQLITE_READ_RANGE = text(
    f"SELECT 0 AS xid, {_COLUMNS} FROM events WHERE position > :position "
    "AND position <= :uposition ORDER BY position LIMIT :limit"
)

# Every event about a subject, or in the given streams (an operator's look-up: a scan).
_PG_READ_SUBJECT = text(
    f"""
    SELECT events.xid, {_COLUMNS.replace("data,", "CAST(data AS text),")}
    FROM events
    WHERE (subject = CAST(:subject AS text) OR stream_id = ANY(CAST(:streams AS text[])))
      AND time <= CAST(:as_of AS timestamptz) AND position > CAST(:after AS bigint)
    ORDER BY position
    LIMIT CAST(:limit AS integer)
    """
)
_SQLITE_READ_SUBJECT = text(
    f"SELECT 0, {_COLUMNS} FROM events WHERE (subject = :subject OR stream_id IN :streams) "
    "AND time <= :as_of AND position > :after ORDER BY position LIMIT :limit"
).bindparams(bindparam("streams", expanding=True))
_PG_DUPLICATES = (asyncpg.UniqueViolationError, IntegrityError)
_STREAM_VERSION = text(
    "SELECT COALESCE(MAX(stream_version), 0) FROM events WHERE stream_id = :stream_id"
)

_FAR_FUTURE = datetime(9999, 12, 31, tzinfo=UTC)
_NOT_AT_VERSION = ("the stream is not at that version, or its last event was written by a "
                   "transaction younger than this one")
_new_tuple = tuple.__new__
_STREAM_ID = itemgetter(Envelope._fields.index("stream_id"))


def _one_stream(events: Sequence[Envelope], stream_id: str) -> None:
    """Raise :class:`InvalidEventError` unless every event belongs to ``stream_id``."""
    if set(map(_STREAM_ID, events)) != {stream_id}:
        e = next(e for e in events if e.stream_id != stream_id)
        raise InvalidEventError(f"event {e.id} belongs to stream {e.stream_id!r}, "
                                f"not {stream_id!r}")


def _stored(e: Envelope, version: int, schema_version: int, position: int) -> Envelope:
    """``e`` as stored, built once as a tuple in Envelope's field order (not a chain of
    ``_replace``: a batch pays it per event)."""
    return _new_tuple(Envelope, (e[0], e[1], e[2], e[3], e[4], e[5], version, schema_version,
                                 e[8], e[9], e[10], e[11], e[12], position))


def _column_arrays(events: Sequence[Envelope], schema_versions: list[int], datas: list[str]
                   ) -> dict[str, list]:
    """The per-event arrays of the multi-row appends (_PG_APPEND, _PG_APPEND_NEW_STREAMS)."""
    return {"event_ids": [e.id for e in events], "types": [e.type for e in events],
            "schema_versions": schema_versions, "times": [e.time for e in events],
            "datas": datas, "sources": [e.source for e in events],
            "subjects": [e.subject for e in events],
            "correlation_ids": [e.correlation_id for e in events],
            "causation_ids": [e.causation_id for e in events],
            "traceparents": [e.traceparent for e in events]}


def _sqlite_time(t: datetime) -> str:
    # Fixed width, so that text comparison in SQL is time comparison.
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


class _PausedGC:
    """The cyclic garbage collector paused while a page of the log is read and decoded.

    A page is thousands of rows and as many envelopes (named tuples, which CPython never
    untracks), all alive until the page is returned: every 700 of them trigger a young
    collection that finds them alive, promotes them, and every few pages a full collection
    walks the whole heap. Measured on read_all of 50,000 events, that was two thirds of
    the gap to a raw cursor (docs/decisions/0035-batch-append-read-all-group-commit.md).
    Paused, reference counting still frees everything at once; the collector runs again
    when the outermost reader is done (the pauses nest: readers of several tasks or
    threads may overlap) and only if it was running before.
    """

    __slots__ = ()
    _lock = threading.Lock()
    _depth = 0
    _resume = False

    def __enter__(self) -> None:
        cls = _PausedGC
        with cls._lock:
            if cls._depth == 0:
                cls._resume = gc.isenabled()
                gc.disable()
            cls._depth += 1

    def __exit__(self, *exc) -> None:
        cls = _PausedGC
        with cls._lock:
            cls._depth -= 1
            if cls._depth == 0 and cls._resume:
                gc.enable()


_paused_gc = _PausedGC()


class EventStore:
    """Append-only event streams in one database, plus the ordered global log.

    ``registry`` validates payloads on append and upcasts old payloads on read.
    """

    def __init__(self, registry: EventRegistry, *, dialect: str,
                 traceparent: Callable[[], str | None] | None = None) -> None:
        """``traceparent``, if given, stamps appended events with the caller's current span
        (the request, or the consumer span of the event that caused them) whenever there
        is one: more precise than the cause's own traceparent that ``caused()`` copies."""
        if dialect not in ("postgresql", "sqlite"):
            raise ValueError(f"unsupported database dialect {dialect!r}")
        self.registry = registry
        self.pg = dialect == "postgresql"
        self.traceparent = traceparent

    # -- writing ------------------------------------------------------------------
    async def append(
        self,
        conn: Tx,
        stream_id: str,
        expected_version: int,
        events: Sequence[Envelope],
    ) -> list[Envelope]:
        """Append ``events`` to ``stream_id``, which must be at ``expected_version`` (0 = new).

        Returns the events with their stream versions and positions. Raises
        :class:`ConcurrencyError` when the stream has moved on (the caller's transaction
        is then unusable: roll back, reload, retry), :class:`InvalidEventError` or
        :class:`UnknownEventTypeError` when a payload breaks its contract.
        """
        if not events:
            return []
        if expected_version < 0:
            raise ValueError("expected_version must be >= 0")
        events = self.stamp(events)
        # Each payload is serialized once (orjson); the same bytes are validated (per event
        # type, the batch at once) and stored.
        dumps = orjson.dumps
        datas = [dumps(e.data) for e in events]
        schema_versions = self.registry.check_json_batch(events, datas)
        _one_stream(events, stream_id)
        texts = [d.decode() for d in datas]
        try:
            if self.pg:
                positions = await self._append_pg(conn, stream_id, expected_version, events,
                                                  schema_versions, texts)
            else:
                positions = await self._append_sqlite(conn, stream_id, expected_version,
                                                      events, schema_versions, texts)
        except _PG_DUPLICATES as exc:
            if "event_id" in str(exc):
                raise InvalidEventError(f"an event id is already stored: {exc}") from exc
            raise ConcurrencyError(stream_id, expected_version, "stream has moved on") from exc
        return [_stored(e, v, sv, positions[v])
                for v, e, sv in zip(range(expected_version + 1,
                                          expected_version + 1 + len(events)),
                                    events, schema_versions, strict=True)]

    def stamp(self, events: Sequence[Envelope]) -> Sequence[Envelope]:
        """``events`` stamped with the caller's current span, if the store was given a
        ``traceparent`` and there is one (:meth:`append` stamps what it appends)."""
        tp = self.traceparent() if self.traceparent is not None else None
        return [e._replace(traceparent=tp) for e in events] if tp is not None else events

    async def append_new_streams(self, conn: Tx, streams: Sequence[Sequence[Envelope]]
                                 ) -> list[list[Envelope]]:
        """Start several streams at once, each with its events (the first at version 1): one
        statement on PostgreSQL for what would be one :meth:`append` at version 0 each.

        For a group commit of commands that each begin a new stream. The envelopes keep the
        ``traceparent`` they carry: each command stamps its own in its request's context
        (:meth:`stamp`). Raises :class:`ConcurrencyError` when any of the streams exists
        (nothing is appended then), :class:`InvalidEventError` or
        :class:`UnknownEventTypeError` when a payload breaks its contract.
        """
        batches = [list(events) for events in streams if events]
        if not batches:
            return []
        for events in batches:
            _one_stream(events, events[0].stream_id)
        if len({events[0].stream_id for events in batches}) != len(batches):
            raise InvalidEventError("a stream is started twice in one batch")
        if not self.pg:
            return [await self.append(conn, events[0].stream_id, 0, events)
                    for events in batches]
        flat = [e for events in batches for e in events]
        datas = [orjson.dumps(e.data) for e in flat]
        schema_versions = self.registry.check_json_batch(flat, datas)
        versions = [v for events in batches for v in range(1, len(events) + 1)]
        try:
            rows = await conn.fetch(_PG_APPEND_NEW_STREAMS, {
                "stream_ids": [e.stream_id for e in flat], "versions": versions,
                **_column_arrays(flat, schema_versions, [d.decode() for d in datas])})
        except _PG_DUPLICATES as exc:
            if "event_id" in str(exc):
                raise InvalidEventError(f"an event id is already stored: {exc}") from exc
            raise ConcurrencyError(_STREAM_ID(flat[0]), 0,
                                   f"one of the {len(batches)} streams exists") from exc
        positions = {(r[1], r[2]): r[0] for r in rows}
        stored = [_stored(e, v, sv, positions[e[5], v])
                  for e, v, sv in zip(flat, versions, schema_versions, strict=True)]
        out: list[list[Envelope]] = []
        i = 0
        for events in batches:
            out.append(stored[i:i + len(events)])
            i += len(events)
        return out

    async def _append_pg(self, conn: Tx, stream_id, expected, events, schema_versions, datas
                         ) -> dict[int, int]:
        if len(events) == 1:
            e = events[0]
            rows = await conn.fetch(
                _PG_APPEND_ONE,
                {
                    "event_id": e.id,
                    "stream_id": stream_id,
                    "expected": expected,
                    "type": e.type,
                    "schema_version": schema_versions[0],
                    "time": e.time,
                    "data": datas[0],
                    "source": e.source,
                    "subject": e.subject,
                    "correlation_id": e.correlation_id,
                    "causation_id": e.causation_id,
                    "traceparent": e.traceparent,
                },
            )
        elif len(events) >= COPY_MIN_EVENTS:
            return await self._copy_pg(conn, stream_id, expected, events, schema_versions,
                                       datas)
        else:
            rows = await conn.fetch(_PG_APPEND, {
                "stream_id": stream_id, "expected": expected,
                **_column_arrays(events, schema_versions, datas)})
        positions = {version: position for position, version in rows}
        if not positions:
            raise ConcurrencyError(stream_id, expected, _NOT_AT_VERSION)
        return positions

    async def _copy_pg(self, conn: Tx, stream_id, expected, events, schema_versions, datas
                       ) -> dict[int, int]:
        if expected and not await conn.fetchval(
                _PG_PREDECESSOR, {"stream_id": stream_id, "expected": expected}):
            raise ConcurrencyError(stream_id, expected, _NOT_AT_VERSION)
        await conn.copy_rows("events", _PG_COPY_COLUMNS, [
            (e[0], stream_id, v, e[2], sv, e[4], d, e[1], e[3], e[9], e[10], e[11])
            for v, e, sv, d in zip(range(expected + 1, expected + 1 + len(events)), events,
                                   schema_versions, datas, strict=True)
        ])
        rows = await conn.fetch(_PG_COPIED, {"stream_id": stream_id, "expected": expected,
                                             "last": expected + len(events)})
        return {version: position for position, version in rows}

    async def _append_sqlite(self, conn: Tx, stream_id, expected, events, schema_versions,
                             datas) -> dict[int, int]:
        current = await conn.fetchval(_SQLITE_VERSION, {"stream_id": stream_id})
        if current != expected:
            raise ConcurrencyError(stream_id, expected, f"stream is at version {current}")
        positions: dict[int, int] = {}
        for version, e, schema_version, data in zip(
                range(expected + 1, expected + 1 + len(events)), events, schema_versions, datas,
                strict=True):
            positions[version] = await conn.fetchval(
                _SQLITE_INSERT,
                {
                    "event_id": e.id,
                    "stream_id": stream_id,
                    "stream_version": version,
                    "type": e.type,
                    "schema_version": schema_version,
                    "time": _sqlite_time(e.time),
                    "data": data,
                    "source": e.source,
                    "subject": e.subject,
                    "correlation_id": e.correlation_id,
                    "causation_id": e.causation_id,
                    "traceparent": e.traceparent,
                },
            )
        return positions

    # -- reading ------------------------------------------------------------------
    async def stream_version(self, conn: Tx, stream_id: str) -> int:
        """The stream's current version (0 when it has no events)."""
        return await conn.fetchval(_STREAM_VERSION, {"stream_id": stream_id})

    async def read_stream(
        self,
        conn: Tx,
        stream_id: str,
        *,
        after_version: int = 0,
        as_of: datetime | None = None,
        limit: int | None = None,
    ) -> list[Envelope]:
        """The stream's events after ``after_version`` in version order, upcast to their
        latest schemas; at most ``limit`` of them (a page: the next one starts after the
        last version returned).

        ``as_of`` keeps only events whose time is at or before it: the stream as it was
        known then ("what did the account look like on 1 March?").
        """
        as_of = as_of or _FAR_FUTURE
        if limit is not None and limit < 1:
            raise ValueError("limit must be >= 1")
        if self.pg:
            rows = await conn.fetch(
                _PG_READ_STREAM, {"stream_id": stream_id, "after": after_version,
                                  "as_of": as_of, "limit": limit}
            )
        else:
            rows = await conn.fetch(
                _SQLITE_READ_STREAM,
                {"stream_id": stream_id, "after": after_version, "as_of": _sqlite_time(as_of),
                 "limit": -1 if limit is None else limit},
            )
        return self._envelopes(rows)

    async def read_all(
        self,
        conn: Tx,
        after: LogCursor = START,
        *,
        limit: int = 1000,
        upcast: bool = True,
        decode_data: bool = True,
    ) -> LogPage:
        """Up to ``limit`` events after ``after`` in global-log order, and the cursor after them.

        With ``upcast=False`` payloads come back at their stored schema version; with
        ``decode_data=False`` also as the stored JSON text (``str``), which the relay
        forwards to Kafka verbatim (and implies ``upcast=False``). An empty page returns
        ``after`` unchanged.
        """
        with _paused_gc:
            if self.pg:
                rows = await conn.fetch(_PG_READ_ALL, {"xid": str(after.xid),
                                                       "position": after.position,
                                                       "limit": limit})
            else:
                rows = await conn.fetch(_SQLITE_READ_ALL, {"position": after.position,
                                                           "limit": limit})
            if not rows:
                return LogPage([], after)
            events = self._envelopes(rows, upcast=upcast, decode_data=decode_data)
            last = rows[-1]
            return LogPage(events, LogCursor(int(last[0]), last[1]))

    async def read_range(self, conn: Tx, after: LogCursor, until: LogCursor, *,
                         limit: int = 1000) -> LogPage:
        """Like :meth:`read_all`, but never past ``until`` (a checkpoint to catch up to)."""
        params = {"xid": str(after.xid), "position": after.position, "uxid": str(until.xid),
                  "uposition": until.position, "limit": limit}
        with _paused_gc:
            rows = await conn.fetch(_PG_READ_RANGE if self.pg else _SQLITE_READ_RANGE, params)
            if not rows:
                return LogPage([], after)
            last = rows[-1]
            return LogPage(self._envelopes(rows), LogCursor(int(last[0]), last[1]))

    async def read_subject(
        self,
        conn: Tx,
        subject: str,
        *,
        stream_ids: Sequence[str] = (),
        as_of: datetime | None = None,
        after_position: int = 0,
        limit: int | None = None,
    ) -> list[Envelope]:
        """Every event whose subject is ``subject`` or whose stream is one of ``stream_ids``,
        in position order, with positions, upcast; ``as_of`` as in :meth:`read_stream`.
        In pages: at most ``limit`` events after ``after_position`` (the next page starts
        after the last position returned).

        A scan of the log (no index on subject): for operators' look-ups, not handlers.
        """
        as_of = as_of or _FAR_FUTURE
        if limit is not None and limit < 1:
            raise ValueError("limit must be >= 1")
        streams = list(stream_ids) or [""]
        page = {"subject": subject, "streams": streams, "after": after_position}
        if self.pg:
            rows = await conn.fetch(_PG_READ_SUBJECT, {**page, "as_of": as_of, "limit": limit})
        else:
            rows = await conn.fetch(_SQLITE_READ_SUBJECT, {
                **page, "as_of": _sqlite_time(as_of), "limit": -1 if limit is None else limit})
        return self._envelopes(rows)

    async def reader_wait_seconds(self, conn: Tx) -> float:
        """How long the oldest open write transaction has been holding tailing readers back."""
        if not self.pg:
            return 0.0
        return float(await conn.fetchval(_PG_READER_WAIT))

    def _envelopes(self, rows, *, upcast: bool = True, decode_data: bool = True
                   ) -> list[Envelope]:
        """Envelopes from rows of (xid, *_COLUMNS); inlined, since replay runs it per event.

        Each row becomes its tuple in one step (``tuple.__new__``, not the named tuple's
        keyword ``__new__``), and the upcaster is only called when some (type, schema
        version) of the page is not its type's latest: one C-level pass over the page
        finds out (docs/decisions/0035-batch-append-read-all-group-commit.md). A value
        upcaster (``EventRegistry.add_value_upcaster``) is called for the events whose
        stored text has its marker (a substring search per row), or for every event when
        it has none.
        """
        loads = orjson.loads if decode_data else str
        new = _new_tuple
        env = Envelope
        # Rows unpacked in the loop header: cheaper than 13 subscripts of a Record.
        if self.pg:
            events = [
                new(env, (eid, src, typ, subj, tm, sid, sv, schv, loads(data), corr, caus, tp,
                          "application/json", pos))
                for _, pos, eid, sid, sv, typ, schv, tm, data, src, subj, corr, caus, tp in rows
            ]
        else:
            iso = datetime.fromisoformat
            events = [
                new(env, (eid, src, typ, subj, iso(tm), sid, sv, schv, loads(data), corr, caus,
                          tp, "application/json", pos))
                for _, pos, eid, sid, sv, typ, schv, tm, data, src, subj, corr, caus, tp in rows
            ]
        if upcast and decode_data:
            # the data's text is the row's 9th column (_COLUMNS after the xid)
            events = self.registry.upcast_page(events, [row[8] for row in rows])
        return events
