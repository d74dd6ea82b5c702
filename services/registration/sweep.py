"""The clock's decisions: inactivity (A10.2), expired corrections (A8.2), timed measures (A19.2).

Runs periodically inside the app (``REGISTRATION_SWEEP_INTERVAL_SECONDS``), on demand
(``POST /v1/operations/sweep``) and as a command with an injectable clock
(``python -m services.registration.cli sweep --now 2027-06-01T00:00:00Z``).
"""

from __future__ import annotations

import logging
from datetime import datetime

from pydantic import BaseModel

from . import handlers, views
from .handlers import Deps

log = logging.getLogger(__name__)


class Swept(BaseModel):
    """What one sweep did: the accounts it suspended, closed and lifted measures on."""

    now: str
    candidates: int
    suspended: list[str] = []
    closed: list[str] = []
    lifted: list[str] = []


async def run(deps: Deps, *, now: datetime | None = None, only: list[str] | None = None
              ) -> Swept:
    """Sweep every due account (or those of ``only``) once at ``now``, one transaction each."""
    now = now or deps.clock()
    await deps.catch_up()  # the candidates come from the account list, a read model
    candidates = await views.sweep_candidates(
        deps.db, now=now, inactivity_months=deps.policy.inactivity_months)
    if only is not None:
        wanted = set(only)
        candidates = [c for c in candidates if c in wanted]
    result = Swept(now=now.isoformat(), candidates=len(candidates))
    for account_id in candidates:
        for t in await handlers.sweep_account(deps, account_id, now=now):
            if t.endswith("AccountSuspended"):
                result.suspended.append(account_id)
            elif t.endswith("AccountClosed"):
                result.closed.append(account_id)
            elif t.endswith(("AccountRestrictionLifted", "AccountReinstated")):
                result.lifted.append(account_id)
    if result.suspended or result.closed or result.lifted:
        deps.committed()
    return result


async def scheduled(deps: Deps) -> None:
    """The periodic sweep inside the app; says what it did when it did something."""
    result = await run(deps)
    if result.suspended or result.closed or result.lifted:
        log.info("sweep: %s", result.model_dump())
