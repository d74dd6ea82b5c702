"""Aggregate snapshots (libs.events.snapshots) on both databases: a state loaded from a
snapshot is the state a full replay gives, and a snapshot of another schema is never used."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from libs.domain import IllegalTransitionError
from libs.events import Envelope, EventStore, Snapshots, Streams
from libs.events.contracts import all_contracts
from libs.events.contracts._common import CAPABILITIES
from services.registration.domain import ACCOUNT_SCHEMA, Account, ProfileChange, evolve
from services.registration.handlers import account_streams
from services.registration.rules import CREDIT_WITHHELD
from tests.conftest import BACKENDS, Noted
from tests.registration_support import submitted

pytestmark = pytest.mark.postgres
T0 = datetime(2026, 1, 1, tzinfo=UTC)
class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


async def snapshot_row(db, stream_id: str):
    async with db.connect() as conn:
        return await conn.fetchrow(text(
            "SELECT schema_version, stream_version FROM snapshots WHERE stream_id = :s"),
            {"s": stream_id})


# -- the state from a snapshot is the state of a full replay -----------------------------
def _until(days: int | None, clock: Clock) -> datetime | None:
    return None if days is None else clock.now + timedelta(days=days)


STEPS = st.one_of(
    st.tuples(st.just("activate")),
    st.tuples(st.just("activity")),
    st.tuples(st.just("suspend"), st.sampled_from(["self_requested", "m1"]),
              st.one_of(st.none(), st.integers(1, 30))),
    st.tuples(st.just("reinstate"), st.sampled_from(["self_requested", "m1", "inactivity"])),
    st.tuples(st.just("restrict"), st.sampled_from(["r1", "r2"]),
              st.lists(st.sampled_from(CAPABILITIES), min_size=1, max_size=3),
              st.one_of(st.none(), st.integers(1, 30))),
    st.tuples(st.just("lift"), st.sampled_from(["r1", "r2", "m1", "b1"])),
    st.tuples(st.just("credit"), st.sampled_from("ABCDE")),
    st.tuples(st.just("correction"), st.integers(1, 20)),
    st.tuples(st.just("ban"), st.one_of(st.none(), st.integers(30, 400))),
    st.tuples(st.just("profile"), st.text("健康小站ab", min_size=1, max_size=6)),
    st.tuples(st.just("apply_profile")),
    st.tuples(st.just("agreement"), st.sampled_from(["2025-01", "2026-01"])),
    st.tuples(st.just("warn")),
    st.tuples(st.just("time"), st.integers(0, 200)),
    st.tuples(st.just("close")),
)


def decision(step: tuple, clock: Clock):
    """The command a step stands for, as a decision on the account."""
    name, *args = step

    def decide(acc: Account):
        if name == "activate":
            return acc.activate(evidence=["v"])
        if name == "activity":
            return acc.record_activity(kind="login")
        if name == "suspend":
            reason = "enforcement" if args[0] == "m1" else args[0]
            return acc.suspend(suspension_id=args[0], reason=reason,
                               until=_until(args[1], clock), legal_basis=["A19.2"])
        if name == "reinstate":
            return acc.reinstate(suspension_id=args[0], legal_basis=["A11.3"])
        if name == "restrict":
            return acc.restrict(restriction_id=args[0], capabilities=args[1],
                                until=_until(args[2], clock), legal_basis=["A19.2"],
                                evidence=[])
        if name == "lift":
            return acc.lift(measure_id=args[0], legal_basis=["A20.2"], evidence=[])
        if name == "credit":
            return acc.apply_credit_level(level=args[0], withheld=CREDIT_WITHHELD[args[0]],
                                          evidence=[])
        if name == "correction":
            return acc.request_correction(deadline=clock.now + timedelta(days=args[0]),
                                          findings=[], evidence=[], legal_basis=["A8.2"])
        if name == "ban":
            return acc.ban(measure_id="b1", severity="grave", until=_until(args[0], clock),
                           keys=acc.ban_keys, legal_basis=["A8.3"], evidence=[])
        if name == "profile":
            return acc.submit_profile_change(change_id=str(uuid.uuid4()),
                                             change=ProfileChange(name=args[0]))
        if name == "apply_profile":
            if not acc.pending_changes:
                return []
            return acc.apply_profile_change(change_id=sorted(acc.pending_changes)[0],
                                            evidence=[])
        if name == "agreement":
            return acc.accept_agreement(version=args[0])
        if name == "warn":
            return acc.warn(measure_id="w", legal_basis=["A19.1"], evidence=[])
        if name == "time":
            clock.now += timedelta(days=args[0])
            return acc.sweep(now=clock.now, inactivity_months=6)
        return acc.close(reason="enforcement", legal_basis=["A19.2"])

    return decide


@BACKENDS
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(steps=st.lists(STEPS, min_size=1, max_size=30), every=st.integers(1, 7))
async def test_an_account_loaded_from_its_snapshot_equals_the_full_replay(db, steps, every):
    store = EventStore(all_contracts(), dialect=db.dialect)
    clock = Clock()
    snapped = account_streams(store, clock, snapshot_every=every)
    full = account_streams(store, clock, snapshot_every=0)
    account_id = str(uuid.uuid4())
    async with db.transaction() as tx:
        await snapped.append(tx, account_id, 0, [submitted(account_id)])
    for step in steps:
        try:
            async with db.transaction() as tx:
                await snapped.decide(tx, account_id, decision(step, clock))
        except IllegalTransitionError:
            continue
        async with db.connect() as conn:
            from_snapshot = await snapped.load(conn, account_id)
            replayed = await full.load(conn, account_id)
            snap = await snapped.snapshots.read(conn, f"account-{account_id}")
            events = await store.read_stream(conn, f"account-{account_id}")
        assert from_snapshot == replayed, step
        if snap is not None:  # the snapshot itself is the fold up to its version
            assert snap.state == full.fold(events[:snap.version])


async def _read(db, store: EventStore, account_id: str) -> list[Envelope]:
    async with db.connect() as conn:
        return await store.read_stream(conn, f"account-{account_id}")


@BACKENDS
async def test_a_long_stream_is_loaded_from_its_snapshot_and_the_rest(db):
    """A command reads the snapshot and fewer than ``every`` events, whatever the length."""
    store = EventStore(all_contracts(), dialect=db.dialect)
    accounts = account_streams(store, snapshot_every=10)
    account_id = str(uuid.uuid4())
    async with db.transaction() as tx:
        await accounts.append(tx, account_id, 0, [submitted(account_id)])
    async with db.transaction() as tx:
        await accounts.decide(tx, account_id, lambda a: a.activate(evidence=[]))
    for _ in range(33):
        async with db.transaction() as tx:
            await accounts.decide(tx, account_id, lambda a: a.record_activity(kind="login"))
    assert tuple(await snapshot_row(db, f"account-{account_id}")) == (ACCOUNT_SCHEMA, 30)
    read: list[int] = []
    original = store.read_stream

    async def counting(conn, stream_id, **kw):
        events = await original(conn, stream_id, **kw)
        read.append(len(events))
        return events

    store.read_stream = counting  # type: ignore[method-assign]
    async with db.connect() as conn:
        acc = await accounts.load(conn, account_id)
    assert acc.version == 35 and read == [5]


# -- a snapshot of another schema is ignored, and rebuilt --------------------------------
@dataclass(frozen=True)
class Tally:
    total: int = 0
    version: int = 0


def tally_v1(state: Tally | None, e: Envelope) -> Tally:
    return Tally((state or Tally()).total + e.data["n"], e.stream_version)


def tally_v2(state: Tally | None, e: Envelope) -> Tally:
    """Schema 2 of the same aggregate: the fold changed (a total of tens)."""
    return Tally((state or Tally()).total + 10 * e.data["n"], e.stream_version)


def tallies(store, evolve_, schema_version: int | None) -> Streams[Tally]:
    snaps = (Snapshots(Tally, schema_version=schema_version, every=5)
             if schema_version else None)
    return Streams(store, source="/test", stream_id=lambda k: f"tally-{k}", evolve=evolve_,
                   clock=lambda: T0, snapshots=snaps)


@BACKENDS
async def test_a_snapshot_taken_under_an_old_schema_is_not_used_and_is_rebuilt(db, store):
    v1 = tallies(store, tally_v1, 1)
    key = uuid.uuid4().hex
    for n in range(1, 13):  # 12 events: a schema-1 snapshot at version 10
        async with db.transaction() as tx:
            await v1.decide(tx, key, lambda _, n=n: [Noted(n=n)])
    assert tuple(await snapshot_row(db, f"tally-{key}")) == (1, 10)

    v2, v2_full = tallies(store, tally_v2, 2), tallies(store, tally_v2, None)
    async with db.connect() as conn:
        assert await v2.snapshots.read(conn, f"tally-{key}") is None  # not schema 2's
        loaded, replayed = await v2.load(conn, key), await v2_full.load(conn, key)
    assert loaded == replayed == Tally(780, 12)  # 10 * (1 + ... + 12), not 55 + 10 * 23

    async with db.transaction() as tx:  # the next command rebuilds it under schema 2
        await v2.decide(tx, key, lambda _: [Noted(n=13)])
    assert tuple(await snapshot_row(db, f"tally-{key}")) == (2, 13)
    async with db.connect() as conn:
        snap = await v2.snapshots.read(conn, f"tally-{key}")
        assert snap.state == Tally(910, 13) == await v2_full.load(conn, key)
        # and schema 1, back again (a rolled-back deploy), ignores schema 2's snapshot
        assert await v1.snapshots.read(conn, f"tally-{key}") is None
        assert await v1.load(conn, key) == Tally(91, 13)


@BACKENDS
async def test_an_account_snapshot_of_an_older_account_schema_is_not_used(db):
    """The registration aggregate: a snapshot written under ``ACCOUNT_SCHEMA`` is read as
    long as that is the schema, and ignored by the next one."""
    store = EventStore(all_contracts(), dialect=db.dialect)
    current = account_streams(store, snapshot_every=3)
    account_id = str(uuid.uuid4())
    stream = f"account-{account_id}"
    async with db.transaction() as tx:
        await current.append(tx, account_id, 0, [submitted(account_id)])
    async with db.transaction() as tx:
        await current.decide(tx, account_id, lambda a: a.activate(evidence=[]))
    async with db.transaction() as tx:
        await current.decide(tx, account_id, lambda a: a.record_activity(kind="login"))
    assert tuple(await snapshot_row(db, stream)) == (ACCOUNT_SCHEMA, 3)
    # Mark the snapshot (a state no replay gives) to see which load reads it.
    async with db.transaction() as tx:
        snap = await current.snapshots.read(tx, stream)
        await current.snapshots.save(tx, stream, replace(snap.state, warnings=99), 4)
        await tx.execute(text("UPDATE snapshots SET stream_version = 3 WHERE stream_id = :s"),
                         {"s": stream})
    newer = Streams(store, source="/registration", stream_id=lambda k: f"account-{k}",
                    evolve=evolve, clock=lambda: T0,
                    snapshots=Snapshots(Account, schema_version=ACCOUNT_SCHEMA + 1, every=3))
    async with db.connect() as conn:
        assert (await current.load(conn, account_id)).warnings == 99  # read under its schema
        assert (await newer.load(conn, account_id)).warnings == 0  # ignored by the next
    async with db.transaction() as tx:
        await newer.decide(tx, account_id, lambda a: a.record_activity(kind="login"))
    assert tuple(await snapshot_row(db, stream)) == (ACCOUNT_SCHEMA + 1, 4)
    async with db.connect() as conn:
        assert (await newer.load(conn, account_id)).warnings == 0

