"""The clock's decisions: applications still open past their deadline expire (A11.2).

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


async def run(deps: Deps, *, now: datetime | None = None) -> SweepReport:
    now = now or deps.clock()
    expired = [t for t in await handlers.due(deps, now) if await handlers.expire(deps, t, now)]
    deps.committed()
    return SweepReport(now=now.isoformat(), expired=expired)


async def once(deps: Deps, *, key: str | None, digest: str, **kwargs) -> SweepReport:
    async def sweep() -> SweepReport:
        return await run(deps, **kwargs)

    return await run_once(deps.db, key, scope="transfer.sweep", digest=digest, run=sweep,
                          result=SweepReport)


async def periodically(deps: Deps) -> None:
    report = await run(deps)
    if report.expired:
        log.info("sweep: %s", report.model_dump())
