"""HTTP routes of the enforcement service: parse, authorize, call one handler, present."""

from __future__ import annotations

import base64
import os
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel
from starlette.background import BackgroundTask

from libs.runtime.app import service_deps
from libs.runtime.auth import Principal, require
from libs.runtime.idempotency import IdempotencyKey, fingerprint
from libs.runtime.openapi import downloads
from libs.runtime.responses import location
from libs.runtime.scope import ReadScope, read_scope

from . import handlers, rules, sweep, views
from .handlers import Deps as Dependencies
from .handlers import Scope
from .schemas import (
    AppealIn,
    ComplaintIn,
    DecisionIn,
    LiftIn,
    ResponseIn,
    SimulateIn,
    StepIn,
    SweepIn,
    ViolationIn,
    aware,
    candidate_policy,
    complaint,
    period,
    violation,
)

router = APIRouter(prefix="/v1")

Deps = Annotated[Dependencies, Depends(service_deps)]
Platform = Annotated[Principal, Depends(require("platform"))]
Operator = Annotated[Principal, Depends(require("operator"))]
Reporter = Annotated[Principal, Depends(require("platform", "operator"))]
CaseStaff = Annotated[Principal, Depends(require("operator", "reviewer"))]
CaseReader = Annotated[ReadScope, Depends(read_scope("operator", "reviewer"))]
Reader = Annotated[ReadScope, Depends(read_scope("operator", "reviewer", "regulator"))]
MANIFEST_HEADER = "Enforcement-Manifest"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def signed_downloads(*media_types: str) -> dict[int | str, Any]:
    """``responses=`` of a route whose JSON 200 is its response model and whose files come
    in ``media_types``, with the signed manifest in a header."""
    responses = downloads(*media_types)
    responses[200]["headers"] = {MANIFEST_HEADER: {
        "description": "The signed manifest of a file (base64 of its canonical JSON); not "
                       "sent with JSON", "schema": {"type": "string"}}}
    return responses


def created(what: str) -> dict[int | str, Any]:
    """``responses=`` of a route that answers 201 with ``Location``: where ``what`` is."""
    return {201: location(f"The path of the {what} created")}


def _digest(request: Request, principal: Principal | None, body: BaseModel | None) -> str:
    return fingerprint(request.method, request.url.path,
                       principal.subject if principal else "public",
                       body.model_dump(mode="json") if body else None)


def _scope(s: ReadScope) -> Scope:
    """A regulator reads within its province (A3), whatever other roles it holds; the
    national office and staff roles see every province (province None)."""
    return Scope(subject=s.subject, regulator=s.regulator, province=s.province)


# -- violations (A18, A14, A19.1) ----------------------------------------------------------
@router.post("/violations", status_code=201, tags=["violations"],
             response_model=handlers.ViolationOut, responses=created("violation"))
async def report_violation(body: ViolationIn, request: Request, principal: Reporter,
                           deps: Deps, key: IdempotencyKey = None) -> JSONResponse:
    """A suspected violation at intake: account, Art. 18 or Art. 14 category, evidence,
    source, province."""
    out = await handlers.report_violation(deps, violation(body), by=principal.subject, key=key,
                                          digest=_digest(request, principal, body))
    return JSONResponse(out.model_dump(mode="json"), status_code=201,
                        headers={"Location": f"/v1/violations/{out.violation_id}"})


@router.post("/violations/{violation_id}/decision", tags=["violations"])
async def decide_violation(violation_id: str, body: DecisionIn, request: Request,
                           principal: Operator, deps: Deps, key: IdempotencyKey = None
                           ) -> handlers.ViolationOut:
    """Confirm (the policy decides and applies a measure) or dismiss."""
    out = await handlers.decide_violation(
        deps, violation_id, confirm=body.decision == "confirm", by=principal.subject,
        note=body.note, key=key, digest=_digest(request, principal, body))
    return out


@router.get("/violations", tags=["violations"], response_model=views.ViolationPage,
            response_model_exclude_unset=True)
async def list_violations(scope: Reader, deps: Deps, province: str | None = None,
                          account_id: str | None = None, cursor: str = "",
                          limit: int = Query(50, ge=1, le=500)) -> dict:
    items, nxt = await handlers.list_docs(deps, _scope(scope), views.VIOLATIONS,
                                          province=province, account_id=account_id,
                                          cursor=cursor, limit=limit)
    return {"items": items, "next_cursor": nxt}


@router.get("/measures", tags=["measures"], response_model=views.MeasurePage,
            response_model_exclude_unset=True)
async def list_measures(scope: Reader, deps: Deps, province: str | None = None,
                        account_id: str | None = None, cursor: str = "",
                        limit: int = Query(50, ge=1, le=500)) -> dict:
    """Measures with their legal basis, policy version, rule, evidence and duration."""
    items, nxt = await handlers.list_docs(deps, _scope(scope), views.MEASURES,
                                          province=province, account_id=account_id,
                                          cursor=cursor, limit=limit)
    return {"items": items, "next_cursor": nxt}


@router.post("/measures/{measure_id}/lift", tags=["measures"])
async def lift_measure(measure_id: str, body: LiftIn, request: Request, principal: Operator,
                       deps: Deps, key: IdempotencyKey = None) -> handlers.MeasureLiftedOut:
    """End a measure early by an operator's decision (``MeasureLifted``)."""
    out = await handlers.lift_measure(deps, body.account_id, measure_id, note=body.note,
                                      by=principal.subject, key=key,
                                      digest=_digest(request, principal, body))
    return out


# -- appeals and complaints (A20.2) ----------------------------------------------------------
@router.post("/appeals", status_code=201, tags=["cases"], response_model=handlers.CaseOut,
             responses=created("case"))
async def appeal(body: AppealIn, request: Request, principal: Platform, deps: Deps,
                 key: IdempotencyKey = None) -> JSONResponse:
    """The account's operator appeals a measure: once, within the appeal window."""
    out = await handlers.appeal(deps, account_id=body.account_id, measure_id=body.measure_id,
                                reason=body.reason, by=principal.subject, key=key,
                                digest=_digest(request, principal, body))
    return JSONResponse(out.model_dump(mode="json"), status_code=201,
                        headers={"Location": f"/v1/cases/{out.case_id}"})


@router.post("/complaints", status_code=201, tags=["cases", "public"],
             response_model=handlers.CaseOut, responses=created("case"))
async def complain(body: ComplaintIn, request: Request, deps: Deps,
                   key: IdempotencyKey = None) -> JSONResponse:
    """The public reporting portal: no authentication; answered within the complaint
    deadline (Chinese working days)."""
    out = await handlers.complain(deps, complaint(body), key=key,
                                  digest=_digest(request, None, body))
    return JSONResponse(out.model_dump(mode="json"), status_code=201,
                        headers={"Location": f"/v1/cases/{out.case_id}"})


@router.get("/blacklists", tags=["measures"], response_model=views.BlacklistPage,
            response_model_exclude_unset=True)
async def list_blacklists(scope: Reader, deps: Deps, province: str | None = None,
                          account_id: str | None = None, cursor: str = "",
                          limit: int = Query(50, ge=1, le=500)) -> dict:
    """Accounts closed because their identity was blacklisted for rumors (A13.2), as credit
    decided it, with the strikes behind it; ``status`` lifted once an upheld appeal
    overturned it (A20.2)."""
    items, nxt = await handlers.list_docs(deps, _scope(scope), views.BLACKLISTS,
                                          province=province, account_id=account_id,
                                          cursor=cursor, limit=limit, by_account=True)
    return {"items": items, "next_cursor": nxt}


@router.get("/cases", tags=["cases"], response_model=views.CasePage,
            response_model_exclude_unset=True)
async def list_cases(scope: Reader, deps: Deps, province: str | None = None,
                     account_id: str | None = None, cursor: str = "",
                     limit: int = Query(50, ge=1, le=500)) -> dict:
    items, nxt = await handlers.list_docs(deps, _scope(scope), views.CASES,
                                          province=province, account_id=account_id,
                                          cursor=cursor, limit=limit)
    return {"items": items, "next_cursor": nxt}


@router.get("/cases/{case_id}", tags=["cases"], response_model=views.CaseDoc,
            response_model_exclude_unset=True)
async def get_case(case_id: str, scope: CaseReader, deps: Deps) -> dict:
    """One case with its steps, assignee, deadline and response (the read model)."""
    async with deps.db.connect() as conn:
        return await views.one(conn, views.CASES, case_id, "case")


@router.post("/cases/{case_id}/steps", tags=["cases"])
async def take_step(case_id: str, body: StepIn, request: Request, principal: CaseStaff,
                    deps: Deps, key: IdempotencyKey = None) -> handlers.CaseOut:
    """Accept, screen, handle: in this order, each with its time and assignee."""
    out = await handlers.take_step(deps, case_id, step=body.step, by=principal.subject,
                                   assignee=body.assignee, note=body.note, key=key,
                                   digest=_digest(request, principal, body))
    return out


@router.post("/cases/{case_id}/response", tags=["cases"])
async def respond(case_id: str, body: ResponseIn, request: Request, principal: CaseStaff,
                  deps: Deps, key: IdempotencyKey = None) -> handlers.CaseOut:
    """The response; an upheld appeal lifts the measure."""
    out = await handlers.respond(deps, case_id, outcome=body.outcome, response=body.response,
                                 by=principal.subject, key=key,
                                 digest=_digest(request, principal, body))
    return out


# -- reports and filings for regulators (A19.2, A7.1, A3, A21.2) ----------------------------
@router.get("/reports/enforcement", tags=["reports"], response_model=views.EnforcementReportOut,
            responses=signed_downloads("application/zip", XLSX))
async def enforcement_report(scope: Reader, deps: Deps, province: str | None = None,
                             start: Annotated[datetime | None, Query(alias="from")] = None,
                             end: Annotated[datetime | None, Query(alias="to")] = None,
                             format: Literal["json", "csv", "xlsx"] = "json") -> Response:
    """Violations and measures by category, measure type and province, with the case
    listings; CSV (zipped) or XLSX carry the signed manifest in the ``Enforcement-Manifest``
    header (base64 JSON), JSON in its body."""
    start, end = period(start, end)
    out = await handlers.enforcement_report(deps, _scope(scope), province=province,
                                            start=start, end=end, fmt=format)
    if format == "json":
        return JSONResponse({**out.report, "manifest": out.manifest})
    header = base64.b64encode(rules.canonical(out.manifest)).decode()
    if format == "csv":
        files = {**out.files, "manifest.json": rules.canonical(out.manifest)}
        return Response(views.zipped(files), media_type="application/zip",
                        headers={MANIFEST_HEADER: header, "Content-Disposition":
                                 'attachment; filename="enforcement-report.zip"'})
    return Response(out.files["report.xlsx"], headers={
        MANIFEST_HEADER: header,
        "Content-Disposition": 'attachment; filename="report.xlsx"'},
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")


@router.get("/reports/signing-key", tags=["reports"])
async def signing_key(deps: Deps) -> handlers.SigningKeyOut:
    """The public key report manifests are signed with (Ed25519, hex)."""
    return handlers.SigningKeyOut(algorithm="Ed25519",
                                  public_key=rules.public_key_hex(deps.signing_key))


@router.get("/filings", tags=["reports"], response_model=views.FilingsOut,
            responses=signed_downloads("text/csv", XLSX))
async def filings(scope: Reader, deps: Deps, province: str | None = None,
                  format: Literal["json", "csv", "xlsx"] = "json") -> Response:
    """Registered accounts of a province for filing with its office (A7.1): category, entity
    type, business name, registered address, USCC, verification state. CSV and XLSX are
    streamed from disk with the signed manifest in the ``Enforcement-Manifest`` header."""
    if format != "json":
        out = await handlers.filing_export(deps, _scope(scope), province, format)
        media = ("text/csv; charset=utf-8" if format == "csv" else
                 "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
        return FileResponse(out.path, media_type=media, filename=out.filename,
                            background=BackgroundTask(os.unlink, out.path), headers={
                                MANIFEST_HEADER: base64.b64encode(
                                    rules.canonical(out.manifest)).decode()})
    items = await handlers.filings(deps, _scope(scope), province)
    return JSONResponse({"province": province or scope.province, "accounts": items})


# -- the policy (A19.2, A7.3) ------------------------------------------------------------------
@router.get("/policies/current", tags=["policies"], response_model=handlers.CurrentPolicyOut)
async def current_policy(scope: Reader, deps: Deps) -> dict:
    """The measure policy in force, for filing (A7.3): the document and its digest."""
    return await handlers.current_policy(deps, _scope(scope))


@router.get("/policies", tags=["policies"], response_model=handlers.PolicyVersionsOut,
            response_model_exclude_unset=True)
async def policy_versions(scope: Reader, deps: Deps) -> dict:
    """Every version of the measure policy that has been in force, for filing (A7.3)."""
    return {"versions": await handlers.policy_versions(deps, _scope(scope))}


@router.post("/policies", tags=["policies"])
async def activate_policy(body: SimulateIn, request: Request, principal: Operator, deps: Deps,
                          key: IdempotencyKey = None) -> handlers.PolicyActivated:
    """Put a new version of the measure policy in force (A7.3), after replaying history
    through it; the answer says how many past decisions it would have changed."""
    out = await handlers.activate_policy(
        deps, candidate_policy(body), by=principal.subject, key=key,
        digest=_digest(request, principal, body))
    return out


@router.post("/policies/simulate", tags=["policies"], response_model=handlers.SimulationOut)
async def simulate(body: SimulateIn, principal: Operator, deps: Deps) -> rules.Simulation:
    """Replay the confirmed violations through a candidate policy: which measures would
    differ. Appends and publishes nothing."""
    return await handlers.simulate(deps, candidate_policy(body))


# -- the sweep --------------------------------------------------------------------------------
@router.post("/operations/sweep", tags=["operations"])
async def run_sweep(body: SweepIn, principal: Operator, deps: Deps,
                    key: IdempotencyKey = None) -> sweep.SweepReport:
    """Lift measures whose time is up at ``now`` (default: the clock)."""
    report = await sweep.once(deps, key=key, digest=fingerprint(body.model_dump(mode="json")),
                              now=deps.requested_clock(aware(body.now)),
                              only=body.account_ids)
    return report
