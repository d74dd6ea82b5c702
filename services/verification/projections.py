"""Read models, pure folds over verification's own events, rebuildable:

- ``verification_schedule``: per account, what the sweep needs (verified, last inspected,
  validity of approved qualifications);
- ``review_cases``: every qualification case (for a decision's look-up and the document);
- ``pending_reviews``: the reviewer queue (a case leaves it when decided);
- ``identity_reviews``: identities waiting for a reviewer's verdict (A8.1, ADR 0026);
- ``protected_names``: the registry as the operator lists it.
"""

from __future__ import annotations

from typing import Any

from libs.events import DocumentProjection, Envelope

P = "verification."
Doc = dict[str, Any] | None
_CASE = (P + "QualificationSubmitted", P + "QualificationApproved", P + "QualificationRejected",
         P + "QualificationExpired")
_SCHEDULE = (P + "AccountVerified", P + "ReinspectionPassed", P + "ProfileMismatchFound",
             P + "QualificationApproved", P + "QualificationExpired", P + "ProfileCheckPassed")
_WHAT_TO_CHECK = {
    "professional": "professional qualification for the field (A9.1): issuer competent for "
                    "the field, number, validity, holder = the account's operator",
    "news_permit": "Internet news information service permit (A5): permit number, issuing "
                   "office, validity, holder = the account's organization",
    "licence": "licence for the service (A5 ¶1): number, issuer, validity",
}


def evolve_schedule(doc: Doc, e: Envelope) -> Doc:
    d = e.data
    doc = dict(doc or {"account_id": e.subject, "verified": False, "last_inspected_at": None,
                       "approved_until": {}})
    name = e.type.removeprefix(P)
    if name == "AccountVerified":
        doc["verified"] = True
        doc["last_inspected_at"] = doc["last_inspected_at"] or e.time.isoformat()
    elif name == "ReinspectionPassed":
        doc["last_inspected_at"] = e.time.isoformat()
    elif name == "ProfileMismatchFound" and not d.get("change_id"):
        doc["verified"] = False
        if d.get("reinspection_id"):
            doc["last_inspected_at"] = e.time.isoformat()
    elif name == "QualificationApproved":
        doc["approved_until"] = {**doc["approved_until"], d["case_id"]: d["valid_until"]}
    elif name == "QualificationExpired":
        doc["approved_until"] = {k: v for k, v in doc["approved_until"].items()
                                 if k != d["case_id"]}
    return doc


def evolve_case(doc: Doc, e: Envelope) -> Doc:
    d = e.data
    name = e.type.removeprefix(P)
    if name == "QualificationSubmitted":
        return {"case_id": d["case_id"], "account_id": d["account_id"], "kind": d["kind"],
                "status": "pending", "submitted_at": e.time.isoformat(),
                "needs": _WHAT_TO_CHECK[d["kind"]],
                "material": {k: d[k] for k in ("qualification_type", "number", "issuer",
                                               "valid_from", "valid_until", "document_sha256",
                                               "document_content_type", "document_bytes")},
                "decision": None}
    if doc is None:
        return None
    status = {"QualificationApproved": "approved", "QualificationRejected": "rejected",
              "QualificationExpired": "expired"}[name]
    decision = doc["decision"] if name == "QualificationExpired" else {
        "reviewer": d["reviewer"], "note": d.get("note", ""), "at": e.time.isoformat()}
    return {**doc, "status": status, "decision": decision}


def evolve_pending(doc: Doc, e: Envelope) -> Doc:
    after = evolve_case(doc, e)
    return after if after is not None and after["status"] == "pending" else None


def evolve_protected(doc: Doc, e: Envelope) -> Doc:
    if e.type == P + "ProtectedNameRemoved":
        return None
    d = e.data
    return {"protected_id": d["protected_id"], "name": d["name"], "kind": d["kind"],
            "aliases": d.get("aliases", []), "holder_blind": d.get("holder_blind"),
            "logo": d.get("logo"), "added_by": d["added_by"], "added_at": e.time.isoformat()}


_IDENTITY_REVIEW = (P + "IdentityReviewRequired", P + "IdentityVerified",
                    P + "IdentityVerificationFailed")


def evolve_identity_review(doc: Doc, e: Envelope) -> Doc:
    """An identity no provider could decide by the deadline, waiting for a reviewer (A8.1,
    ADR 0026); it leaves the queue once decided."""
    d = e.data
    if e.type == P + "IdentityReviewRequired":
        return {"account_id": d["account_id"], "case_id": d["case_id"], "kind": "identity",
                "status": "pending", "reasons": d["reasons"], "attempts": d["attempts"],
                "since": e.time.isoformat()}
    return None  # decided: out of the queue


def _case_key(e: Envelope) -> str:
    return e.data["case_id"]


def all_projections() -> list[DocumentProjection]:
    return [
        DocumentProjection("verification_schedule", evolve_schedule, event_types=_SCHEDULE),
        DocumentProjection("review_cases", evolve_case, event_types=_CASE, key=_case_key),
        DocumentProjection("pending_reviews", evolve_pending, event_types=_CASE, key=_case_key),
        DocumentProjection("identity_reviews", evolve_identity_review,
                           event_types=_IDENTITY_REVIEW),
        DocumentProjection("protected_names", evolve_protected,
                           event_types=(P + "ProtectedNameAdded", P + "ProtectedNameRemoved")),
    ]
