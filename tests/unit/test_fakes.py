"""The in-memory store and fake broker keep the real parts' contracts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from libs.events import ConcurrencyError, Envelope, LogCursor
from libs.events.testing import FakeBroker, InMemoryEventStore
from tests.conftest import registry

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def noted(stream: str, n: int) -> Envelope:
    return Envelope.new(type="test.Noted", data={"n": n}, stream_id=stream, source="t", time=T0)


async def test_in_memory_store_conflicts_and_pages_like_the_real_one():
    store = InMemoryEventStore(registry)
    await store.append(None, "a", 0, [noted("a", 1), noted("a", 2)])
    with pytest.raises(ConcurrencyError):
        await store.append(None, "a", 1, [noted("a", 3)])
    await store.append(None, "b", 0, [noted("b", 1)])
    page = await store.read_all(None, limit=2)
    assert [e.stream_version for e in page.events] == [1, 2]
    rest = await store.read_all(None, page.cursor)
    assert [e.stream_id for e in rest.events] == ["b"]
    assert (await store.read_all(None, rest.cursor)).cursor == rest.cursor


async def test_fake_broker_keeps_key_order_and_committed_offsets_per_group():
    broker = FakeBroker()
    producer = broker.producer()
    for i in range(6):
        await producer.send("t", value=str(i).encode(), key=b"k1" if i % 2 else b"k2")
    c = broker.consumer("g", "t")
    await c.start()
    got = await c.getmany(max_records=100)
    values = {tp.partition: [r.value for r in recs] for tp, recs in got.items()}
    assert sorted(v for vs in values.values() for v in vs) == [str(i).encode() for i in range(6)]
    for vs in values.values():
        assert vs == sorted(vs)
    await c.commit({tp: recs[-1].offset + 1 for tp, recs in got.items()})
    again = broker.consumer("g", "t")
    await again.start()
    assert await again.getmany(timeout_ms=1) == {}


def test_log_cursor_text_form():
    assert LogCursor.parse(str(LogCursor(12, 34))) == LogCursor(12, 34)
    assert LogCursor.parse("7") == LogCursor(0, 7)
    with pytest.raises(ValueError, match="xid:position"):
        LogCursor.parse("seven")


def test_sqlalchemy_url_becomes_an_asyncpg_dsn():
    from libs.events.db import asyncpg_dsn

    assert asyncpg_dsn("postgresql+asyncpg://u@h:5/db?ssl=require&application_name=x") == (
        "postgresql://u@h:5/db?sslmode=require&application_name=x")
    assert asyncpg_dsn("postgresql+asyncpg://u@h/db") == "postgresql://u@h/db"
