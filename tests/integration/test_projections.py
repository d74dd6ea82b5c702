"""Projections fold the log deterministically: a rebuild gives the live state byte for byte."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from libs.events import DocumentProjection, Envelope, ProjectionRunner, ProjectionsRunner
from libs.events.checkpoints import hold_checkpoint, load_checkpoints
from tests.conftest import BACKENDS, eventually

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def account_summary(doc, event):
    doc = doc or {"events": 0, "total": 0, "last_version": 0, "names": []}
    if event.type == "test.Renamed":
        return {**doc, "events": doc["events"] + 1, "names": doc["names"] + [event.data["name"]],
                "last_version": event.stream_version}
    if event.data["n"] < 0:
        return None  # a closing event removes the document
    return {**doc, "events": doc["events"] + 1, "total": doc["total"] + event.data["n"],
            "last_version": event.stream_version}


async def append(db, store, stream, version, *events):
    async with db.transaction() as tx:
        await store.append(tx, stream, version, list(events))


def ev(stream, i, type_="test.Noted", **data):
    data = data or {"n": i}
    return Envelope.new(type=type_, data=data, stream_id=stream, source="tests",
                        time=T0 + timedelta(minutes=i))


@BACKENDS
async def test_rebuild_from_zero_gives_the_same_state_hash_as_live(db, store):
    projection = DocumentProjection("summary", account_summary)
    runner = ProjectionRunner(db=db, store=store, projection=projection, batch_size=5)
    for s in range(6):  # live: catch up between appends, in small pages
        await append(db, store, f"a{s}", 0, *[ev(f"a{s}", i) for i in range(4)])
        await runner.catch_up()
        await append(db, store, f"a{s}", 4, ev(f"a{s}", 9, "test.Renamed", name=f"名{s}",
                                              normalised=f"名{s}"))
        await runner.step()
    await append(db, store, "a0", 5, ev("a0", -1))

    async def settled() -> bool:
        # On PostgreSQL the log shows a commit once every older transaction in the cluster
        # has ended (the gap-safe horizon), so "caught up" is polled, not assumed.
        await runner.catch_up()
        async with db.connect() as conn:
            doc = await projection.get(conn, "a5")
            return doc is not None and doc["events"] == 5 and not await projection.get(conn, "a0")

    await eventually(settled, what="the projection to reach the end of the log")
    async with db.connect() as conn:
        live = await projection.state_hash(conn)
        assert await projection.get(conn, "a0") is None
        assert (await projection.get(conn, "a3")) == {
            "events": 5, "total": 6, "last_version": 5, "names": ["名3"]}

    assert await runner.rebuild() == 31
    async with db.connect() as conn:
        assert await projection.state_hash(conn) == live

    other = DocumentProjection("summary-copy", account_summary)
    await ProjectionRunner(db=db, store=store, projection=other, batch_size=1000).catch_up()
    async with db.connect() as conn:
        assert await other.state_hash(conn) == live, "page size must not change the state"


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_two_runners_of_one_projection_fold_each_event_once(db, store):
    """Two worker processes each run the projection: the documents count every event once."""
    projection = DocumentProjection("summary", account_summary)
    runners = [ProjectionRunner(db=db, store=store, projection=projection, batch_size=3)
               for _ in range(2)]
    for s in range(8):
        await append(db, store, f"b{s}", 0, *[ev(f"b{s}", i) for i in range(1, 6)])

    async def settled() -> bool:
        await asyncio.gather(*(r.catch_up() for r in runners))
        async with db.connect() as conn:
            docs = [await projection.get(conn, f"b{s}") for s in range(8)]
        return all(d is not None and d["last_version"] == 5 for d in docs)

    await eventually(settled, what="both runners to reach the end of the log")
    async with db.connect() as conn:
        for s in range(8):
            assert (await projection.get(conn, f"b{s}"))["events"] == 5


def events_seen(doc, event):
    """A second projection over the same events: the ids it saw, in log order."""
    doc = doc or {"seen": []}
    return {"seen": doc["seen"] + [event.id]}


@BACKENDS
async def test_one_runner_folds_each_page_into_every_projection_as_separate_runners_would(
        db, store):
    """ProjectionsRunner (ADR 0046): one read per page, the same documents and the same
    checkpoints as one ProjectionRunner per projection."""
    together = [DocumentProjection("summary", account_summary),
                DocumentProjection("seen", events_seen)]
    apart = [DocumentProjection("summary-apart", account_summary),
             DocumentProjection("seen-apart", events_seen)]
    runner = ProjectionsRunner(db=db, store=store, projections=together, batch_size=4)
    for s in range(5):
        await append(db, store, f"c{s}", 0, *[ev(f"c{s}", i) for i in range(1, 4)])
        await runner.step()  # pages of at most 4 events, between appends
    await append(db, store, "c0", 3, ev("c0", -1))

    async def settled() -> bool:
        await runner.catch_up()
        async with db.connect() as conn:
            return (await together[0].get(conn, "c4") is not None
                    and await together[0].get(conn, "c0") is None)

    await eventually(settled, what="the projections to reach the end of the log")
    for p in apart:
        await ProjectionRunner(db=db, store=store, projection=p, batch_size=1000).catch_up()
    async with db.connect() as conn:
        for mine, theirs in zip(together, apart, strict=True):
            assert await mine.state_hash(conn) == await theirs.state_hash(conn)
        cursors = await load_checkpoints(conn, runner.checkpoints)
        assert len(set(cursors.values())) == 1, cursors
        assert set(cursors.values()) == set(
            (await load_checkpoints(conn, [f"projection:{p.name}" for p in apart])).values())
        assert (await together[0].get(conn, "c2"))["events"] == 3


@BACKENDS
async def test_a_projection_behind_the_others_catches_up_and_then_moves_with_them(db, store):
    """One projection rebuilt from zero (its checkpoint reset) while the other is at the end:
    the runner folds pages into the one behind only, and the two end at one checkpoint."""
    summary, seen = (DocumentProjection("summary", account_summary),
                     DocumentProjection("seen", events_seen))
    for s in range(4):
        await append(db, store, f"d{s}", 0, *[ev(f"d{s}", i) for i in range(1, 4)])
    await eventually(lambda: _caught_up(ProjectionRunner(db=db, store=store, projection=seen),
                                        db, seen, "d3"),
                     what="the projection 'seen' to reach the end of the log alone")
    async with db.connect() as conn:
        seen_before = await seen.state_hash(conn)

    runner = ProjectionsRunner(db=db, store=store, projections=[summary, seen], batch_size=5)
    assert await runner.step() == 5  # from the start of the log, for 'summary' only
    async with db.connect() as conn:
        assert await seen.state_hash(conn) == seen_before, "the one ahead is left alone"
    await eventually(lambda: _caught_up(runner, db, summary, "d3"),
                     what="the projection 'summary' to catch up")
    await append(db, store, "d0", 3, ev("d0", 7))
    await eventually(lambda: _seen(runner, db, seen, "d0", 4),
                     what="both to fold the new event")
    async with db.connect() as conn:
        assert (await summary.get(conn, "d0"))["events"] == 4
        assert len(set((await load_checkpoints(conn, runner.checkpoints)).values())) == 1


async def _caught_up(runner, db, projection, key) -> bool:
    await runner.catch_up()
    async with db.connect() as conn:
        return await projection.get(conn, key) is not None


async def _seen(runner, db, projection, key, n) -> bool:
    await runner.catch_up()
    async with db.connect() as conn:
        doc = await projection.get(conn, key)
        return doc is not None and len(doc["seen"]) == n


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_a_projection_held_by_another_worker_holds_the_whole_step(db, store):
    """While a single-projection runner (an operator's catch-up) holds one of the
    checkpoints, the runner of all of them folds nothing, rather than folding the others."""
    summary, seen = (DocumentProjection("summary", account_summary),
                     DocumentProjection("seen", events_seen))
    await append(db, store, "e0", 0, ev("e0", 1))
    runner = ProjectionsRunner(db=db, store=store, projections=[summary, seen])
    async with db.transaction() as tx:
        assert await hold_checkpoint(tx, "projection:seen")
        assert await runner.step() == 0
    await eventually(lambda: _seen(runner, db, seen, "e0", 1), what="the runner to fold")
