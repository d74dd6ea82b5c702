"""Hot statements keep plans that find their rows by index as a young table grows (ADR 0047).

PostgreSQL plans a prepared statement (asyncpg prepares every statement) for its parameters
five times, then may keep one generic plan for the connection's life, chosen on the table's
size at that moment. Made while a table is near empty, that plan is a sequential scan, and
it goes on scanning the whole table as the table grows, until an ANALYZE invalidates it.
Each test here runs the statements on one connection while the table is small, lets the
table grow, and reads the plan that connection then uses.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from libs.events import Database, Envelope, ProjectionsRunner, Relay
from libs.events.projections import DocumentProjection
from libs.runtime.idempotency import (
    Answer,
    claim_many,
    fingerprint,
    remember_many,
    run_idempotent,
)
from tests.conftest import eventually

pytestmark = pytest.mark.postgres

T0 = datetime(2026, 3, 1, tzinfo=UTC)
# A literal of each parameter type the statements below take, to EXPLAIN a cached plan.
_LITERALS = {"text": "'x'", "integer": "1", "bigint": "1",
             "timestamp with time zone": "now()", "text[]": "'{x}'", "integer[]": "'{1}'"}


async def _prepared(conn, marker: str) -> list[tuple[str, str, list[str], int, int]]:
    """The connection's prepared statements whose text holds ``marker``: name, text,
    parameter types, generic and custom plans used so far."""
    rows = await conn.conn.fetch(
        "SELECT name, statement, parameter_types::text[], generic_plans, custom_plans "
        "FROM pg_prepared_statements WHERE strpos(statement, $1) > 0", marker)
    return [tuple(r) for r in rows]


async def _plan(conn, name: str, types: list[str]) -> str:
    args = ", ".join(_LITERALS[t] for t in types)
    rows = await conn.conn.fetch(f"EXPLAIN EXECUTE {name}({args})")
    return "\n".join(r[0] for r in rows)


async def test_a_kept_answer_is_written_and_read_by_key_however_much_the_table_grew(
        database_url):
    db = Database(database_url, pool_size=1)  # one connection: its plans are the ones read

    async def work(tx) -> Answer:
        return Answer(202, {"ok": True})

    async def group(prefix: str) -> None:  # a group commit's two members (writer.py)
        keys = [(f"{prefix}-{m}", fingerprint(prefix, m)) for m in range(2)]
        async with db.transaction() as tx:
            assert await claim_many(tx, scope="things", keys=keys) == {k for k, _ in keys}
            await remember_many(tx, scope="things", answers=[
                (k, d, Answer(202, {"ok": True})) for k, d in keys])

    try:
        for i in range(16):
            if i == 8:  # the young table analyzed, as autovacuum does after its first rows
                async with db.connect() as conn:
                    await conn.conn.execute("ANALYZE idempotency_keys")
            # past the five custom plans after the statistics changed
            for _ in range(2):  # the command, then a retry that recalls its answer
                await run_idempotent(db, f"early-{i}", scope="things",
                                     digest=fingerprint(i), work=work)
            await group(f"early-{i}")
        async with db.transaction() as tx:  # 5,000 other keys arrive
            await tx.conn.execute(
                "INSERT INTO idempotency_keys (scope, key, fingerprint, status, body, "
                "created_at) SELECT 'things', 'other-' || n, 'f', 202, '{}', now() "
                "FROM generate_series(1, 5000) AS n")
        for _ in range(2):
            await run_idempotent(db, "late", scope="things", digest=fingerprint("late"),
                                 work=work)
        await group("late")
        async with db.connect() as conn:
            statements = await _prepared(conn, "idempotency_keys")
            # what every keyed command runs, alone or in a group: its claim, and its answer
            # kept with its effects
            writes = [s for s in statements if not s[1].lstrip().startswith("SELECT")]
            assert len(writes) == 4, statements
            for name, sql, types, _, _ in writes:
                plan = await _plan(conn, name, types)
                # no read of the table at all: the unique index's conflict check finds the row
                assert not re.search(r"Scan .*\bon idempotency_keys\b", plan), (sql, plan)
            # a retry's look-up of the kept answer: planned for its key every time
            recalls = [s for s in statements if s[1].lstrip().startswith("SELECT")]
            assert [(g, c >= 17) for *_, g, c in recalls] == [(0, True)], recalls
    finally:
        await db.dispose()


_DOCS = text("SELECT count(*) FROM projection_documents WHERE projection = 'counts'")


def _counts() -> DocumentProjection:
    return DocumentProjection("counts", lambda doc, e: {"n": (doc or {}).get("n", 0) + 1},
                              key=lambda e: e.stream_id)


async def _seed(db, store, streams: int) -> None:
    for s in range(streams):
        async with db.transaction() as tx:
            await store.append(tx, f"young-{s}", 0, [Envelope.new(
                type="test.Noted", data={"n": 0}, stream_id=f"young-{s}", source="tests",
                time=T0)])


async def _read_plans(db) -> list[tuple[int, int]]:
    """(generic, custom) plans the connection used for the global log's page read."""
    async with db.connect() as conn:
        return [(g, c) for _, _, _, g, c in await _prepared(conn, "pg_snapshot_xmin")]


async def test_the_projections_read_each_page_with_a_plan_for_its_cursor(database_url,
                                                                        store):
    db = Database(database_url, pool_size=1)
    runner = ProjectionsRunner(db=db, store=store, projections=[_counts()], batch_size=1)
    try:
        await _seed(db, store, 8)

        async def folded() -> bool:
            await runner.step()
            async with db.connect() as conn:
                return await conn.fetchval(_DOCS) == 8

        await eventually(folded, timeout=30, what="8 events folded one page at a time")
        plans = await _read_plans(db)
        assert plans and all(g == 0 and c >= 8 for g, c in plans), plans
    finally:
        await db.dispose()


@pytest.mark.kafka
async def test_the_relay_reads_each_page_with_a_plan_for_its_cursor(database_url, store,
                                                                   topic, producer):
    db = Database(database_url, pool_size=1)
    relay = Relay(db=db, store=store, producer=producer, topic=topic, batch_size=1)
    try:
        await _seed(db, store, 8)
        published = 0

        async def all_published() -> bool:
            nonlocal published
            published += await relay.publish_pending()
            return published == 8

        await eventually(all_published, timeout=30, what="8 events published one by one")
        plans = await _read_plans(db)
        assert plans and all(g == 0 and c >= 8 for g, c in plans), plans
    finally:
        await db.dispose()

