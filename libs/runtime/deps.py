"""What every service's handlers need, whatever the service: a service's ``Deps`` (in its
``handlers.py``) derives from :class:`ServiceDeps` and adds its own streams and adapters."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from libs.events import Database, EventStore
from libs.events.db import Tx

from .clock import now, refuse_outside_development
from .idempotency import run_idempotent

R = TypeVar("R")


def _nothing_to_wake() -> None:
    return None


async def nothing_to_catch_up() -> None:
    """The default of ``catch_up`` where no read model runs (unit and integration tests)."""
    return None


@dataclass(kw_only=True)
class ServiceDeps:
    """The database and the event store; the clock decisions are made by (UTC, or in
    development a request's ``X-Clock-Now``); ``committed``, called after a handler's
    transaction commits, wakes the relay and the projections; ``catch_up`` brings the read
    models up to the log now (before a sweep reads them)."""

    db: Database
    store: EventStore
    clock: Callable[[], datetime] = now
    committed: Callable[[], None] = _nothing_to_wake
    catch_up: Callable[[], Awaitable[None]] = nothing_to_catch_up
    # Where the service runs (the runtime sets it from ENVIRONMENT when it serves these
    # dependencies); only development lets a request name a sweep's clock (A10.2).
    environment: str = "production"

    def requested_clock(self, requested: datetime | None, *, what: str = "`now`"
                        ) -> datetime | None:
        """A request's clock for a sweep: accepted in development, else refused
        (:class:`libs.runtime.clock.ClockNotSettableError`); None: the server's clock."""
        if requested is not None:
            refuse_outside_development(what, self.environment)
        return requested

    async def command(self, key: str | None, scope: str, digest: str,
                      work: Callable[[Tx], Awaitable[R]], result: Any) -> R:
        """Run a command's ``work`` in one transaction, once per ``Idempotency-Key``
        (keeping its ``result``), then wake the relay and the projections."""
        answer = await run_idempotent(self.db, key, scope=scope, digest=digest, work=work,
                                      result=result)
        self.committed()
        return answer
