"""The clock's decisions: scores recover with clean days, violations age, overrides
expire (A13.1): an account whose level moved gets its ``CreditLevelChanged``; rumor
strikes older than the expiry get their ``RumorStrikeExpired`` (A13.2).

Runs periodically inside the app (``CREDIT_SWEEP_INTERVAL_SECONDS``), on request
(``POST /v1/operations/sweep``) and as a command with an injectable clock
(``python -m services.credit.cli sweep --now ...``).
"""

from __future__ import annotations

import logging
from datetime import datetime

from libs.runtime.idempotency import run_once

from . import handlers, views
from .handlers import Deps, SweepReport

log = logging.getLogger(__name__)


async def run(deps: Deps, *, now: datetime | None = None,
              only: list[str] | None = None) -> SweepReport:
    """Rescore every known account at ``now`` (the read model lists them)."""
    now = now or deps.clock()
    async with deps.db.connect() as conn:
        accounts = [d["account_id"] for d in await views.profiles(conn)]
    accounts = [a for a in accounts if only is None or a in only]
    changed: dict[str, str] = {}
    for account_id in accounts:
        level = await handlers.rescore(deps, account_id, now)
        if level:
            changed[account_id] = level
    expired: list[str] = []
    if only is None:
        async with deps.db.connect() as conn:
            identities = await deps.directory.identities(conn)
        for blind in identities:
            expired += await handlers.expire_strikes(deps, blind, now)
    deps.committed()
    return SweepReport(now=now.isoformat(), accounts=len(accounts), changed=changed,
                       expired_strikes=expired)


async def once(deps: Deps, *, key: str | None, digest: str, **kwargs) -> SweepReport:
    async def sweep() -> SweepReport:
        await deps.catch_up()
        return await run(deps, **kwargs)

    return await run_once(deps.db, key, scope="credit.sweep", digest=digest, run=sweep,
                          result=SweepReport)


async def periodically(deps: Deps) -> None:
    report = await run(deps)
    if report.changed:
        log.info("sweep: %s", report.model_dump())
