"""HTTP routes of the registration service: parse, authorize, call one handler, present.

Request bodies and their translation are in schemas.py; refusals raised by the handlers
(:mod:`libs.domain` errors) become problem documents in :mod:`libs.runtime.problems`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from libs.runtime.app import service_deps
from libs.runtime.auth import Principal, require
from libs.runtime.idempotency import Answer, IdempotencyKey, fingerprint, run_once
from libs.runtime.limits import UPLOAD
from libs.runtime.problems import MEDIA_TYPE, ProblemError, problem_type, status_of, title_of
from libs.runtime.responses import location
from libs.runtime.scope import ReadScope, read_scope

from . import handlers, schemas, sweep, views
from .domain import AccountNotFoundError
from .handlers import AccountChanged, Registered, RegistrationAccepted, RegistrationRefused
from .schemas import (
    AcceptAgreement,
    ChangeProfile,
    Note,
    RecordActivity,
    RegisterAccount,
    Review,
    SearchAccounts,
)

router = APIRouter(prefix="/v1", tags=["accounts"])

Deps = Annotated[handlers.Deps, Depends(service_deps)]
Writer = Annotated[Principal, Depends(require("platform", "operator"))]
Reader = Annotated[ReadScope, Depends(read_scope("platform", "operator", "reviewer",
                                                 "regulator"))]
Operator = Annotated[Principal, Depends(require("operator"))]
Reviewer = Annotated[Principal, Depends(require("operator", "reviewer"))]


def answer_of(result: Registered | RegistrationRefused) -> Answer:
    """How a registration's result is answered: 202 and the account, or the refusal (also
    recorded as an event) as a problem with the status of its kind, like a raised one."""
    if isinstance(result, RegistrationRefused):
        status = status_of(result.kind)
        return Answer(status, {
            "type": problem_type(result.code), "code": result.code,
            "title": title_of(result.code), "status": status, "detail": result.detail,
            "account_id": result.account_id, "legal_basis": result.legal_basis})
    return Answer(202, result.model_dump(exclude={"outcome"}))


def _respond(request: Request, answer: Answer, headers: dict | None = None) -> JSONResponse:
    if answer.status >= 400:
        return JSONResponse({**answer.body, "instance": request.url.path},
                            status_code=answer.status, media_type=MEDIA_TYPE)
    return JSONResponse(answer.body, status_code=answer.status, headers=headers)


def _digest(request: Request, principal: Principal, body: BaseModel) -> str:
    return fingerprint(request.method, request.url.path, principal.subject,
                       body.model_dump(mode="json"))


def _changed(result: AccountChanged) -> JSONResponse:
    return JSONResponse(result.model_dump(), status_code=202)


# Commands answer a JSONResponse built from their result: their ``response_model`` only
# declares it in the OpenAPI (FastAPI returns a Response as it is, unvalidated, unencoded).
# Reads return the views' documents, validated against their model; a member a document
# lacks stays absent (``response_model_exclude_unset``, views.py).
@router.post("/accounts", status_code=202, openapi_extra=UPLOAD,
             response_model=RegistrationAccepted,
             responses={202: location("the account: GET /v1/accounts/{account_id}")})
async def register_account(body: RegisterAccount, request: Request, principal: Writer,
                           deps: Deps, key: IdempotencyKey = None) -> JSONResponse:
    """Register an account (Art. 15): 202 pending verification or held for review."""
    app = schemas.application(body, deps.sealer)
    digest = fingerprint("POST /v1/accounts", principal.subject, body.model_dump(mode="json"))
    answer = answer_of(await handlers.register(deps, app, key=key, digest=digest))
    headers = ({"Location": f"/v1/accounts/{answer.body['account_id']}"}
               if answer.status == 202 else None)
    return _respond(request, answer, headers)


@router.patch("/accounts/{account_id}/profile", status_code=202, openapi_extra=UPLOAD,
              response_model=AccountChanged)
async def change_profile(account_id: str, body: ChangeProfile, request: Request,
                         principal: Writer, deps: Deps, key: IdempotencyKey = None
                         ) -> JSONResponse:
    """Propose a new name, avatar or description; shown once verification passes (A8.2)."""
    change = schemas.profile_change(body)
    return _changed(await handlers.change_profile(
        deps, account_id, change, key=key, digest=_digest(request, principal, body)))


@router.post("/accounts/{account_id}/agreement", status_code=202,
             response_model=AccountChanged)
async def accept_agreement(account_id: str, body: AcceptAgreement, request: Request,
                           principal: Writer, deps: Deps, key: IdempotencyKey = None
                           ) -> JSONResponse:
    """Record acceptance of the current platform agreement (A6)."""
    return _changed(await handlers.accept_agreement(
        deps, account_id, body.version, key=key, digest=_digest(request, principal, body)))


@router.post("/accounts/{account_id}/activity", status_code=202,
             response_model=AccountChanged)
async def record_activity(account_id: str, body: RecordActivity, request: Request,
                          principal: Writer, deps: Deps, key: IdempotencyKey = None
                          ) -> JSONResponse:
    """A login or use of the account; reinstates an inactivity suspension (A10.2)."""
    return _changed(await handlers.record_activity(
        deps, account_id, body.kind, key=key, digest=_digest(request, principal, body)))


@router.post("/accounts/{account_id}/suspension", status_code=202,
             response_model=AccountChanged)
async def request_suspension(account_id: str, body: Note, request: Request, principal: Writer,
                             deps: Deps, key: IdempotencyKey = None) -> JSONResponse:
    """The operator asks to suspend the account (A11.3)."""
    return _changed(await handlers.request_suspension(
        deps, account_id, key=key, digest=_digest(request, principal, body)))


@router.post("/accounts/{account_id}/reinstatement", status_code=202,
             response_model=AccountChanged)
async def request_reinstatement(account_id: str, body: Note, request: Request,
                                principal: Writer, deps: Deps, key: IdempotencyKey = None
                                ) -> JSONResponse:
    """The operator ends its own suspension (A11.3); other suspensions stay."""
    return _changed(await handlers.request_reinstatement(
        deps, account_id, key=key, digest=_digest(request, principal, body)))


@router.post("/accounts/{account_id}/deregistration", status_code=202,
             response_model=AccountChanged)
async def request_deregistration(account_id: str, body: Note, request: Request,
                                 principal: Writer, deps: Deps, key: IdempotencyKey = None
                                 ) -> JSONResponse:
    """The operator asks to terminate the account (A11.3); it still counts for A10.1."""
    return _changed(await handlers.request_deregistration(
        deps, account_id, principal.subject, key=key,
        digest=_digest(request, principal, body)))


@router.post("/accounts/{account_id}/review", status_code=202,
             response_model=AccountChanged)
async def review_registration(account_id: str, body: Review, request: Request,
                              principal: Reviewer, deps: Deps, key: IdempotencyKey = None
                              ) -> JSONResponse:
    """Approve a held registration (on to verification) or refuse it (A10.3, A8.3)."""
    return _changed(await handlers.review(
        deps, account_id, approve=body.approve, reviewer=principal.subject, note=body.note,
        key=key, digest=_digest(request, principal, body)))


async def _list(deps: handlers.Deps, scope: ReadScope, *, owner: str | None,
                status: str | None, province: str | None, cursor: str, limit: int) -> dict:
    docs, next_cursor = await views.list_accounts(
        deps.db, owner=schemas.owner_key(owner, deps.sealer) if owner else None,
        status=status, province=scope.province_filter(province), after=cursor, limit=limit)
    current = deps.agreement_version
    return {"items": [views.present(d, current_agreement=current) for d in docs],
            "next_cursor": next_cursor}


@router.get("/accounts", response_model=views.AccountPage,
            response_model_exclude_unset=True)
async def list_accounts(scope: Reader, deps: Deps, status: str | None = None,
                        province: str | None = None, cursor: str = "",
                        limit: int = Query(50, ge=1, le=500),
                        owner: str | None = Query(None, include_in_schema=False)) -> dict:
    """Accounts by status and province, in pages (A7.1 filing, A3 scope); by owner:
    ``POST /v1/accounts/search``."""
    if owner is not None:
        raise ProblemError("an identity number does not go into a URL (access logs, traces "
                           "keep URLs): POST /v1/accounts/search with {\"owner\": ...}",
                           status=422, code="identity-in-url", title="Identity in URL")
    return await _list(deps, scope, owner=None, status=status, province=province,
                       cursor=cursor, limit=limit)


@router.post("/accounts/search", response_model=views.AccountPage,
             response_model_exclude_unset=True)
async def search_accounts(body: SearchAccounts, scope: Reader, deps: Deps) -> dict:
    """Accounts by owner (ID number, USCC or its blind index: in the body, never in a URL),
    status and province, in pages (A3 scope). Reads only: no ``Idempotency-Key`` needed."""
    return await _list(deps, scope, owner=body.owner, status=body.status,
                       province=body.province, cursor=body.cursor, limit=body.limit)


async def _visible(deps: handlers.Deps, scope: ReadScope, account_id: str) -> dict:
    """The account's document, if this reader may see it (a regulator: its province)."""
    doc = await views.get_account(deps.db, account_id)
    if doc is None:
        raise AccountNotFoundError(f"no account {account_id} (yet: the view follows the "
                                   "events within moments)")
    scope.check(doc["province"], f"account {account_id}", code=AccountNotFoundError.code)
    return doc


@router.get("/accounts/{account_id}", response_model=views.AccountView,
            response_model_exclude_unset=True)
async def get_account(account_id: str, scope: Reader, deps: Deps) -> dict:
    """The account: status, capabilities and restrictions (A17.2, A13.1), profile, agreement."""
    doc = await _visible(deps, scope, account_id)
    return views.present(doc, current_agreement=deps.agreement_version)


@router.get("/accounts/{account_id}/history", response_model=views.HistoryPage)
async def account_history(
        account_id: str, scope: Reader, deps: Deps, response: Response,
        after: int = Query(0, ge=0, le=views.VERSION_MAX,
                           description="the stream version the page starts after (the "
                                       "previous page's `next`)"),
        limit: int = Query(views.HISTORY_PAGE, ge=1, le=views.HISTORY_PAGE_MAX),
) -> views.HistoryPage:
    """The account's events as stored (personal data sealed and masked), in pages of its
    stream (A10.2, A19): ``next`` and the ``Link: rel="next"`` header give the next one."""
    if scope.province is not None:
        await _visible(deps, scope, account_id)
    page = await views.history(deps.db, deps.store, account_id, after=after, limit=limit)
    if page is None:
        raise AccountNotFoundError(f"no account {account_id}")
    if page.next is not None:
        response.headers["Link"] = (f'</v1/accounts/{account_id}/history?after={page.next}'
                                    f'&limit={limit}>; rel="next"')
    return page


ops = APIRouter(prefix="/v1/operations", tags=["operations"])


@ops.post("/sweep")
async def run_sweep(body: schemas.Sweep, principal: Operator, deps: Deps,
                    key: IdempotencyKey = None) -> sweep.Swept:
    """Run the sweep at ``now`` (development only; else the server's clock): inactivity
    (A10.2), corrections (A8.2), timed measures."""
    now = deps.requested_clock(body.now)
    result = await run_once(deps.db, key, scope="registration.sweep",
                            digest=fingerprint(body.model_dump(mode="json")),
                            run=lambda: sweep.run(deps, now=now, only=body.account_ids),
                            result=sweep.Swept)
    return result
