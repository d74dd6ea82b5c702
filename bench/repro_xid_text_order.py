"""Regression check: ``EventStore.read_all`` must order the log by the xid8, not its text.

Up to 89e0698, ``_PG_READ_ALL`` selected ``CAST(xid AS text) AS xid`` and ended in
``ORDER BY xid, position`` (fixed in ce0633f).
In ``ORDER BY`` a bare name means the output column first, so PostgreSQL sorts by the
text: ``'100000' < '99999'``. The ``WHERE`` clause compares the real ``xid8`` column with the
cursor, so once a page ends on a 6-digit xid, every remaining 5-digit xid is "before" the
cursor and never read. It happens whenever a reader's page straddles a power of ten of the
transaction counter (100,000; 1,000,000; ...), and the relay, projections and replay all
read through ``read_all``. The sort on an expression also means the ``(xid, position)``
index cannot serve the ``ORDER BY``: every page scans and sorts the whole table.

Run (it resets the bench database)::

    python -m bench.repro_xid_text_order

Instead of burning 100,000 transaction ids it writes four events with explicit xids
99998, 99999, 100000, 100001 (all long committed, so below every reader's horizon) and
reads them back with pages of 2; exit status 1 if any is never read.
"""

from __future__ import annotations

import asyncio

import asyncpg

from libs.events import START, Database, EventStore

from .common import Config, bench_lock, make_registry, reset_db

_INSERT = """
INSERT INTO events (xid, event_id, stream_id, stream_version, type, schema_version, time,
                    data, source, subject, correlation_id)
VALUES ($1::text::xid8, $2, $2, 1, 'bench.AccountTouched', 1, now(),
        '{"account_id": "x", "n": 1, "name": "x"}', '/bench', $2, $2)
"""


async def main() -> int:
    cfg = Config.from_env()
    async with bench_lock(cfg):
        return await check(cfg)


async def check(cfg: Config) -> int:
    await reset_db(cfg)
    conn = await asyncpg.connect(cfg.asyncpg_dsn)
    try:
        for xid in (99998, 99999, 100000, 100001):
            await conn.execute(_INSERT, str(xid), f"evt-{xid}")
    finally:
        await conn.close()

    db = Database(cfg.db_url, pool_size=1)
    store = EventStore(make_registry(), dialect=db.dialect)
    seen: list[str] = []
    cursor = START
    try:
        async with db.connect() as tx:
            while True:
                page = await store.read_all(tx, cursor, limit=2)
                if not page.events:
                    break
                print("page:", [e.id for e in page.events], "-> cursor", page.cursor)
                seen += [e.id for e in page.events]
                cursor = page.cursor
    finally:
        await db.dispose()
    missing = sorted({f"evt-{x}" for x in (99998, 99999, 100000, 100001)} - set(seen))
    print(f"read {len(seen)} of 4 events; never read: {missing or 'none'}")
    return 1 if missing else 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
