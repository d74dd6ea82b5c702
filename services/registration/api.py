"""HTTP routes of the registration service and their schemas; thin over the handlers."""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from libs import identity as ids
from libs.runtime.auth import Principal, require
from libs.runtime.idempotency import Answer, IdempotencyKey, fingerprint, run_once
from libs.runtime.pii import Sealer, mask_id_number, mask_name, mask_phone
from libs.runtime.problems import MEDIA_TYPE, ProblemError

from . import handlers, views
from .domain import Account
from .handlers import AccountNotFoundError, Application, Deps

router = APIRouter(prefix="/v1", tags=["accounts"])

Writer = Annotated[Principal, Depends(require("platform", "operator"))]
Reader = Annotated[Principal, Depends(require("platform", "operator", "reviewer", "regulator"))]
Operator = Annotated[Principal, Depends(require("operator"))]
Reviewer = Annotated[Principal, Depends(require("operator", "reviewer"))]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IdentityIn(Body):
    id_number: str = Field(max_length=40, description="resident id, or USCC for organizations")
    name: str = Field(min_length=1, max_length=100)
    phone: str = Field(max_length=30)
    representative_name: str | None = Field(None, max_length=100)
    representative_id_number: str | None = Field(None, max_length=40)


class AvatarIn(Body):
    data_base64: str | None = Field(None, max_length=7_000_000)
    url: str | None = Field(None, max_length=2000, pattern=r"^https?://")
    sha256: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$")


class ProfileIn(Body):
    name: str = Field(min_length=1, max_length=30)
    description: str = Field(max_length=500)
    avatar: AvatarIn


class OrganizationIn(Body):
    business_name: str = Field(min_length=1, max_length=200)
    registered_address: str = Field(min_length=1, max_length=300)
    primary_business: str = Field(min_length=1, max_length=300)
    business_scope: str = Field(min_length=1, max_length=2000)


class RegisterAccount(Body):
    entity_type: Literal["natural_person", "legal_person", "unincorporated_organization"]
    identity: IdentityIn
    profile: ProfileIn
    category: str = Field(max_length=40)
    province: str
    operations_province: str
    contact: str = Field(min_length=1, max_length=200)
    organization: OrganizationIn | None = None
    agreement_version: str = Field(max_length=40)
    device_fingerprint: str | None = Field(None, max_length=200)
    network: str | None = Field(None, max_length=100, description="client IP or network id")


class ChangeProfile(Body):
    name: str | None = Field(None, min_length=1, max_length=30)
    description: str | None = Field(None, max_length=500)
    avatar: AvatarIn | None = None


class AcceptAgreement(Body):
    version: str = Field(max_length=40)


class RecordActivity(Body):
    kind: Literal["login", "publish", "interaction", "api_use"] = "login"


class Note(Body):
    note: str = Field("", max_length=500)


class Review(Body):
    approve: bool
    note: str = Field("", max_length=500)


class Sweep(Body):
    now: datetime | None = Field(None, description="the clock of this run (default: now)")
    account_ids: list[str] | None = Field(None, max_length=1000,
                                          description="only these accounts (default: all due)")


def _deps(request: Request) -> Deps:
    return request.app.state.runtime.deps


def _sealer(request: Request) -> Sealer:
    return request.app.state.runtime.sealer


def _answer(request: Request, answer: Answer, headers: dict | None = None) -> JSONResponse:
    if answer.status >= 400:
        return JSONResponse({**answer.body, "instance": request.url.path},
                            status_code=answer.status, media_type=MEDIA_TYPE)
    return JSONResponse(answer.body, status_code=answer.status, headers=headers)


def _identity_problem(exc: ids.IdentityNumberError, field: str) -> ProblemError:
    return ProblemError(exc.detail, status=422, code=exc.code, title="Invalid identity data",
                        field=field)


def _avatar(avatar: AvatarIn) -> dict[str, Any]:
    from libs.screening import InvalidImageError, avatar_fingerprint

    if avatar.data_base64 is not None:
        try:
            fp = avatar_fingerprint(base64.b64decode(avatar.data_base64, validate=True))
        except (binascii.Error, InvalidImageError) as exc:
            raise ProblemError(f"the avatar is not an acceptable image: {exc}",
                               status=422, code="invalid-avatar", title="Invalid avatar") from None
        return {"avatar_sha256": fp.sha256, "avatar_phash": fp.phash}
    if avatar.url and avatar.sha256:
        return {"avatar_sha256": avatar.sha256.lower(), "avatar_url": avatar.url}
    raise ProblemError("give the avatar as data_base64, or as url with its sha256",
                       status=422, code="invalid-avatar", title="Invalid avatar")


def _application(body: RegisterAccount, sealer: Sealer) -> Application:
    i, org = body.identity, body.entity_type != "natural_person"
    try:
        number = ids.social_credit_code(i.id_number) if org else ids.resident_id(i.id_number)
    except ids.IdentityNumberError as exc:
        raise _identity_problem(exc, "identity.id_number") from None
    try:
        phone = ids.mobile_number(i.phone)
    except ids.IdentityNumberError as exc:
        raise _identity_problem(exc, "identity.phone") from None
    rep_id = None
    if i.representative_id_number:
        try:
            rep_id = ids.resident_id(i.representative_id_number)
        except ids.IdentityNumberError as exc:
            raise _identity_problem(exc, "identity.representative_id_number") from None
    for field, code in (("province", body.province),
                        ("operations_province", body.operations_province)):
        try:
            ids.province(code)
        except ids.IdentityNumberError as exc:
            raise _identity_problem(exc, field) from None
    id_blind, phone_blind = sealer.blind("id_number", number), sealer.blind("phone", phone)
    sealed = {
        "id_kind": "uscc" if org else "resident_id",
        "id_number_sealed": sealer.seal(number), "id_number_blind": id_blind,
        "id_number_masked": mask_id_number(number),
        "holder_name_sealed": sealer.seal(i.name), "holder_name_masked": mask_name(i.name),
        "phone_sealed": sealer.seal(phone), "phone_blind": phone_blind,
        "phone_masked": mask_phone(phone),
        "representative_name_sealed": (sealer.seal(i.representative_name)
                                       if i.representative_name else None),
        "representative_id_sealed": sealer.seal(rep_id) if rep_id else None,
    }
    p = body.profile
    payload = {
        "entity_type": body.entity_type, "identity": sealed,
        "profile": {"name": p.name, "description": p.description, **_avatar(p.avatar)},
        "category": body.category, "province": body.province,
        "operations_province": body.operations_province,
        "contact_sealed": sealer.seal(body.contact), "contact_masked": _mask_contact(body.contact),
        "organization": body.organization.model_dump() if body.organization else None,
        "agreement_version": body.agreement_version,
        "legal_basis": ["A2", "A6", "A7.1", "A10.1"],
    }
    return Application(
        entity_type=body.entity_type, category=body.category, payload=payload,
        id_blind=id_blind, phone_blind=phone_blind,
        device_blind=(sealer.blind("device", body.device_fingerprint)
                      if body.device_fingerprint else None),
        network_blind=sealer.blind("network", body.network) if body.network else None,
        profile_name=p.name, has_organization=body.organization is not None,
        has_representative=bool(i.representative_name and rep_id))


def _mask_contact(contact: str) -> str:
    return mask_phone(contact) if re.fullmatch(r"[+\d\s-]{7,}", contact) else mask_name(contact)


@router.post("/accounts", status_code=202)
async def register_account(body: RegisterAccount, request: Request, principal: Writer,
                           key: IdempotencyKey = None) -> JSONResponse:
    """Register an account (Art. 15): 202 pending verification or held for review."""
    app = _application(body, _sealer(request))
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
    avatar = _avatar(body.avatar) if body.avatar else None
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

    deps = request.app.state.runtime.deps

    async def sweep() -> Answer:
        return Answer(200, await run(deps, now=body.now, only=body.account_ids))

    answer = await run_once(deps.db, key, scope="registration.sweep",
                            digest=fingerprint(body.model_dump(mode="json")), run=sweep)
    return answer.body
