"""The clock's decisions: timed measures end (A19.2) with ``MeasureLifted`` (reason
``expired``), after which registration gives the functions back; overdue cases reported.

Runs periodically inside the app (``ENFORCEMENT_SWEEP_INTERVAL_SECONDS``), on request
(``POST /v1/operations/sweep``) and as a command with an injectable clock
(``python -m services.enforcement.cli sweep --now ...``).
"""

from __future__ import annotations

import logging
from datetime import datetime

from pydantic import BaseModel

from libs.runtime.idempotency import run_once

from . import handlers, views
from .handlers import Deps

log = logging.getLogger(__name__)


class SweepReport(BaseModel):
    now: str
    lifted: list[str]  # measure ids
    overdue_cases: list[str]


async def run(deps: Deps, *, now: datetime | None = None,
              only: list[str] | None = None) -> SweepReport:
    """Lift every active measure whose end has passed at ``now`` (the read model picks the
    candidates; the account's stream decides)."""
    now = now or deps.clock()
    async with deps.db.connect() as conn:
        measures = await views.everything(conn, views.MEASURES)
        cases = await views.everything(conn, views.CASES)
    due = sorted({m["account_id"] for m in measures if m["status"] == "active" and m["ends_at"]
                  and datetime.fromisoformat(m["ends_at"]) <= now
                  and (only is None or m["account_id"] in only)})
    lifted: list[str] = []
    for account_id in due:
        lifted += await handlers.expire_measures(deps, account_id, now)
    deps.committed()
    overdue = sorted(c["case_id"] for c in cases if c["step"] != "responded"
                     and datetime.fromisoformat(c["deadline"]) < now)
    return SweepReport(now=now.isoformat(), lifted=lifted, overdue_cases=overdue)


async def once(deps: Deps, *, key: str | None, digest: str, **kwargs) -> SweepReport:
    """A sweep on request: the read models caught up first, the report kept for the
    ``Idempotency-Key``."""

    async def sweep() -> SweepReport:
        await deps.catch_up()
        return await run(deps, **kwargs)

    return await run_once(deps.db, key, scope="enforcement.sweep", digest=digest, run=sweep,
                          result=SweepReport)


async def periodically(deps: Deps) -> None:
    report = await run(deps)
    if report.lifted:
        log.info("sweep: %s", report.model_dump())
