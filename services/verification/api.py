"""HTTP routes of the verification service: parse, authorize, call one handler (or one
view), present. Bodies and their translation: schemas.py."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from libs.runtime.app import service_deps
from libs.runtime.auth import Principal, require
from libs.runtime.idempotency import IdempotencyKey, fingerprint
from libs.runtime.limits import UPLOAD
from libs.runtime.openapi import downloads
from libs.runtime.responses import location
from libs.runtime.scope import ReadScope, read_scope
from libs.runtime.uploads import attachment_headers

from . import handlers, sweep, views
from .handlers import Deps as Dependencies
from .schemas import (
    DecisionIn,
    ProtectedNameIn,
    QualificationIn,
    SampleIn,
    SweepIn,
    WordsIn,
    aware,
    protected_name,
    submission,
)

router = APIRouter(prefix="/v1")

Deps = Annotated[Dependencies, Depends(service_deps)]
Platform = Annotated[Principal, Depends(require("platform"))]
Operator = Annotated[Principal, Depends(require("operator"))]
Reviewer = Annotated[Principal, Depends(require("reviewer"))]
# Reads take the one scoping dependency, whoever they admit (ADR 0031).
StaffReader = Annotated[ReadScope, Depends(read_scope("operator", "reviewer"))]
Reader = Annotated[ReadScope, Depends(read_scope("platform", "operator", "reviewer",
                                                 "regulator"))]


def _digest(request: Request, principal: Principal, body: BaseModel | None) -> str:
    return fingerprint(request.method, request.url.path, principal.subject,
                       body.model_dump(mode="json") if body else None)


# Commands that answer a JSONResponse declare it with ``response_model``: the OpenAPI's only
# (FastAPI returns a Response as it is, unvalidated, unencoded). Reads return documents,
# validated against their model; a member a document lacks stays absent
# (``response_model_exclude_unset``, views.py).

# -- protected names and prohibited words (A8.2) ---------------------------------------------
@router.post("/protected-names", status_code=201, tags=["registry"], openapi_extra=UPLOAD,
             response_model=handlers.ProtectedNameKept)
async def add_protected_name(body: ProtectedNameIn, request: Request, principal: Operator,
                             deps: Deps, key: IdempotencyKey = None) -> JSONResponse:
    """Protect a name (organ, enterprise, person, medium) for its holder (A8.2)."""
    kept = await handlers.add_protected_name(
        deps, protected_name(body, deps.sealer, principal.subject), key=key,
        digest=_digest(request, principal, body))
    return JSONResponse(kept.model_dump(mode="json"), status_code=201)


@router.get("/protected-names", tags=["registry"], response_model=views.ProtectedNamePage,
            response_model_exclude_unset=True)
async def list_protected_names(scope: StaffReader, deps: Deps, cursor: str = "",
                               limit: int = Query(50, ge=1, le=500)) -> dict:
    """The protected names, in pages (the registry as of the read model)."""
    async with deps.db.connect() as conn:
        items, next_cursor = await views.page(conn, "protected_names", after=cursor, limit=limit)
    return {"items": items, "next_cursor": next_cursor}


@router.delete("/protected-names/{protected_id}", tags=["registry"])
async def remove_protected_name(protected_id: str, request: Request, principal: Operator,
                                deps: Deps, key: IdempotencyKey = None
                                ) -> handlers.ProtectedNameDropped:
    """Stop protecting a name."""
    dropped = await handlers.remove_protected_name(
        deps, protected_id, by=principal.subject, key=key,
        digest=_digest(request, principal, None))
    return dropped


@router.get("/prohibited-words", tags=["registry"])
async def list_prohibited_words(scope: StaffReader, deps: Deps) -> views.ProhibitedWords:
    """The prohibited words in force (configured plus added, minus removed)."""
    return views.ProhibitedWords(words=await handlers.prohibited_words(deps))


@router.post("/prohibited-words", tags=["registry"])
async def change_prohibited_words(body: WordsIn, request: Request, principal: Operator,
                                  deps: Deps, key: IdempotencyKey = None) -> handlers.WordsChanged:
    """Add and remove prohibited words (A8.2)."""
    changed = await handlers.change_prohibited_words(
        deps, added=body.add, removed=body.remove, by=principal.subject, key=key,
        digest=_digest(request, principal, body))
    return changed


# -- qualifications and reviews (A9.1, A5) ---------------------------------------------------
@router.post("/accounts/{account_id}/qualifications", status_code=202,
             tags=["qualifications"], openapi_extra=UPLOAD, response_model=handlers.CaseOpened,
             responses={202: location("the review case: GET /v1/reviews/{case_id}")})
async def submit_qualification(account_id: str, body: QualificationIn, request: Request,
                               principal: Platform, deps: Deps,
                               key: IdempotencyKey = None) -> JSONResponse:
    """Submit qualification material or a news permit; opens a review case (A9.1, A5)."""
    opened = await handlers.submit_qualification(
        deps, account_id, submission(body), by=principal.subject, key=key,
        digest=_digest(request, principal, body))
    return JSONResponse(opened.model_dump(mode="json"), status_code=202,
                        headers={"Location": f"/v1/reviews/{opened.case_id}"})


@router.get("/reviews", tags=["reviews"], response_model=views.ReviewPage,
            response_model_exclude_unset=True)
async def list_reviews(scope: StaffReader, deps: Deps, status: Literal["pending"] = "pending",
                       cursor: str = "", limit: int = Query(50, ge=1, le=500)) -> dict:
    """The reviewer queue: pending cases and what each needs checked."""
    async with deps.db.connect() as conn:
        items, next_cursor = await views.page(conn, "pending_reviews", after=cursor, limit=limit)
    return {"items": items, "next_cursor": next_cursor}


@router.get("/identity-reviews", tags=["reviews"], response_model=views.IdentityReviewPage,
            response_model_exclude_unset=True)
async def list_identity_reviews(scope: StaffReader, deps: Deps, cursor: str = "",
                                limit: int = Query(50, ge=1, le=500)) -> dict:
    """Identities no provider could decide by the deadline, waiting for a reviewer's
    verdict (A8.1): the reasons and attempts behind each."""
    async with deps.db.connect() as conn:
        items, next_cursor = await views.page(conn, "identity_reviews", after=cursor,
                                              limit=limit)
    return {"items": items, "next_cursor": next_cursor}


@router.post("/identity-reviews/{account_id}/decision", tags=["reviews"])
async def decide_identity_review(account_id: str, body: DecisionIn, request: Request,
                                 principal: Reviewer, deps: Deps,
                                 key: IdempotencyKey = None) -> handlers.IdentityReviewed:
    """Verify the identity by manual review, or refuse it (``IdentityVerificationFailed``,
    as after a provider's mismatch); only while it waits for a reviewer."""
    decided = await handlers.decide_identity_review(
        deps, account_id, approve=body.decision == "approve", reviewer=principal.subject,
        note=body.note, key=key, digest=_digest(request, principal, body))
    return decided


@router.get("/reviews/{case_id}", tags=["reviews"], response_model=views.ReviewCase,
            response_model_exclude_unset=True)
async def get_review(case_id: str, scope: StaffReader, deps: Deps) -> dict:
    """One review case, decided or not."""
    async with deps.db.connect() as conn:
        return await views.review_case(conn, case_id)


@router.get("/reviews/{case_id}/document", tags=["reviews"], response_class=Response,
             responses=downloads("*/*"))
async def get_review_document(case_id: str, scope: StaffReader, deps: Deps) -> Response:
    """The submitted document, as uploaded: an attachment, never rendered inline."""
    async with deps.db.connect() as conn:
        content_type, data = await views.review_document(conn, case_id)
    extension = {"application/pdf": "pdf", "image/png": "png", "image/jpeg": "jpg"}.get(
        content_type, "bin")
    return Response(data, media_type=content_type,
                    headers=attachment_headers(f"{case_id}.{extension}"))


@router.post("/reviews/{case_id}/decision", tags=["reviews"])
async def decide_review(case_id: str, body: DecisionIn, request: Request, principal: Reviewer,
                        deps: Deps, key: IdempotencyKey = None) -> handlers.CaseDecision:
    """Approve or reject a case; an approval may complete the account's verification."""
    decided = await handlers.decide_review(
        deps, case_id, approve=body.decision == "approve", reviewer=principal.subject,
        note=body.note, key=key, digest=_digest(request, principal, body))
    return decided


# -- state and disclosure (A9.2) --------------------------------------------------------------
@router.get("/accounts/{account_id}/verification", tags=["accounts"],
            response_model=views.VerificationView, response_model_exclude_unset=True)
async def get_verification(account_id: str, scope: Reader, deps: Deps) -> dict:
    """The account's full verification state (personal data masked); a regulator: of its
    province (A3, A21)."""
    async with deps.db.connect() as conn:
        state = await views.state_of(deps.verifications, conn, account_id)
    scope.check(state.province, f"verification of account {account_id}",
                code="verification-not-found")
    return views.present(state)


@router.get("/public/accounts/{account_id}", tags=["public"], response_model=views.PublicAccount,
            response_model_exclude_unset=True)
async def public_account(account_id: str, deps: Deps) -> dict:
    """Public disclosure (A9.2): badge, field, labels, and for organizations their
    registration details; a natural person's personal data masked. No authentication."""
    async with deps.db.connect() as conn:
        state = await views.state_of(deps.verifications, conn, account_id)
    return views.disclose(state, deps.sealer)


# -- re-inspections (A9.3) and the sweep --------------------------------------------------------
@router.post("/accounts/{account_id}/reinspection", tags=["reinspections"])
async def reinspect_account(account_id: str, principal: Operator, deps: Deps,
                            key: IdempotencyKey = None) -> handlers.Reinspected:
    """Re-inspect one verified account now (A9.3)."""
    done = await handlers.reinspect_now(deps, account_id, key=key,
                                        digest=fingerprint(account_id))
    return done


@router.post("/reinspections/sample", tags=["reinspections"])
async def sample_reinspections(body: SampleIn, principal: Operator, deps: Deps,
                               key: IdempotencyKey = None) -> sweep.SweepReport:
    """Re-inspect a random sample of verified accounts (A9.3)."""
    report = await sweep.once(deps, key=key, scope="verification.sample",
                              digest=fingerprint(body.model_dump(mode="json")),
                              now=deps.requested_clock(body.now and aware(body.now)),
                              fraction=body.fraction,
                              seed=body.seed, periodic=False)
    return report


@router.post("/operations/sweep", tags=["operations"])
async def run_sweep(body: SweepIn, principal: Operator, deps: Deps,
                    key: IdempotencyKey = None) -> sweep.SweepReport:
    """Expire qualifications and run due and sampled re-inspections at ``now``."""
    report = await sweep.once(deps, key=key, scope="verification.sweep",
                              digest=fingerprint(body.model_dump(mode="json")),
                              now=deps.requested_clock(body.now and aware(body.now)),
                              fraction=body.fraction,
                              seed=body.seed, only=body.account_ids)
    return report
