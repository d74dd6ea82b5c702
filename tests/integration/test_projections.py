"""Projections fold the log deterministically: a rebuild gives the live state byte for byte."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from libs.events import DocumentProjection, Envelope, ProjectionRunner
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
