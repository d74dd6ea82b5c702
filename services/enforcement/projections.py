"""Read models of enforcement, pure folds over its own events (rebuildable): violations,
measures and cases, each a document per id; what reports, the sweep and lists read."""

from __future__ import annotations

from typing import Any

from libs.events import DocumentProjection, Envelope

from .domain import P

Doc = dict[str, Any] | None

VIOLATION_EVENTS = (P + "ViolationReported", P + "ViolationConfirmed", P + "ViolationDismissed",
                    P + "MeasureDecided")
MEASURE_EVENTS = (P + "MeasureDecided", P + "MeasureApplied", P + "MeasureLifted")
CASE_EVENTS = (P + "AppealFiled", P + "ComplaintFiled", P + "CaseStepTaken", P + "CaseResponded")


def evolve_violation(doc: Doc, e: Envelope) -> Doc:
    d, name = e.data, e.type.removeprefix(P)
    if name == "ViolationReported":
        return {"violation_id": d["violation_id"], "account_id": d["account_id"],
                "category": d["category"], "source": d["source"], "province": d["province"],
                "evidence": d["evidence"], "reported_by": d["reported_by"],
                "reported_at": d["reported_at"], "status": "reported", "decided_at": None,
                "decided_by": None, "intake_to_decision_seconds": None, "measure_id": None,
                "event_ids": [e.id]}
    if doc is None:
        return None
    if name == "MeasureDecided":
        return {**doc, "measure_id": d["measure_id"]}
    return {**doc, "status": "confirmed" if name == "ViolationConfirmed" else "dismissed",
            "decided_at": d["decided_at"], "decided_by": d["decided_by"], "note": d["note"],
            "intake_to_decision_seconds": d["intake_to_decision_seconds"],
            "event_ids": [*doc["event_ids"], e.id]}


def evolve_measure(doc: Doc, e: Envelope) -> Doc:
    d, name = e.data, e.type.removeprefix(P)
    if name == "MeasureDecided":
        return {"measure_id": d["measure_id"], "account_id": d["account_id"],
                "violation_id": d["violation_id"], "category": d["category"],
                "province": d["province"], "measure": d["measure"],
                "capabilities": d["capabilities"], "duration_days": d["duration_days"],
                "reversible": d["reversible"], "ban_severity": d["ban_severity"],
                "policy_id": d["policy_id"], "policy_version": d["policy_version"],
                "rule": d["rule"], "step": d["step"], "prior_violations": d["prior_violations"],
                "credit_level": d["credit_level"], "legal_basis": d["legal_basis"],
                "decided_at": e.time.isoformat(), "starts_at": None, "ends_at": None,
                "status": "active", "lifted_at": None, "lifted_reason": None,
                "event_ids": [e.id]}
    if doc is None:
        return None
    if name == "MeasureApplied":
        return {**doc, "starts_at": d["starts_at"], "ends_at": d["ends_at"],
                "event_ids": [*doc["event_ids"], e.id]}
    return {**doc, "status": "lifted", "lifted_at": e.time.isoformat(),
            "lifted_reason": d["reason"], "event_ids": [*doc["event_ids"], e.id]}


def evolve_case(doc: Doc, e: Envelope) -> Doc:
    d, name = e.data, e.type.removeprefix(P)
    if name in ("AppealFiled", "ComplaintFiled"):
        return {"case_id": d["case_id"], "kind": "appeal" if name == "AppealFiled" else "complaint",
                "account_id": d["account_id"], "province": d.get("province"),
                "measure_id": d.get("measure_id"), "category": d.get("category"),
                "reason": d["reason"], "contact_masked": d.get("contact_masked"),
                "urls": d.get("urls", []), "received_at": d["received_at"],
                "deadline": d["deadline"], "working_days": d["working_days"],
                "step": "received", "assignee": None, "outcome": None, "response": None,
                "steps": [{"step": "received", "at": d["received_at"], "by": d.get("filed_by"),
                           "assignee": None}]}
    if doc is None:
        return None
    if name == "CaseStepTaken":
        return {**doc, "step": d["step"], "assignee": d.get("assignee") or doc["assignee"],
                "steps": [*doc["steps"], {"step": d["step"], "at": d["at"], "by": d["by"],
                                          "assignee": d.get("assignee"), "note": d["note"]}]}
    return {**doc, "step": "responded", "outcome": d["outcome"], "response": d["response"],
            "responded_at": d["at"],
            "steps": [*doc["steps"], {"step": "responded", "at": d["at"], "by": d["by"],
                                      "assignee": doc["assignee"]}]}


def _field(name: str):
    return lambda e: e.data[name]


def all_projections() -> list[DocumentProjection]:
    return [
        DocumentProjection("enforcement_violations", evolve_violation,
                           event_types=VIOLATION_EVENTS, key=_field("violation_id")),
        DocumentProjection("enforcement_measures", evolve_measure, event_types=MEASURE_EVENTS,
                           key=_field("measure_id")),
        DocumentProjection("enforcement_cases", evolve_case, event_types=CASE_EVENTS,
                           key=_field("case_id")),
    ]


def evolve_blacklist(doc: Doc, e: Envelope) -> Doc:
    """An account closed because its identity was blacklisted for rumors (A13.2), as credit
    announced it, and lifted when an upheld appeal overturned it (A20.2); kept by the
    consumer (not a fold of enforcement's own log)."""
    d = e.data
    if e.type == "credit.IdentityBlacklistLifted":
        if doc is None or doc["blacklist_id"] != d["blacklist_id"]:
            return doc
        return {**doc, "status": "lifted", "lifted_at": e.time.isoformat(),
                "overruled_strike_id": d["overruled_strike_id"],
                "lift_event_id": e.id}
    return {"account_id": d["account_id"], "identity_blind": d["identity_blind"],
            "blacklist_id": d["blacklist_id"], "account_ids": d["account_ids"],
            "strike_ids": d["strike_ids"], "legal_basis": d["legal_basis"], "at": d["at"],
            "status": "standing", "event_id": e.id}


BLACKLISTS = DocumentProjection("enforcement_blacklists", evolve_blacklist,
                                event_types=("credit.IdentityBlacklisted",
                                             "credit.IdentityBlacklistLifted"),
                                key=lambda e: e.data["account_id"])
