"""Load, decide, append (libs.events.Streams) and the conflict retry, on both backends."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from pydantic import BaseModel

from libs.events import ConcurrencyError, Envelope, Streams, transact
from libs.runtime.idempotency import run_idempotent
from tests.conftest import BACKENDS, Noted

pytestmark = pytest.mark.postgres
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Tally:
    total: int
    version: int


def evolve(state: Tally | None, e: Envelope) -> Tally:
    return Tally((state.total if state else 0) + e.data["n"], e.stream_version)


def tallies(store) -> Streams[Tally]:
    return Streams(store, source="/test", stream_id=lambda k: f"tally-{k}", evolve=evolve,
                   clock=lambda: T0)


@BACKENDS
async def test_decide_loads_appends_at_the_version_read_and_folds_the_result(db, store):
    streams = tallies(store)
    async with db.transaction() as tx:
        first = await streams.decide(tx, "a", lambda s: [Noted(n=1), Noted(n=2)])
    async with db.transaction() as tx:
        second = await streams.decide(tx, "a", lambda s: [Noted(n=s.total * 10)])
    assert first.before is None and first.after == Tally(3, 2)
    assert second.before == Tally(3, 2) and second.after == Tally(33, 3)
    assert second.types == ["test.Noted"]
    async with db.connect() as conn:
        stored = await store.read_stream(conn, "tally-a")
    assert [e.data["n"] for e in stored] == [1, 2, 30]
    assert all(e.subject == "a" and e.source == "/test" for e in stored)


@BACKENDS
async def test_a_commands_events_share_one_causal_chain_and_follow_their_cause(db, store):
    streams = tallies(store)
    cause = Envelope.new(type="other.Happened", data={}, stream_id="x", source="/other",
                         time=T0, traceparent=None)
    async with db.transaction() as tx:
        own = await streams.decide(tx, "b", lambda s: [Noted(n=1), Noted(n=1)])
        caused = await streams.decide(tx, "c", lambda s: [Noted(n=1), Noted(n=1)], cause=cause)
    first, second = own.events
    assert first.causation_id is None and first.correlation_id == first.id
    assert second.causation_id == first.id and second.correlation_id == first.id
    assert all(e.causation_id == cause.id and e.correlation_id == cause.correlation_id
               for e in caused.events)


@BACKENDS
async def test_a_decision_of_nothing_appends_nothing(db, store):
    streams = tallies(store)
    async with db.transaction() as tx:
        changed = await streams.decide(tx, "d", lambda s: [])
    assert changed.events == [] and changed.after is None


# PostgreSQL only: SQLite has one writer, so no second transaction can get in between.
async def test_transact_runs_the_work_again_when_the_stream_moved_on(db, store):
    streams = tallies(store)
    async with db.transaction() as tx:
        await streams.decide(tx, "e", lambda s: [Noted(n=1)])
    runs: list[int] = []

    async def work(tx):
        state = await streams.load(tx, "e")
        runs.append(state.version)
        if len(runs) == 1:  # another writer gets in between our read and our append
            async with db.transaction() as other:
                await streams.append(other, "e", state.version, [Noted(n=5)])
        return await streams.append(tx, "e", state.version, [Noted(n=100)])

    stored = await transact(db, work)
    assert runs == [1, 2] and stored[0].stream_version == 3
    async with db.connect() as conn:
        assert (await streams.load(conn, "e")).total == 106


@BACKENDS
async def test_transact_gives_up_after_its_attempts(db, store):
    calls: list[int] = []

    async def always_conflicting(tx):
        calls.append(1)
        raise ConcurrencyError("s", 1, "stream has moved on")

    with pytest.raises(ConcurrencyError):
        await transact(db, always_conflicting, attempts=3)
    assert len(calls) == 3


class Counted(BaseModel):
    stream_version: int
    total: int


@BACKENDS
async def test_idempotency_keeps_a_typed_result_and_retries_a_conflict(db, store):
    streams = tallies(store)
    conflicts = 0

    async def work(tx) -> Counted:
        nonlocal conflicts
        changed = await streams.decide(tx, "f", lambda s: [Noted(n=2)])
        if conflicts == 0:
            conflicts += 1
            raise ConcurrencyError("tally-f", 0, "moved on")  # rolls the claim back too
        return Counted(stream_version=changed.after.version, total=changed.after.total)

    first = await run_idempotent(db, "k-1", scope="tally", digest="d", work=work,
                                 result=Counted)
    again = await run_idempotent(db, "k-1", scope="tally", digest="d", work=work,
                                 result=Counted)
    assert first == again == Counted(stream_version=1, total=2)
    assert isinstance(again, Counted)
    async with db.connect() as conn:
        assert len(await store.read_stream(conn, "tally-f")) == 1


async def test_concurrent_decisions_on_one_stream_all_land_once(db, store):
    """PostgreSQL: four writers race on one stream; each conflict is retried."""
    streams = tallies(store)

    async def add(n: int):
        return await transact(db, lambda tx: streams.decide(tx, "g", lambda s: [Noted(n=n)]),
                              attempts=10)

    await asyncio.gather(*(add(n) for n in (1, 2, 4, 8)))
    async with db.connect() as conn:
        state = await streams.load(conn, "g")
    assert state.total == 15 and state.version == 4
