"""Event store behaviour, written once and run on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import gc
import random
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from libs.events import (
    START,
    ConcurrencyError,
    Envelope,
    EventRegistry,
    EventStore,
    InvalidEventError,
    LogCursor,
    UnknownEventTypeError,
)
from libs.events.store import COPY_MIN_EVENTS
from tests.conftest import BACKENDS, eventually
from tests.conftest import registry as kernel_contracts

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def noted(stream: str, n: int, time: datetime = T0) -> Envelope:
    return Envelope.new(type="test.Noted", data={"n": n}, stream_id=stream, source="tests",
                        time=time)


async def write_v1_row(db, stream: str, data_json: str) -> None:
    """A test.Renamed row at schema version 1, as an older release wrote it, straight into
    the table (version 1 of ``stream``)."""
    old = Envelope.new(type="test.Renamed", data={}, stream_id=stream, source="tests",
                       time=T0, schema_version=1)
    async with db.transaction() as tx:
        params = {"id": old.id, "time": old.time if db.is_postgres else old.time.isoformat(),
                  "data": data_json, "stream": stream}
        cast = "CAST(:data AS jsonb)" if db.is_postgres else ":data"
        await tx.execute(text(
            "INSERT INTO events (event_id, stream_id, stream_version, type, schema_version, time,"
            f" data, source, subject, correlation_id) VALUES (:id, :stream, 1, 'test.Renamed',"
            f" 1, :time, {cast}, 'tests', :stream, :id)"), params)


@BACKENDS
async def test_append_assigns_versions_and_reads_back_in_order(db, store):
    async with db.transaction() as tx:
        stored = await store.append(tx, "acc-1", 0, [noted("acc-1", i) for i in range(3)])
    assert [e.stream_version for e in stored] == [1, 2, 3]
    assert len({e.position for e in stored}) == 3
    async with db.connect() as conn:
        events = await store.read_stream(conn, "acc-1")
        assert [e.data["n"] for e in events] == [0, 1, 2]
        assert events[0].id == stored[0].id and events[0].time == T0
        assert await store.stream_version(conn, "acc-1") == 3


@BACKENDS
async def test_concurrency_conflict_on_stale_expected_version(db, store):
    async with db.transaction() as tx:
        await store.append(tx, "acc-1", 0, [noted("acc-1", 1)])
    for stale in (0, 2):  # behind and ahead of the real version (1)
        with pytest.raises(ConcurrencyError) as err:
            async with db.transaction() as tx:
                await store.append(tx, "acc-1", stale, [noted("acc-1", 2)])
        assert err.value.code == "concurrency-conflict"
    async with db.connect() as conn:
        assert await store.stream_version(conn, "acc-1") == 1


@BACKENDS
async def test_concurrent_writers_to_one_stream_exactly_one_wins(db, store):
    async def write(i: int) -> bool:
        try:
            async with db.transaction() as tx:
                await store.append(tx, "contested", 0, [noted("contested", i)])
            return True
        except ConcurrencyError:
            return False

    results = await asyncio.gather(*(write(i) for i in range(5)))
    assert results.count(True) == 1
    async with db.connect() as conn:
        assert await store.stream_version(conn, "contested") == 1


@BACKENDS
async def test_append_only_trigger_refuses_update_and_delete(db, store):
    async with db.transaction() as tx:
        await store.append(tx, "acc-1", 0, [noted("acc-1", 1)])
    for statement in ("UPDATE events SET type = 'tampered'", "DELETE FROM events"):
        with pytest.raises((DBAPIError, asyncpg.PostgresError), match="append-only"):
            async with db.transaction() as tx:
                await tx.execute(text(statement))
    async with db.connect() as conn:
        [event] = await store.read_stream(conn, "acc-1")
        assert event.type == "test.Noted"


@BACKENDS
async def test_invalid_payload_and_unknown_type_are_refused_and_nothing_is_stored(db, store):
    with pytest.raises(InvalidEventError):
        async with db.transaction() as tx:
            await store.append(tx, "acc-1", 0, [Envelope.new(
                type="test.Noted", data={"n": "not a number"}, stream_id="acc-1",
                source="tests", time=T0)])
    with pytest.raises(UnknownEventTypeError):
        async with db.transaction() as tx:
            await store.append(tx, "acc-1", 0, [Envelope.new(
                type="test.NeverDeclared", data={}, stream_id="acc-1", source="tests", time=T0)])
    async with db.connect() as conn:
        assert (await store.read_all(conn)).events == []


@BACKENDS
async def test_upcaster_applied_on_read(db, store):
    await write_v1_row(db, "acc-9", '{"name": "Tea House"}')
    async with db.connect() as conn:
        [event] = await store.read_stream(conn, "acc-9")
        assert event.schema_version == 2
        assert event.data == {"name": "Tea House", "normalised": "tea house"}
        # read_all stops at the gap-safe horizon, which a transaction open elsewhere on the
        # server (another database's, even) can hold back for a moment: poll
        events: list = []

        async def arrived() -> bool:
            nonlocal events
            events = (await store.read_all(conn, upcast=False)).events
            return bool(events)

        await eventually(arrived, timeout=10, what="the old row in read_all")
        [raw] = events
        assert raw.schema_version == 1


@BACKENDS
async def test_a_value_upcaster_applies_on_every_upcasting_read_path(db, store):
    """A value upcaster (``EventRegistry.add_value_upcaster``) runs after the schema
    upcasting on read_stream, read_all, read_range and read_subject, only for the events
    whose stored text has its marker; reads that do not upcast return what is stored."""
    registry = EventRegistry()
    registry.include(kernel_contracts)
    called: list[str] = []

    def renamed(e: Envelope) -> Envelope:
        called.append(e.id)
        data = {k: "new:" + v[4:] if isinstance(v, str) and v.startswith("old:") else v
                for k, v in e.data.items()}
        return e if data == e.data else e.with_data(data, e.schema_version)

    registry.add_value_upcaster("rename", renamed, marker='"old:')
    reading = EventStore(registry, dialect=db.dialect)
    await write_v1_row(db, "acc-v", '{"name": "old:Tea House"}')
    async with db.transaction() as tx:
        await store.append(tx, "acc-v", 1, [
            Envelope.new(type="test.Renamed", data={"name": "old:Inn", "normalised": "inn"},
                         stream_id="acc-v", source="tests", time=T0),
            Envelope.new(type="test.Renamed", data={"name": "Cafe", "normalised": "cafe"},
                         stream_id="acc-v", source="tests", time=T0)])
    expected = [{"name": "new:Tea House", "normalised": "new:tea house"},
                {"name": "new:Inn", "normalised": "inn"}, {"name": "Cafe", "normalised": "cafe"}]
    async with db.connect() as conn:
        assert [e.data for e in await reading.read_stream(conn, "acc-v")] == expected
        assert [e.data for e in await reading.read_subject(conn, "acc-v")] == expected
        assert len(called) == 4, "only the two events with the marker, per read"
        page = None

        async def arrived() -> bool:  # the gap-safe horizon may hold read_all back a moment
            nonlocal page
            page = await reading.read_all(conn)
            return len(page.events) == 3

        await eventually(arrived, timeout=10, what="three events in read_all")
        assert [e.data for e in page.events] == expected
        ranged = await reading.read_range(conn, START, page.cursor)
        assert [e.data for e in ranged.events] == expected
        raw = await reading.read_all(conn, upcast=False)
        assert [e.data["name"] for e in raw.events] == ["old:Tea House", "old:Inn", "Cafe"]
        text_only = await reading.read_all(conn, decode_data=False)
        assert all("old:" in e.data for e in text_only.events[:2])
    assert len(called) == 8  # read_all and read_range; none for the reads that do not upcast


@BACKENDS
async def test_read_stream_as_of_a_time(db, store):
    async with db.transaction() as tx:
        await store.append(tx, "acc-1", 0, [noted("acc-1", i, T0 + timedelta(days=i))
                                            for i in range(5)])
    async with db.connect() as conn:
        as_of = await store.read_stream(conn, "acc-1", as_of=T0 + timedelta(days=2, hours=1))
        assert [e.data["n"] for e in as_of] == [0, 1, 2]
        assert await store.read_stream(conn, "acc-1", as_of=T0 - timedelta(seconds=1)) == []


@BACKENDS
async def test_read_all_pages_through_the_log_once(db, store):
    for s in range(10):
        async with db.transaction() as tx:
            await store.append(tx, f"s{s}", 0, [noted(f"s{s}", i) for i in range(3)])
    seen, cursor = [], START
    async with db.connect() as conn:
        # an empty page can also mean "not safe to read yet" (a transaction open elsewhere
        # holds the horizon back): keep reading from the cursor until all 30 have come
        async def all_read() -> bool:
            nonlocal cursor
            while (page := await store.read_all(conn, cursor, limit=4)).events:
                seen.extend(page.events)
                cursor = page.cursor
            return len(seen) >= 30

        await eventually(all_read, timeout=10, what="30 events paged through read_all")
    assert len(seen) == 30 and len({e.id for e in seen}) == 30


@BACKENDS
async def test_gap_safe_tailing_under_concurrent_writers(db, store):
    """Writers commit in a random order unrelated to their positions while a reader tails;
    the reader must see every event exactly once and every stream in version order."""
    writers, appends_each = 8, 12
    done = asyncio.Event()
    seen: list[Envelope] = []

    async def writer(w: int) -> None:
        rnd = random.Random(w)
        for i in range(appends_each):
            async with db.transaction() as tx:
                await store.append(tx, f"w{w}", i, [noted(f"w{w}", i)])
                # Hold the transaction open after taking a position, so later
                # positions from other writers commit first.
                await asyncio.sleep(rnd.uniform(0, 0.03))

    async def reader() -> None:
        # Reads until it has every event (or the test's deadline ends it): a page can come
        # back empty while an older transaction anywhere in the cluster is still open.
        cursor = START
        while len(seen) < writers * appends_each:
            async with db.connect() as conn:
                page = await store.read_all(conn, cursor, limit=7)
            seen.extend(page.events)
            cursor = page.cursor
            await asyncio.sleep(0.001)

    naive_seen: set[str] = set()

    async def naive_reader() -> None:
        # What a tailer ordered by position alone would see: it remembers the highest
        # position read and asks for more, so a lower position committed later is lost.
        last = 0
        while not done.is_set():
            async with db.connect() as conn:
                rows = await conn.fetch(text(
                    "SELECT position, event_id FROM events WHERE position > :p "
                    "ORDER BY position LIMIT 7"), {"p": last})
            naive_seen.update(r[1] for r in rows)
            last = rows[-1][0] if rows else last
            await asyncio.sleep(0.001)

    tail = asyncio.create_task(reader())
    naive = asyncio.create_task(naive_reader())
    await asyncio.gather(*(writer(w) for w in range(writers)))
    done.set()
    await asyncio.wait_for(asyncio.gather(tail, naive), 30)

    ids = [e.id for e in seen]
    assert len(ids) == writers * appends_each
    assert len(set(ids)) == len(ids), "an event was read twice"
    for w in range(writers):
        versions = [e.stream_version for e in seen if e.stream_id == f"w{w}"]
        assert versions == list(range(1, appends_each + 1))
    if db.is_postgres:
        # The scenario really happened: the naive tailer, running alongside, lost events
        # that committed after a higher position had been read.
        assert len(naive_seen) < len(ids)


@BACKENDS
async def test_duplicate_event_id_is_refused(db, store):
    e = noted("acc-1", 1)
    async with db.transaction() as tx:
        await store.append(tx, "acc-1", 0, [e])
    with pytest.raises(InvalidEventError, match="already stored"):
        async with db.transaction() as tx:
            await store.append(tx, "acc-2", 0, [e._replace(stream_id="acc-2", subject="acc-2")])


async def test_log_order_is_numeric_across_a_power_of_ten_of_xids(db, store):
    """Regression: the log was once ordered by the xid's text ('1000' < '999'), which made a
    reader whose page ended past a power of ten skip every event just below it."""
    current = int(await _fetchval(db, "SELECT CAST(pg_current_xact_id() AS text)"))
    boundary = 10 ** (len(str(current - 2)) - 1)
    assert boundary >= 10
    xids = [boundary - 2, boundary - 1, boundary, boundary + 1]  # all committed long ago
    async with db.transaction() as tx:
        for i, xid in enumerate(xids, start=1):
            await tx.execute(text(
                "INSERT INTO events (xid, event_id, stream_id, stream_version, type,"
                " schema_version, time, data, source, subject, correlation_id) VALUES"
                " (CAST(CAST(:xid AS text) AS xid8), :id, 'acc-x', :v, 'test.Noted', 1, :t,"
                " CAST(:data AS jsonb), 'tests', 'acc-x', :id)"),
                {"xid": str(xid), "id": f"e{i}", "v": i, "t": T0, "data": f'{{"n": {i}}}'})
    seen, cursor = [], START
    async with db.connect() as conn:
        while (page := await store.read_all(conn, cursor, limit=2)).events:
            seen += [e.stream_version for e in page.events]
            cursor = page.cursor
    assert seen == [1, 2, 3, 4]


async def _fetchval(db, sql: str):
    async with db.transaction() as tx:
        return await tx.fetchval(text(sql))


# -- batch appends (ADR 0035): the COPY path keeps the single statement's semantics --------
BATCH_SIZES = pytest.mark.parametrize("size", [1, 3, COPY_MIN_EVENTS + 4])


@BACKENDS
@BATCH_SIZES
async def test_batch_append_versions_positions_and_stale_expected_versions(db, store, size):
    async with db.transaction() as tx:
        first = await store.append(tx, "acc-b", 0, [noted("acc-b", i) for i in range(size)])
    async with db.transaction() as tx:
        second = await store.append(tx, "acc-b", size,
                                    [noted("acc-b", size + i) for i in range(size)])
    stored = first + second
    assert [e.stream_version for e in stored] == list(range(1, 2 * size + 1))
    assert all(e.schema_version == 1 for e in stored)
    async with db.connect() as conn:
        read = await store.read_stream(conn, "acc-b")
    # Each returned event carries the position its row was given, and its own payload.
    assert [(e.id, e.position, e.data) for e in read] == \
        [(e.id, e.position, e.data) for e in stored]
    for stale in (0, size, 3 * size):  # behind, behind, ahead of 2 * size
        with pytest.raises(ConcurrencyError):
            async with db.transaction() as tx:
                await store.append(tx, "acc-b", stale,
                                   [noted("acc-b", 100 + i) for i in range(size)])
    async with db.connect() as conn:
        assert await store.stream_version(conn, "acc-b") == 2 * size


@BACKENDS
@BATCH_SIZES
async def test_batch_append_concurrent_writers_exactly_one_wins(db, store, size):
    async def write(w: int) -> bool:
        try:
            async with db.transaction() as tx:
                await store.append(tx, "contested", 0,
                                   [noted("contested", w * 1000 + i) for i in range(size)])
            return True
        except ConcurrencyError:
            return False

    assert sorted(await asyncio.gather(*(write(w) for w in range(4)))) == [False] * 3 + [True]
    async with db.connect() as conn:
        assert len(await store.read_stream(conn, "contested")) == size


@BACKENDS
@BATCH_SIZES
async def test_batch_append_refuses_a_bad_event_and_stores_none(db, store, size):
    good = [noted("acc-c", i) for i in range(size)]
    bad = Envelope.new(type="test.Noted", data={"n": "7"}, stream_id="acc-c", source="tests",
                       time=T0)  # strict: a string is not an int
    with pytest.raises(InvalidEventError, match=r"test\.Noted payload is invalid"):
        async with db.transaction() as tx:
            await store.append(tx, "acc-c", 0, [*good[:-1], bad])
    async with db.transaction() as tx:
        await store.append(tx, "acc-c", 0, good[:1])
    with pytest.raises(InvalidEventError, match="already stored"):
        async with db.transaction() as tx:  # an id already in the store, inside a batch
            await store.append(tx, "acc-d", 0, [
                e._replace(stream_id="acc-d", subject="acc-d") for e in good])
    with pytest.raises(InvalidEventError, match="belongs to stream"):
        async with db.transaction() as tx:
            await store.append(tx, "acc-c", 1, [*good[1:], noted("acc-x", 0)])
    async with db.connect() as conn:
        assert await store.stream_version(conn, "acc-c") == 1
        assert await store.stream_version(conn, "acc-d") == 0


@BATCH_SIZES
async def test_batch_append_after_an_event_of_a_younger_transaction_is_refused(
        db, store, size):
    """Gap safety (ADR 0001): a transaction that took its xid before the stream's last
    event was committed must not append after it, whatever the batch size, or the log
    would order its events before their predecessor."""
    async with db.transaction() as tx:
        await store.append(tx, "acc-y", 0, [noted("acc-y", 0)])
    with pytest.raises(ConcurrencyError):
        async with db.transaction() as older:
            await store.append(older, "elsewhere", 0, [noted("elsewhere", 0)])  # takes an xid
            async with db.transaction() as younger:
                await store.append(younger, "acc-y", 1, [noted("acc-y", 1)])
            await store.append(older, "acc-y", 2, [noted("acc-y", 2 + i) for i in range(size)])
    async with db.connect() as conn:
        assert await store.stream_version(conn, "acc-y") == 2


@BATCH_SIZES
async def test_a_transaction_appends_to_a_stream_it_already_appended_to(db, store, size):
    """One transaction may append after its own events (a consumer's batch carrying two
    events of one account, each appended by its handler): its later statement takes larger
    positions, so the log keeps the stream in version order. Only another transaction's
    younger event is refused (the test above)."""
    async with db.transaction() as tx:
        await store.append(tx, "acc-s", 0, [noted("acc-s", 0)])
        await store.append(tx, "acc-s", 1, [noted("acc-s", 1 + i) for i in range(size)])
        await store.append(tx, "acc-s", 1 + size, [noted("acc-s", 1 + size)])
    async with db.connect() as conn:
        assert await store.stream_version(conn, "acc-s") == size + 2
        log = [e for e in (await store.read_all(conn, limit=1000)).events
               if e.stream_id == "acc-s"]
    assert [e.data["n"] for e in log] == list(range(size + 2))
    assert [e.stream_version for e in log] == list(range(1, size + 3))


# -- read_all (ADR 0035): the collector is paused while a page is read, then resumed -------
class _WatchingTx:
    """A Tx that records whether the cyclic collector ran during each fetch."""

    def __init__(self, tx, seen: list[bool]) -> None:
        self.tx, self.seen, self.dialect = tx, seen, tx.dialect

    async def fetch(self, stmt, params=None):
        self.seen.append(gc.isenabled())
        await asyncio.sleep(0)  # another task may read meanwhile
        rows = await self.tx.fetch(stmt, params)
        self.seen.append(gc.isenabled())
        return rows


@BACKENDS
async def test_read_all_pauses_the_collector_and_restores_it(db, store):
    async with db.transaction() as tx:
        await store.append(tx, "acc-g", 0, [noted("acc-g", i) for i in range(5)])
    seen: list[bool] = []
    assert gc.isenabled()

    async def read(op):
        async with db.connect() as conn:
            return await op(_WatchingTx(conn, seen))

    # Overlapping readers: the first to finish must not resume the collector under the others.
    await asyncio.gather(read(store.read_all), read(store.read_all),
                         read(lambda t: store.read_range(t, START, LogCursor(2 ** 62))))
    assert gc.isenabled()
    assert len(seen) == 6 and not any(seen)
    async with db.connect() as conn:
        gc.disable()
        try:  # a collector the application turned off stays off
            await store.read_all(conn)
            assert not gc.isenabled()
        finally:
            gc.enable()


@BACKENDS
async def test_append_new_streams_starts_each_stream_at_version_one(db, store):
    batches = [[noted(f"new-{k}", i) for i in range(k + 1)] for k in range(3)]
    async with db.transaction() as tx:
        stored = await store.append_new_streams(tx, batches)
    assert [[e.stream_version for e in s] for s in stored] == [[1], [1, 2], [1, 2, 3]]
    assert [[e.id for e in s] for s in stored] == [[e.id for e in b] for b in batches]
    assert len({e.position for s in stored for e in s}) == 6
    async with db.connect() as conn:
        for k in range(3):
            events = await store.read_stream(conn, f"new-{k}")
            assert [(e.stream_version, e.data["n"]) for e in events] == [
                (i + 1, i) for i in range(k + 1)]
            assert [e.position for e in events] == [e.position for e in stored[k]]


@BACKENDS
async def test_append_new_streams_refuses_a_stream_that_exists_and_stores_nothing(db, store):
    async with db.transaction() as tx:
        await store.append(tx, "taken", 0, [noted("taken", 0)])
    with pytest.raises(ConcurrencyError):
        async with db.transaction() as tx:
            await store.append_new_streams(tx, [[noted("fresh", 0)], [noted("taken", 1)]])
    with pytest.raises(InvalidEventError):  # one batch, two streams
        async with db.transaction() as tx:
            await store.append_new_streams(tx, [[noted("a", 0), noted("b", 1)]])
    with pytest.raises(InvalidEventError):  # one stream started twice
        async with db.transaction() as tx:
            await store.append_new_streams(tx, [[noted("c", 0)], [noted("c", 1)]])
    async with db.connect() as conn:
        assert await store.read_stream(conn, "fresh") == []
        assert [e.data["n"] for e in await store.read_stream(conn, "taken")] == [0]
