"""What the integration tests of a service's handlers share: a clock the test moves, and
the service's dependencies over a fresh migrated database with its read models."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from libs.events import Database, EventStore, ProjectionRunner
from libs.events.contracts import all_contracts
from libs.events.migrate import upgrade


class Clock:
    """A clock that stays where the test puts it (``clock.now = ...``)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@asynccontextmanager
async def service_dependencies(boot: Any, settings: Any, database_url: str, *, clock: Clock,
                               projections: Sequence[Any] = ()) -> AsyncIterator[Any]:
    """``boot.dependencies(...)`` over ``database_url`` migrated with the service's own
    revisions; ``catch_up`` runs ``projections`` (kept as ``deps.runners``)."""
    await asyncio.to_thread(upgrade, database_url, boot.MIGRATIONS)
    db = Database(database_url)
    store = EventStore(all_contracts(), dialect=db.dialect)
    runners = [ProjectionRunner(db=db, store=store, projection=p) for p in projections]

    async def catch_up() -> None:
        for r in runners:
            await r.catch_up()

    more = {"catch_up": catch_up} if runners else {}
    deps = boot.dependencies(settings, db, store, clock=clock, **more)
    deps.runners = runners
    try:
        yield deps
    finally:
        await db.dispose()
