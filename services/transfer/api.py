"""HTTP routes of the transfer service: parse, authorize, call one handler, present."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from libs.runtime.app import service_deps
from libs.runtime.auth import Principal, require
from libs.runtime.idempotency import IdempotencyKey, fingerprint
from libs.runtime.pii import Sealer
from libs.runtime.problems import ProblemError
from libs.runtime.scope import ReadScope, read_scope

from . import handlers, sweep
from .handlers import Deps as Dependencies
from .schemas import (
    ConfirmationIn,
    NoteIn,
    OptOutIn,
    SignalBody,
    SweepIn,
    TransferIn,
    application,
    aware,
    signal,
)
from .views import Kind, Status, TransferPage

router = APIRouter(prefix="/v1")

Deps = Annotated[Dependencies, Depends(service_deps)]
Platform = Annotated[Principal, Depends(require("platform"))]
Operator = Annotated[Principal, Depends(require("operator"))]
Staff = Annotated[Principal, Depends(require("platform", "operator"))]
Reader = Annotated[ReadScope, Depends(read_scope("platform", "operator", "reviewer",
                                                 "regulator"))]


def _digest(request: Request, principal: Principal, body: BaseModel | None) -> str:
    return fingerprint(request.method, request.url.path, principal.subject,
                       body.model_dump(mode="json") if body else None)


def _sealer(deps: Dependencies) -> Sealer:
    return deps.sealer


@router.post("/transfers", status_code=201, tags=["transfers"])
async def apply(body: TransferIn, request: Request, principal: Platform, deps: Deps,
                key: IdempotencyKey = None) -> handlers.TransferOut:
    """The current operator applies to transfer the account, or to grant a co-operator or
    third-party operator (A11.2, A17.3). Refused by the no-trading rules (A11.1): 409
    ``transfer-refused`` with the reasons (the refusal is recorded as an event)."""
    out = await handlers.apply(deps, application(body, _sealer(deps)), by=principal.subject,
                               key=key, digest=_digest(request, principal, body))
    if out.status == "rejected":
        raise ProblemError("the application is refused: " + ", ".join(out.reasons),
                           status=409, code="transfer-refused", title="Transfer refused",
                           transfer_id=out.transfer_id, reasons=out.reasons,
                           legal_basis=["A11.1", "A11.2"])
    return out


@router.get("/transfers", tags=["transfers"], response_model=TransferPage)
async def list_transfers(scope: Reader, deps: Deps, account_id: str | None = None,
                         status: Status | None = None, kind: Kind | None = None,
                         province: str | None = None, cursor: str = "",
                         limit: int = Query(50, ge=1, le=500)) -> TransferPage:
    """Applications by account, status and kind, in pages (a regulator: its province)."""
    return await handlers.list_transfers(
        deps, account_id=account_id, status=status, kind=kind,
        province=scope.province_filter(province), cursor=cursor, limit=limit)


@router.get("/transfers/{transfer_id}", tags=["transfers"])
async def get_transfer(transfer_id: str, scope: Reader, deps: Deps) -> handlers.TransferOut:
    """One application as its stream says now (a regulator: of its province)."""
    return await handlers.get_transfer(deps, transfer_id, province=scope.province)


@router.post("/transfers/{transfer_id}/confirmation", tags=["transfers"])
async def confirm(transfer_id: str, body: ConfirmationIn, request: Request,
                  principal: Platform, deps: Deps, key: IdempotencyKey = None
                  ) -> handlers.TransferOut:
    """One party (transferor or transferee) accepts, before the deadline."""
    out = await handlers.confirm(deps, transfer_id, party=body.party, by=principal.subject,
                                 key=key, digest=_digest(request, principal, body))
    return out


@router.post("/transfers/{transfer_id}/follower-opt-outs", tags=["transfers"])
async def opt_out(transfer_id: str, body: OptOutIn, request: Request, principal: Platform,
                  deps: Deps, key: IdempotencyKey = None) -> handlers.TransferOut:
    """A follower opts out of following the account once it changes hands."""
    out = await handlers.opt_out(deps, transfer_id, follower_id=body.follower_id, key=key,
                                 digest=_digest(request, principal, body))
    return out


@router.post("/transfers/{transfer_id}/withdrawal", tags=["transfers"])
async def withdraw(transfer_id: str, body: NoteIn, request: Request, principal: Platform,
                   deps: Deps, key: IdempotencyKey = None) -> handlers.TransferOut:
    """The applicant withdraws an open application."""
    out = await handlers.withdraw(deps, transfer_id, by=principal.subject, reason=body.reason,
                                  key=key, digest=_digest(request, principal, body))
    return out


@router.post("/transfers/{transfer_id}/revocation", tags=["operators"])
async def revoke(transfer_id: str, body: NoteIn, request: Request, principal: Staff,
                 deps: Deps, key: IdempotencyKey = None) -> handlers.TransferOut:
    """A granted co-operator or third-party operator loses the privilege (A17.3)."""
    out = await handlers.revoke(deps, transfer_id, by=principal.subject, reason=body.reason,
                                key=key, digest=_digest(request, principal, body))
    return out


@router.get("/accounts/{account_id}/operators", tags=["operators"])
async def operators(account_id: str, scope: Reader, deps: Deps) -> handlers.OperatorsOut:
    """The owner, granted operators and open applications of an account (a regulator: of
    its province)."""
    return await handlers.operators(deps, account_id, province=scope.province)


@router.post("/signals/ownership", tags=["signals"])
async def ownership_signal(body: SignalBody, request: Request, principal: Platform,
                           deps: Deps, key: IdempotencyKey = None) -> handlers.SignalOut:
    """A new identity at login or a contact of a different verified person (A11.2)."""
    out = await handlers.ownership_signal(deps, signal(body, _sealer(deps)), key=key,
                                          digest=_digest(request, principal, body))
    return out


@router.post("/operations/sweep", tags=["operations"])
async def run_sweep(body: SweepIn, principal: Operator, deps: Deps,
                    key: IdempotencyKey = None) -> sweep.SweepReport:
    """Expire applications past their deadline and complete transfers whose followers'
    opt-out period is over, at ``now`` (default: the clock)."""
    report = await sweep.once(deps, key=key, digest=fingerprint(body.model_dump(mode="json")),
                              now=deps.requested_clock(aware(body.now)))
    return report
