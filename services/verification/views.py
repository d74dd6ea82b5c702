"""Queries for the API and the sweep: read models (eventually consistent) and the
account's own stream (for one account's state, folded on request)."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel, Field
from sqlalchemy import text

from libs.domain import NotFoundError
from libs.events import Streams
from libs.events.contracts.registration import Profile
from libs.events.contracts.verification import Finding, ProtectedLogo
from libs.events.db import Tx
from libs.runtime.pii import Sealer, open_identity
from libs.runtime.responses import Page

from .domain import Verification

_PAGE = text("SELECT key, doc FROM projection_documents WHERE projection = :p "
             "AND key > :after ORDER BY key LIMIT :limit")
_GET = text("SELECT doc FROM projection_documents WHERE projection = :p AND key = :key")
_DOCUMENT = text("SELECT content_type, data FROM verification_documents WHERE sha256 = :sha")


# -- what the reads answer (their response models) -------------------------------------------
# The routes validate the read models' documents and what present() and disclose() build
# against these, and answer with ``response_model_exclude_unset``: a member a document
# lacks stays absent.
class ProtectedNameView(BaseModel):
    """A protected name as the registry lists it (the holder only as its blind index)."""

    protected_id: str
    name: str
    kind: str
    aliases: list[str]
    holder_blind: str | None
    logo: ProtectedLogo | None
    added_by: str
    added_at: str


class ProtectedNamePage(Page[ProtectedNameView]):
    """A page of protected names in id order."""


class ProhibitedWords(BaseModel):
    words: list[str] = Field(description="in force: configured plus added, minus removed")


class MaterialView(BaseModel):
    """The material as submitted (the document itself: ``GET .../document``)."""

    qualification_type: str
    number: str
    issuer: str
    valid_from: str
    valid_until: str
    document_sha256: str
    document_content_type: str
    document_bytes: int


class ReviewDecision(BaseModel):
    reviewer: str
    note: str
    at: str


class ReviewCase(BaseModel):
    """A qualification or news-permit case (A9.1, A5) and what the reviewer checks."""

    case_id: str
    account_id: str
    kind: str
    status: str = Field(description="pending, approved, rejected or expired")
    submitted_at: str
    needs: str = Field(description="what to check")
    material: MaterialView
    decision: ReviewDecision | None


class ReviewPage(Page[ReviewCase]):
    """A page of the reviewer queue in case-id order."""


class IdentityReview(BaseModel):
    """An identity no provider could decide by the deadline (A8.1)."""

    account_id: str
    case_id: str
    kind: str
    status: str
    reasons: list[str]
    attempts: int
    since: str


class IdentityReviewPage(Page[IdentityReview]):
    """A page of identities waiting for a reviewer, in account-id order."""


class IdentityState(BaseModel):
    status: str = Field(description="pending, manual_review, verified or failed")
    level: str | None
    factors: list[str]
    reasons: list[str]
    extra_verification_required: bool
    id_kind: str
    id_number_masked: str
    holder_name_masked: str
    phone_masked: str


class ProfileState(BaseModel):
    status: str = Field(description="pending, passed or mismatch")
    current: Profile  # as the registration event carries it
    findings: list[Finding]  # as the events carry them (A8.2)


class QualificationCase(BaseModel):
    """A case as the account's verification folds it; ``reviewer``, ``note`` and
    ``approved_event_id`` once decided."""

    kind: str
    qualification_type: str
    number: str
    issuer: str
    valid_from: str
    valid_until: str
    document_sha256: str
    document_content_type: str
    status: str
    submitted_at: str
    event_id: str
    label: str | None
    reviewer: str | None = None
    note: str | None = None
    approved_event_id: str | None = None


class QualificationsState(BaseModel):
    needs: list[str]
    missing: list[str]
    cases: dict[str, QualificationCase] = Field(description="case id -> case")
    labels: list[str]


class BadgeState(BaseModel):
    kind: str | None
    active: bool


class StandingState(BaseModel):
    status: str
    suspensions: list[str]


class VerificationView(BaseModel):
    """The account's whole verification state (views.present), personal data masked."""

    account_id: str
    status: str
    entity_type: str
    category: str
    province: str
    identity: IdentityState
    profile: ProfileState
    qualifications: QualificationsState
    badge: BadgeState
    standing: StandingState
    verified: bool
    verified_at: str | None
    last_inspected_at: str | None
    reinspections: dict[str, str] = Field(description="re-inspection id -> its outcome")
    stream_version: int


class PublicProfile(BaseModel):
    name: str | None
    description: str | None


class OwnerChangeNotice(BaseModel):
    """A completed transfer (A11.2): date, previous and new entity and name."""

    transfer_id: str
    changed_at: str
    previous_entity_type: str | None
    previous_name: str | None
    new_entity_type: str
    new_name: str
    ad_revenue_paused_until: str | None


class PublicOperator(BaseModel):
    name: str = Field(description="masked")


class PublicOrganization(BaseModel):
    business_name: str | None
    registered_address: str | None
    unified_social_credit_code: str
    contact: str | None = Field(description="only if the organization declared it public")


class PublicAccount(BaseModel):
    """What the public sees of a verified, live account (A9.2): ``operator`` for a natural
    person, ``organization`` for the others."""

    account_id: str
    verified: bool
    badge: str | None
    standing: str
    entity_type: str
    category: str
    province: str
    qualification_labels: list[str]
    news_permit_number: str | None
    profile: PublicProfile
    owner_changes: list[OwnerChangeNotice]
    operator: PublicOperator | None = None
    organization: PublicOrganization | None = None


async def page(tx: Tx, projection: str, *, after: str = "", limit: int = 50
               ) -> tuple[list[dict[str, Any]], str | None]:
    """A page of documents in key order and the cursor of the next page (None at the end)."""
    rows = await tx.fetch(_PAGE, {"p": projection, "after": after, "limit": limit + 1})
    docs = [orjson.loads(r[1]) for r in rows[:limit]]
    return docs, (rows[limit - 1][0] if len(rows) > limit else None)


async def get(tx: Tx, projection: str, key: str) -> dict[str, Any] | None:
    raw = await tx.fetchval(_GET, {"p": projection, "key": key})
    return orjson.loads(raw) if raw else None


async def everything(tx: Tx, projection: str) -> list[dict[str, Any]]:
    docs, after = [], ""
    while True:
        batch, after = await page(tx, projection, after=after, limit=1000)
        docs += batch
        if after is None:
            return docs


async def review_case(tx: Tx, case_id: str) -> dict[str, Any]:
    """One review case, decided or not (the read model). The reviewer queue
    (``pending_reviews``) and ``review_cases`` are folded from the same events by two
    runners, each at its own pace: a case a reviewer has just seen in the queue may not be
    in ``review_cases`` yet, and the queue's document (the same case, pending) stands in."""
    for projection in ("review_cases", "pending_reviews"):
        case = await get(tx, projection, case_id)
        if case is not None:
            return case
    raise NotFoundError(f"no review case {case_id}", code="review-case-not-found",
                        title="No such review case")


async def review_document(tx: Tx, case_id: str) -> tuple[str, bytes]:
    """The case's document as uploaded: its content type and bytes."""
    case = await review_case(tx, case_id)
    row = await tx.fetchrow(_DOCUMENT, {"sha": case["material"]["document_sha256"]})
    if row is None:
        raise NotFoundError("the document is gone", code="document-not-found", title="No document")
    return row[0], bytes(row[1])


async def state_of(verifications: Streams[Verification], tx: Tx, account_id: str
                   ) -> Verification:
    """The account's verification folded from its stream (consistent, unlike read models)."""
    state = await verifications.load(tx, account_id)
    if state is None:
        raise NotFoundError(f"no verification for account {account_id} (yet: it starts when "
                            "the registration event arrives)", code="verification-not-found",
                            title="No verification for this account")
    return state


def _status(s: Verification) -> str:
    if s.identity_status == "failed":
        return "identity_failed"
    if s.verified:
        return "verified"
    if s.profile_status == "mismatch":
        return "profile_mismatch"
    if s.missing:
        return "awaiting_qualification"
    return "pending"


def present(s: Verification) -> dict[str, Any]:
    """The full verification state for the platform, operators and reviewers (masked)."""
    i = s.identity
    return {
        "account_id": s.account_id, "status": _status(s), "entity_type": s.entity_type,
        "category": s.category, "province": s.province,
        "identity": {"status": s.identity_status, "level": s.identity_level,
                     "factors": list(s.identity_factors), "reasons": list(s.identity_reasons),
                     "extra_verification_required": s.extra, "id_kind": i["id_kind"],
                     "id_number_masked": i["id_number_masked"],
                     "holder_name_masked": i["holder_name_masked"],
                     "phone_masked": i["phone_masked"]},
        "profile": {"status": s.profile_status, "current": s.profile,
                    "findings": list(s.findings)},
        "qualifications": {"needs": list(s.needs), "missing": list(s.missing),
                           "cases": s.cases, "labels": s.labels},
        "badge": {"kind": s.badge, "active": s.badge_active},
        "standing": {"status": s.standing, "suspensions": list(s.suspensions)},
        "verified": s.verified,
        "verified_at": s.verified_at.isoformat() if s.verified_at else None,
        "last_inspected_at": s.last_inspected_at.isoformat() if s.last_inspected_at else None,
        "reinspections": s.reinspections, "stream_version": s.version,
    }


# Closed and deregistered accounts are gone from the platform: no page (A9.2).
LIVE_STANDINGS = ("in_service", "suspended")


def disclose(s: Verification, sealer: Sealer) -> dict[str, Any]:
    """What the public sees (A9.2) of a verified, live account: badge, field, labels,
    permit; an organization's USCC, business name and address, and its contact only if it
    declared it public; of a natural person no identity number, phone or contact (with a
    known birthday, the region and last characters of an ID number give the whole number
    back). Anything else: 404 (docs/decisions/0031-regulator-scope.md)."""
    if not s.verified or s.identity_status != "verified" or s.standing not in LIVE_STANDINGS:
        raise NotFoundError(f"no verified account {s.account_id}", code="verification-not-found",
                            title="No verification for this account")
    permits = [c["number"] for c in s.cases.values()
               if c["kind"] == "news_permit" and c["status"] == "approved"]
    body: dict[str, Any] = {
        "account_id": s.account_id, "verified": s.verified,
        # A9.2: no badge while the account is suspended
        "badge": s.badge if s.badge_active and s.standing == "in_service" else None,
        "standing": s.standing,
        "entity_type": s.entity_type, "category": s.category, "province": s.province,
        "qualification_labels": s.labels, "news_permit_number": permits[0] if permits else None,
        "profile": {"name": s.profile.get("name"), "description": s.profile.get("description")},
        # A11.2: every completed transfer's notice (date, previous and new entity and name)
        "owner_changes": list(s.owner_changes),
    }
    i = s.identity
    if s.entity_type == "natural_person":
        body["operator"] = {"name": i["holder_name_masked"]}
        return body
    uscc = open_identity(sealer, i, "id_number_sealed")
    org = s.organization or {}
    body["organization"] = {"business_name": org.get("business_name"),
                            "registered_address": org.get("registered_address"),
                            "unified_social_credit_code": uscc,
                            "contact": (sealer.open(s.contact_sealed,
                                                    subject=s.contact_subject
                                                    or i["id_number_blind"])
                                        if s.contact_public else None)}
    return body


