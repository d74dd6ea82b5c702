"""HTTP routes of the credit service: parse, authorize, call one handler, present."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from libs.domain import InvalidCommandError
from libs.runtime.app import service_deps
from libs.runtime.auth import Principal, require
from libs.runtime.idempotency import IdempotencyKey, fingerprint
from libs.runtime.limits import BULK
from libs.runtime.scope import ReadScope, read_scope

from . import handlers, sweep, views
from .handlers import Deps as Dependencies
from .schemas import MetricsIn, OverrideIn, SweepIn, aware, metrics

router = APIRouter(prefix="/v1")

Deps = Annotated[Dependencies, Depends(service_deps)]
Platform = Annotated[Principal, Depends(require("platform"))]
Operator = Annotated[Principal, Depends(require("operator"))]
Reader = Annotated[ReadScope, Depends(read_scope("platform", "operator", "reviewer",
                                                 "regulator"))]


def _digest(request: Request, principal: Principal, body: BaseModel) -> str:
    return fingerprint(request.method, request.url.path, principal.subject,
                       body.model_dump(mode="json"))


@router.post("/metrics", tags=["traffic"], openapi_extra=BULK)
async def ingest_metrics(body: MetricsIn, request: Request, principal: Platform, deps: Deps,
                         key: IdempotencyKey = None) -> handlers.IngestOut:
    """Counter samples (per account, metric and hour) through the fake-traffic detector
    (A12.1), and follows with their consent flag (A12.2). An ``Idempotency-Key`` is
    required: a batch sent again must not be learned twice."""
    if key is None:
        raise InvalidCommandError(
            "POST /v1/metrics needs an Idempotency-Key header: a batch retried without one "
            "would be learned twice by the detector", code="idempotency-key-required",
            legal_basis=["A12.1"], title="Idempotency-Key required")
    out = await handlers.ingest_metrics(deps, metrics(body), key=key,
                                        digest=_digest(request, principal, body),
                                        max_samples=deps.max_batch)
    return out


# The reads return the views' dicts, validated against their model (views.py).
@router.get("/accounts/{account_id}/credit", tags=["credit"], response_model=views.AccountCredit)
async def account_credit(account_id: str, scope: Reader, deps: Deps) -> dict:
    """The score, level and management grade, explained: every contribution with its
    source event; traffic anomalies, forced follows, overrides and rumor strikes."""
    return await handlers.credit_of(deps, account_id, province=scope.province)


@router.get("/identities/{identity_blind}/credit", tags=["credit"],
            response_model=views.IdentityCredit)
async def identity_credit(identity_blind: str, scope: Reader, deps: Deps) -> dict:
    """Every account of one identity (its ID number's blind index) and its strikes (a
    regulator: its accounts in the regulator's province)."""
    return await handlers.identity_credit(deps, identity_blind, province=scope.province)


@router.post("/accounts/{account_id}/credit/overrides", tags=["credit"])
async def override(account_id: str, body: OverrideIn, request: Request, principal: Operator,
                   deps: Deps, key: IdempotencyKey = None) -> handlers.LevelOut:
    """An operator's adjustment (points) with a reason and an expiry, recorded as an event."""
    out = await handlers.override(deps, account_id, points=body.points, reason=body.reason,
                                  by=principal.subject, expires_at=aware(body.expires_at),
                                  key=key, digest=_digest(request, principal, body))
    return out


@router.post("/operations/sweep", tags=["operations"])
async def run_sweep(body: SweepIn, principal: Operator, deps: Deps,
                    key: IdempotencyKey = None) -> sweep.SweepReport:
    """Rescore every account at ``now`` (default: the clock)."""
    report = await sweep.once(deps, key=key, digest=fingerprint(body.model_dump(mode="json")),
                              now=deps.requested_clock(aware(body.now)),
                              only=body.account_ids)
    return report
