"""HTTP routes of the verification service; thin over the handlers (bodies: schemas.py)."""

from __future__ import annotations

import hashlib
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from libs.runtime.auth import Principal, require
from libs.runtime.idempotency import Answer, IdempotencyKey, fingerprint, run_once
from libs.runtime.problems import ProblemError

from . import handlers, views
from .handlers import Deps, NotFoundError
from .schemas import (
    DecisionIn,
    ProtectedNameIn,
    QualificationIn,
    SampleIn,
    SweepIn,
    WordsIn,
    aware,
    b64,
    holder_number,
)

router = APIRouter(prefix="/v1")

Platform = Annotated[Principal, Depends(require("platform"))]
Operator = Annotated[Principal, Depends(require("operator"))]
Reviewer = Annotated[Principal, Depends(require("reviewer"))]
Staff = Annotated[Principal, Depends(require("operator", "reviewer"))]
Reader = Annotated[Principal, Depends(require("platform", "operator", "reviewer"))]
MAX_DOCUMENT = 5_000_000


def _deps(request: Request) -> Deps:
    return request.app.state.runtime.deps


def _digest(request: Request, principal: Principal, body: BaseModel | None) -> str:
    return fingerprint(request.method, request.url.path, principal.subject,
                       body.model_dump(mode="json") if body else None)


def _json(answer: Answer) -> JSONResponse:
    return JSONResponse(answer.body, status_code=answer.status)


# -- protected names and prohibited words (A8.2) ---------------------------------------------
@router.post("/protected-names", status_code=201, tags=["registry"])
async def add_protected_name(body: ProtectedNameIn, request: Request, principal: Operator,
                             key: IdempotencyKey = None) -> JSONResponse:
    """Protect a name (organ, enterprise, person, medium) for its holder (A8.2)."""
    deps = _deps(request)
    data: dict[str, Any] = {"name": body.name, "kind": body.kind, "aliases": body.aliases,
                            "holder_blind": None, "logo": None, "added_by": principal.subject}
    if body.holder_id_number:
        data["holder_blind"] = deps.sealer.blind("id_number",
                                                 holder_number(body.holder_id_number, body.kind))
    if body.logo:
        from libs.screening import InvalidImageError, avatar_fingerprint

        try:
            fp = avatar_fingerprint(b64(body.logo, "logo"))
        except InvalidImageError as exc:
            raise ProblemError(f"the logo is not an acceptable image: {exc}", status=422,
                               code="invalid-logo", title="Invalid logo") from None
        data["logo"] = {"sha256": fp.sha256, "phash": fp.phash}
    return _json(await handlers.add_protected_name(
        deps, data, key=key, digest=_digest(request, principal, body)))


@router.get("/protected-names", tags=["registry"])
async def list_protected_names(request: Request, principal: Staff, cursor: str = "",
                               limit: int = Query(50, ge=1, le=500)) -> dict:
    """The protected names, in pages (the registry as of the read model)."""
    async with _deps(request).db.connect() as conn:
        items, next_cursor = await views.page(conn, "protected_names", after=cursor, limit=limit)
    return {"items": items, "next_cursor": next_cursor}


@router.delete("/protected-names/{protected_id}", tags=["registry"])
async def remove_protected_name(protected_id: str, request: Request, principal: Operator,
                                key: IdempotencyKey = None) -> JSONResponse:
    """Stop protecting a name."""
    return _json(await handlers.remove_protected_name(
        _deps(request), protected_id, by=principal.subject, key=key,
        digest=_digest(request, principal, None)))


@router.get("/prohibited-words", tags=["registry"])
async def list_prohibited_words(request: Request, principal: Staff) -> dict:
    """The prohibited words in force (configured plus added, minus removed)."""
    deps = _deps(request)
    await handlers.catch_up_registry(deps)
    return {"words": sorted(deps.registry.words.values())}


@router.post("/prohibited-words", tags=["registry"])
async def change_prohibited_words(body: WordsIn, request: Request, principal: Operator,
                                  key: IdempotencyKey = None) -> JSONResponse:
    """Add and remove prohibited words (A8.2)."""
    return _json(await handlers.change_prohibited_words(
        _deps(request), added=body.add, removed=body.remove, by=principal.subject, key=key,
        digest=_digest(request, principal, body)))


# -- qualifications and reviews (A9.1, A5) ---------------------------------------------------
@router.post("/accounts/{account_id}/qualifications", status_code=202, tags=["qualifications"])
async def submit_qualification(account_id: str, body: QualificationIn, request: Request,
                               principal: Platform, key: IdempotencyKey = None) -> JSONResponse:
    """Submit qualification material or a news permit; opens a review case (A9.1, A5)."""
    data = b64(body.document_base64, "document_base64")
    if not data or len(data) > MAX_DOCUMENT:
        raise ProblemError(f"the document must have 1 to {MAX_DOCUMENT:,} bytes", status=422,
                           code="invalid-document", title="Invalid document")
    valid_from, valid_until = aware(body.valid_from), aware(body.valid_until)
    if valid_until <= valid_from:
        raise ProblemError("valid_until must be after valid_from", status=422,
                           code="invalid-validity", title="Invalid validity")
    sha = hashlib.sha256(data).hexdigest()
    case_id = str(uuid.uuid4())
    deps = _deps(request)

    async def decide(state, tx):
        await handlers.keep_document(tx, sha256=sha, content_type=body.document_content_type,
                                     data=data, now=deps.clock())
        return state.submit_qualification(
            case_id=case_id, kind=body.kind, submitted_by=principal.subject,
            qualification_type=body.type, number=body.number, issuer=body.issuer,
            valid_from=valid_from.isoformat(), valid_until=valid_until.isoformat(),
            document_sha256=sha, document_content_type=body.document_content_type,
            document_bytes=len(data))

    answer = await handlers.account_command(
        deps, account_id, decide, key=key, digest=_digest(request, principal, body),
        scope="verification.qualifications",
        answer=lambda s, d: Answer(202, {"case_id": case_id, "account_id": account_id,
                                         "status": "pending"}))
    return JSONResponse(answer.body, status_code=answer.status,
                        headers={"Location": f"/v1/reviews/{answer.body['case_id']}"})


@router.get("/reviews", tags=["reviews"])
async def list_reviews(request: Request, principal: Staff,
                       status: Literal["pending"] = "pending", cursor: str = "",
                       limit: int = Query(50, ge=1, le=500)) -> dict:
    """The reviewer queue: pending cases and what each needs checked."""
    async with _deps(request).db.connect() as conn:
        items, next_cursor = await views.page(conn, "pending_reviews", after=cursor, limit=limit)
    return {"items": items, "next_cursor": next_cursor}


async def _case(request: Request, case_id: str) -> dict:
    async with _deps(request).db.connect() as conn:
        case = await views.get(conn, "review_cases", case_id)
    if case is None:
        raise ProblemError(f"no review case {case_id}", status=404, code="review-case-not-found",
                           title="No such review case")
    return case


@router.get("/reviews/{case_id}", tags=["reviews"])
async def get_review(case_id: str, request: Request, principal: Staff) -> dict:
    """One review case, decided or not."""
    return await _case(request, case_id)


@router.get("/reviews/{case_id}/document", tags=["reviews"])
async def get_review_document(case_id: str, request: Request, principal: Staff) -> Response:
    """The submitted document, as uploaded."""
    case = await _case(request, case_id)
    async with _deps(request).db.connect() as conn:
        found = await views.document(conn, case["material"]["document_sha256"])
    if found is None:
        raise ProblemError("the document is gone", status=404, code="document-not-found",
                           title="No document")
    return Response(found[1], media_type=found[0])


@router.post("/reviews/{case_id}/decision", tags=["reviews"])
async def decide_review(case_id: str, body: DecisionIn, request: Request, principal: Reviewer,
                        key: IdempotencyKey = None) -> JSONResponse:
    """Approve or reject a case; an approval may complete the account's verification."""
    case = await _case(request, case_id)
    deps = _deps(request)

    async def decide(state, tx):
        return state.decide_case(case_id=case_id, approve=body.decision == "approve",
                                 reviewer=principal.subject, note=body.note, now=deps.clock())

    def answer(state, decided):
        return Answer(200, {"case_id": case_id, "account_id": state.account_id,
                            "status": "approved" if body.decision == "approve" else "rejected",
                            "account_verified": any(t.endswith("AccountVerified")
                                                    for t, _ in decided)})

    return _json(await handlers.account_command(
        deps, case["account_id"], decide, key=key, digest=_digest(request, principal, body),
        scope="verification.decisions", answer=answer))


# -- state and disclosure (A9.2) --------------------------------------------------------------
async def _state(request: Request, account_id: str):
    deps = _deps(request)
    async with deps.db.connect() as conn:
        state = await handlers.load(deps, conn, account_id)
    if state is None:
        raise NotFoundError(f"no verification for account {account_id} (yet: it starts when "
                            "the registration event arrives)")
    return state


@router.get("/accounts/{account_id}/verification", tags=["accounts"])
async def get_verification(account_id: str, request: Request, principal: Reader) -> dict:
    """The account's full verification state (personal data masked)."""
    return views.present(await _state(request, account_id))


@router.get("/public/accounts/{account_id}", tags=["public"])
async def public_account(account_id: str, request: Request) -> dict:
    """Public disclosure (A9.2): badge, field, labels, and for organizations their
    registration details; a natural person's personal data masked. No authentication."""
    state = await _state(request, account_id)
    if state.identity_status == "failed":
        raise NotFoundError(f"no verified account {account_id}")
    return views.disclose(state, _deps(request).sealer)


# -- re-inspections (A9.3) and the sweep --------------------------------------------------------
@router.post("/accounts/{account_id}/reinspection", tags=["reinspections"])
async def reinspect_account(account_id: str, request: Request, principal: Operator,
                            key: IdempotencyKey = None) -> dict:
    """Re-inspect one verified account now (A9.3)."""
    deps = _deps(request)

    async def reinspect() -> Answer:
        outcome = await handlers.retrying(handlers.reinspect, deps, account_id, reason="sample",
                                          now=deps.clock())
        deps.committed()
        if outcome is None:
            raise ProblemError(f"account {account_id} is not verified", status=409,
                               code="not-verified", title="Not verified")
        return Answer(200, {"account_id": account_id, "outcome": outcome})

    answer = await run_once(deps.db, key, scope="verification.reinspection",
                            digest=fingerprint(account_id), run=reinspect)
    return answer.body


async def _sweep(request: Request, key: str | None, scope: str, body: BaseModel,
                 **kwargs) -> dict:
    from .sweep import run

    runtime = request.app.state.runtime

    async def sweep() -> Answer:
        await runtime.catch_up_projections()
        return Answer(200, await run(runtime.deps, **kwargs))

    answer = await run_once(runtime.deps.db, key, scope=scope,
                            digest=fingerprint(body.model_dump(mode="json")), run=sweep)
    return answer.body


@router.post("/reinspections/sample", tags=["reinspections"])
async def sample_reinspections(body: SampleIn, request: Request, principal: Operator,
                               key: IdempotencyKey = None) -> dict:
    """Re-inspect a random sample of verified accounts (A9.3)."""
    return await _sweep(request, key, "verification.sample", body,
                        now=body.now and aware(body.now), fraction=body.fraction,
                        seed=body.seed, periodic=False)


@router.post("/operations/sweep", tags=["operations"])
async def run_sweep(body: SweepIn, request: Request, principal: Operator,
                    key: IdempotencyKey = None) -> dict:
    """Expire qualifications and run due and sampled re-inspections at ``now``."""
    return await _sweep(request, key, "verification.sweep", body,
                        now=body.now and aware(body.now), fraction=body.fraction,
                        seed=body.seed, only=body.account_ids)
