"""HTTP routes of the registration service; thin over the handlers (bodies: schemas.py)."""

from __future__ import annotations

import re
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from libs.runtime.auth import Principal, require
from libs.runtime.idempotency import Answer, IdempotencyKey, fingerprint, run_once
from libs.runtime.pii import Sealer
from libs.runtime.problems import MEDIA_TYPE, ProblemError

from . import handlers, views
from .domain import Account
from .handlers import AccountNotFoundError, Deps
from .schemas import (
    AcceptAgreement,
    ChangeProfile,
    Note,
    RecordActivity,
    RegisterAccount,
    Review,
    Sweep,
    application,
    avatar_fields,
)

router = APIRouter(prefix="/v1", tags=["accounts"])

Writer = Annotated[Principal, Depends(require("platform", "operator"))]
Reader = Annotated[Principal, Depends(require("platform", "operator", "reviewer", "regulator"))]
Operator = Annotated[Principal, Depends(require("operator"))]
Reviewer = Annotated[Principal, Depends(require("operator", "reviewer"))]


def _deps(request: Request) -> Deps:
    return request.app.state.runtime.deps


def _sealer(request: Request) -> Sealer:
    return request.app.state.runtime.sealer


def _answer(request: Request, answer: Answer, headers: dict | None = None) -> JSONResponse:
    if answer.status >= 400:
        return JSONResponse({**answer.body, "instance": request.url.path},
                            status_code=answer.status, media_type=MEDIA_TYPE)
    return JSONResponse(answer.body, status_code=answer.status, headers=headers)


@router.post("/accounts", status_code=202)
async def register_account(body: RegisterAccount, request: Request, principal: Writer,
                           key: IdempotencyKey = None) -> JSONResponse:
    """Register an account (Art. 15): 202 pending verification or held for review."""
    app = application(body, _sealer(request))
    digest = fingerprint("POST /v1/accounts", principal.subject, body.model_dump(mode="json"))
    answer = await handlers.register(_deps(request), app, key=key, digest=digest)
    headers = ({"Location": f"/v1/accounts/{answer.body['account_id']}"}
               if answer.status == 202 else None)
    return _answer(request, answer, headers)


async def _command(request: Request, principal: Principal, account_id: str, key: str | None,
                   body: BaseModel | None, decide, what: str) -> JSONResponse:
    digest = fingerprint(request.method, request.url.path, principal.subject,
                         body.model_dump(mode="json") if body else None)
    answer = await handlers.command(_deps(request), account_id, decide, key=key, digest=digest,
                                    scope=f"registration.{what}")
    return _answer(request, answer)


@router.patch("/accounts/{account_id}/profile", status_code=202)
async def change_profile(account_id: str, body: ChangeProfile, request: Request,
                         principal: Writer, key: IdempotencyKey = None) -> JSONResponse:
    """Propose a new name, avatar or description; shown once verification passes (A8.2)."""
    if body.name is None and body.description is None and body.avatar is None:
        raise ProblemError("change at least one of name, description, avatar",
                           status=422, code="empty-profile-change", title="Nothing to change")
    deps = _deps(request)
    avatar = avatar_fields(body.avatar) if body.avatar else None
    if body.name is not None:
        for m in deps.names.similar(body.name, threshold=deps.policy.similar_refuse):
            if m.kind in ("exact", "normalised"):
                raise ProblemError(f"the name is the same as closed account {m.id}'s",
                                   status=409, code="similar-to-closed-account",
                                   title="Similar to a closed account", legal_basis=["A8.3"])
    change_id = str(uuid.uuid4())

    def decide(acc: Account):
        proposed = dict(acc.profile)
        if body.name is not None:
            proposed["name"] = body.name
        if body.description is not None:
            proposed["description"] = body.description
        if avatar is not None:
            proposed = {k: v for k, v in proposed.items()
                        if k not in ("avatar_phash", "avatar_url")} | avatar
        return acc.submit_profile_change(change_id=change_id, proposed=proposed)

    response = await _command(request, principal, account_id, key, body, decide, "profile")
    return response


@router.post("/accounts/{account_id}/agreement", status_code=202)
async def accept_agreement(account_id: str, body: AcceptAgreement, request: Request,
                           principal: Writer, key: IdempotencyKey = None) -> JSONResponse:
    """Record acceptance of the current platform agreement (A6)."""
    current = _deps(request).agreement_version
    if body.version != current:
        raise ProblemError(f"accept the current platform agreement {current!r}",
                           status=422, code="agreement-version-outdated",
                           title="Agreement version outdated",
                           current_version=current)
    return await _command(request, principal, account_id, key, body,
                          lambda acc: acc.accept_agreement(version=body.version), "agreement")


@router.post("/accounts/{account_id}/activity", status_code=202)
async def record_activity(account_id: str, body: RecordActivity, request: Request,
                          principal: Writer, key: IdempotencyKey = None) -> JSONResponse:
    """A login or use of the account; reinstates an inactivity suspension (A10.2)."""
    return await _command(request, principal, account_id, key, body,
                          lambda acc: acc.record_activity(kind=body.kind), "activity")


@router.post("/accounts/{account_id}/suspension", status_code=202)
async def request_suspension(account_id: str, body: Note, request: Request, principal: Writer,
                             key: IdempotencyKey = None) -> JSONResponse:
    """The operator asks to suspend the account (A11.3)."""
    return await _command(request, principal, account_id, key, body, lambda acc: acc.suspend(
        suspension_id="self_requested", reason="self_requested", legal_basis=["A11.3"]),
        "suspension")


@router.post("/accounts/{account_id}/reinstatement", status_code=202)
async def request_reinstatement(account_id: str, body: Note, request: Request,
                                principal: Writer, key: IdempotencyKey = None) -> JSONResponse:
    """The operator ends its own suspension (A11.3); other suspensions stay."""
    return await _command(request, principal, account_id, key, body, lambda acc: acc.reinstate(
        suspension_id="self_requested", legal_basis=["A11.3"]), "reinstatement")


@router.post("/accounts/{account_id}/deregistration", status_code=202)
async def request_deregistration(account_id: str, body: Note, request: Request,
                                 principal: Writer, key: IdempotencyKey = None) -> JSONResponse:
    """The operator asks to terminate the account (A11.3); it still counts for A10.1."""
    return await _command(request, principal, account_id, key, body,
                          lambda acc: acc.deregister(requested_by=principal.subject),
                          "deregistration")


@router.post("/accounts/{account_id}/review", status_code=202)
async def review_registration(account_id: str, body: Review, request: Request,
                              principal: Reviewer, key: IdempotencyKey = None) -> JSONResponse:
    """Approve a held registration (on to verification) or refuse it (A10.3, A8.3)."""
    return await _command(request, principal, account_id, key, body, lambda acc: acc.review(
        approve=body.approve, reviewer=principal.subject, note=body.note, evidence=[]),
        "review")


@router.get("/accounts")
async def list_accounts(request: Request, principal: Reader,
                        owner: str | None = Query(None, description="ID number, USCC or its "
                                                                    "blind index"),
                        status: str | None = None, province: str | None = None,
                        cursor: str = "", limit: int = Query(50, ge=1, le=500)) -> dict:
    """Accounts by owner, status and province, in pages (A7.1 filing, A3 scope)."""
    runtime = request.app.state.runtime
    if principal.roles == {"regulator"}:
        if province and province != principal.province:
            raise ProblemError("a provincial regulator sees only its province", status=403,
                               code="forbidden", title="Not allowed")
        province = principal.province
    if owner and not re.fullmatch(r"[0-9a-f]{32}", owner):
        owner = runtime.sealer.blind("id_number", owner.replace(" ", ""))
    async with runtime.db.connect() as conn:
        docs, next_cursor = await views.list_accounts(conn, owner=owner, status=status,
                                                      province=province, after=cursor,
                                                      limit=limit)
    current = runtime.deps.agreement_version
    return {"items": [views.present(d, current_agreement=current) for d in docs],
            "next_cursor": next_cursor}


async def _doc(request: Request, principal: Principal, account_id: str) -> dict:
    async with request.app.state.runtime.db.connect() as conn:
        doc = await views.get_account(conn, account_id)
    if doc is None or (principal.roles == {"regulator"} and doc["province"] != principal.province):
        raise AccountNotFoundError(f"no account {account_id} (yet: the view follows the "
                                   "events within moments)")
    return doc


@router.get("/accounts/{account_id}")
async def get_account(account_id: str, request: Request, principal: Reader) -> dict:
    """The account: status, capabilities and restrictions (A17.2, A13.1), profile, agreement."""
    doc = await _doc(request, principal, account_id)
    return views.present(doc, current_agreement=_deps(request).agreement_version)


@router.get("/accounts/{account_id}/history")
async def account_history(account_id: str, request: Request, principal: Reader) -> dict:
    """The account's events as stored (personal data sealed and masked)."""
    runtime = request.app.state.runtime
    if principal.roles == {"regulator"}:
        await _doc(request, principal, account_id)
    async with runtime.db.connect() as conn:
        events = await views.history(conn, runtime.store, account_id)
    if not events:
        raise AccountNotFoundError(f"no account {account_id}")
    return {"account_id": account_id, "events": events}


ops = APIRouter(prefix="/v1/operations", tags=["operations"])


@ops.post("/sweep")
async def run_sweep(body: Sweep, request: Request, principal: Operator,
                    key: IdempotencyKey = None) -> dict:
    """Run the sweep at ``now``: inactivity (A10.2), correction deadlines (A8.2), timed
    measures (A19.2)."""
    from .sweep import run

    runtime = request.app.state.runtime
    deps = runtime.deps

    async def sweep() -> Answer:
        await runtime.catch_up_projections()  # its candidates come from the account list
        return Answer(200, await run(deps, now=body.now, only=body.account_ids))

    answer = await run_once(deps.db, key, scope="registration.sweep",
                            digest=fingerprint(body.model_dump(mode="json")), run=sweep)
    return answer.body
