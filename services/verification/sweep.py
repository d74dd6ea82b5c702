"""The clock's decisions: expired qualifications (A9.1, A5) and re-inspections (A9.3),
periodic and by random sample; and the pending identity checks that are due (A8.1, ADR
0026: the providers asked outside any transaction, again with backoff, a person after the
deadline).

Runs periodically inside the app (``VERIFICATION_SWEEP_INTERVAL_SECONDS``), on request
(``POST /v1/operations/sweep``, ``POST /v1/reinspections/sample``) and as a command with
an injectable clock (``python -m services.verification.cli sweep --now ...``).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
from datetime import datetime, timedelta

from pydantic import BaseModel

from libs.domain import DomainError
from libs.runtime.idempotency import run_once

from . import handlers, views
from .adapters import identity_checks_due
from .handlers import Deps

log = logging.getLogger(__name__)


class SweepReport(BaseModel):
    now: str
    accounts: int
    expired: dict[str, list[str]]
    reinspected: dict[str, dict[str, str]]  # reason -> account -> passed | failed


def sample(account_ids: list[str], fraction: float, seed: int | None) -> list[str]:
    """A reproducible random sample (given a seed) of about ``fraction`` of the accounts."""
    rng = random.Random(seed)
    return [a for a in sorted(account_ids) if rng.random() < fraction]


async def run(deps: Deps, *, now: datetime | None = None, fraction: float | None = None,
              seed: int | None = None, periodic: bool = True,
              only: list[str] | None = None) -> SweepReport:
    """Expire what is past its validity, then re-inspect the accounts due and a sample."""
    now = now or deps.clock()
    fraction = deps.sample_fraction if fraction is None else fraction
    async with deps.db.connect() as conn:
        docs = await views.everything(conn, "verification_schedule")
    if only is not None:
        docs = [d for d in docs if d["account_id"] in set(only)]
    expired: dict[str, list[str]] = {}
    for d in docs:
        if any(datetime.fromisoformat(v) <= now for v in d["approved_until"].values()):
            cases = await handlers.expire(deps, d["account_id"], now)
            if cases:
                expired[d["account_id"]] = cases
    verified = [d for d in docs if d["verified"] and d["account_id"] not in expired]
    cutoff = now - timedelta(days=deps.reinspection_interval_days)
    due = [d["account_id"] for d in verified if periodic and d["last_inspected_at"]
           and datetime.fromisoformat(d["last_inspected_at"]) <= cutoff]
    sampled = sample([d["account_id"] for d in verified if d["account_id"] not in due],
                     fraction, seed)
    results: dict[str, dict[str, str]] = {"periodic": {}, "sample": {}}
    for reason, ids in (("periodic", due), ("sample", sampled)):
        for account_id in ids:
            try:
                results[reason][account_id] = await handlers.reinspect(deps, account_id,
                                                                       reason=reason)
            except DomainError:  # no longer verified (the read model was behind): skip
                continue
    deps.committed()
    return SweepReport(now=now.isoformat(), accounts=len(docs), expired=expired,
                       reinspected=results)


async def once(deps: Deps, *, key: str | None, scope: str, digest: str,
               **kwargs) -> SweepReport:
    """A sweep on request: the read models caught up first, the report kept for the
    ``Idempotency-Key`` (a retry gets it instead of a second sweep)."""

    async def sweep() -> SweepReport:
        await deps.catch_up()
        return await run(deps, **kwargs)

    return await run_once(deps.db, key, scope=scope, digest=digest, run=sweep,
                          result=SweepReport)


async def periodically(deps: Deps) -> None:
    """One run of the app's periodic sweep, logged when it changed anything."""
    report = await run(deps)
    if report.expired or any(report.reinspected.values()):
        log.info("sweep: %s", report.model_dump())


async def check_identities(deps: Deps, *, now: datetime | None = None,
                           concurrency: int | None = None, page: int = 100) -> dict[str, str]:
    """Every pending identity check due at ``now``: account -> verified | failed |
    deferred | review | gone.

    Up to ``concurrency`` checks at a time (each asks the providers with no transaction
    open, then records the answer in its own transaction), page after page until none is
    due: the checks keep up with the registrations that queue them instead of taking a
    fixed number per run (ADR 0037)."""
    limit = max(1, concurrency or deps.identity_check_concurrency)
    gate = asyncio.Semaphore(limit)
    outcomes: dict[str, str] = {}
    tried: set[str] = set()

    async def one(account_id: str) -> None:
        async with gate:
            try:
                outcomes[account_id] = await handlers.check_identity(deps, account_id)
            except DomainError as exc:  # the stream moved on meanwhile: the next run sees it
                log.info("identity check %s: %s", account_id, exc.detail)

    while True:
        async with deps.db.connect() as conn:
            found = await identity_checks_due(conn, now or deps.clock(), limit=page)
        due = [c for c in found if c.account_id not in tried]  # each once per run
        if not due:
            break
        tried.update(c.account_id for c in due)
        await asyncio.gather(*(one(c.account_id) for c in due))
        if len(found) < page:  # the last page (not: the last page of new ones)
            break
    if outcomes:
        log.info("identity checks: %d (%s)", len(outcomes),
                 dict(collections.Counter(outcomes.values())))
    return outcomes
