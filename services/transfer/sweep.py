"""The clock's decisions (A11.2): applications still open past their deadline expire, and
confirmed transfers whose followers' opt-out period is over complete.

Runs periodically inside the app (``TRANSFER_SWEEP_INTERVAL_SECONDS``), on request
(``POST /v1/operations/sweep``) and as a command with an injectable clock
(``python -m services.transfer.cli sweep --now ...``).
"""

from __future__ import annotations

import logging
from datetime import datetime

from pydantic import BaseModel

from libs.runtime.idempotency import run_once

from . import handlers
from .handlers import Deps

log = logging.getLogger(__name__)


class SweepReport(BaseModel):
    now: str
    expired: list[str]  # transfer ids
    completed: list[str] = []  # transfer ids whose opt-out period ended


async def run(deps: Deps, *, now: datetime | None = None) -> SweepReport:
    now = now or deps.clock()
    expired = [t for t in await handlers.due(deps, now) if await handlers.expire(deps, t, now)]
    completed = [t for t in await handlers.opt_outs_over(deps, now)
                 if await handlers.complete_due(deps, t, now)]
    deps.committed()
    return SweepReport(now=now.isoformat(), expired=expired, completed=completed)


async def once(deps: Deps, *, key: str | None, digest: str, **kwargs) -> SweepReport:
    async def sweep() -> SweepReport:
        return await run(deps, **kwargs)

    return await run_once(deps.db, key, scope="transfer.sweep", digest=digest, run=sweep,
                          result=SweepReport)


async def periodically(deps: Deps) -> None:
    report = await run(deps)
    if report.expired or report.completed:
        log.info("sweep: %s", report.model_dump())
