"""The PostgreSQL connection pool the kernel uses: bounded, and healthy after failures."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from libs.events import Database

COUNT = text("SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database()")


async def test_pool_is_bounded_and_survives_failed_transactions(database_url):
    db = Database(database_url, pool_size=2)
    peak = 0

    async def work(i: int) -> None:
        nonlocal peak
        async with db.transaction() as tx:
            peak = max(peak, await tx.fetchval(COUNT))
            await asyncio.sleep(0.01)
            if i % 3 == 0:
                raise RuntimeError("handler failed")

    results = await asyncio.gather(*(work(i) for i in range(9)), return_exceptions=True)
    assert sum(isinstance(r, RuntimeError) for r in results) == 3
    assert peak <= 2 + 1  # our two connections, plus the test fixture's own at most
    async with db.transaction() as tx:  # connections came back usable, outside a transaction
        assert await tx.fetchval(text("SELECT 1")) == 1
    with pytest.raises(Exception, match="division by zero"):
        async with db.transaction() as tx:
            await tx.fetchval(text("SELECT 1 / 0"))
    async with db.connect() as conn:
        assert await conn.fetchval(text("SELECT 2")) == 2
    await db.dispose()
