"""Read models of credit, pure folds over its own events (rebuildable): one document per
account (its level, last score, identity, counters) — what the sweep and lists read."""

from __future__ import annotations

from typing import Any

from libs.events import DocumentProjection, Envelope

from .domain import P

Doc = dict[str, Any] | None
PROFILES = "credit_profiles"
PROFILE_EVENTS = (P + "CreditFactRecorded", P + "CreditLevelChanged",
                  P + "TrafficAnomalyDetected", P + "ForcedFollowsCounted",
                  P + "CreditOverridden")


def evolve_profile(doc: Doc, e: Envelope) -> Doc:
    d, name = e.data, e.type.removeprefix(P)
    doc = doc or {"account_id": d["account_id"], "identity_blind": None, "level": "A",
                  "score": None, "facts": 0, "anomalies": 0, "forced_follows": 0,
                  "follower_swings": 0, "overrides": 0, "updated_at": None}
    doc = {**doc, "updated_at": e.time.isoformat()}
    if name == "CreditFactRecorded":
        doc["facts"] += 1
        if d["kind"] == "registered":
            doc["identity_blind"] = d.get("identity_blind")
    elif name == "CreditLevelChanged":
        doc["level"], doc["score"] = d["level"], d["score"]
    elif name == "TrafficAnomalyDetected":
        doc["anomalies"] += 1
        if d["kind"] == "follower_swing":
            doc["follower_swings"] += 1
    elif name == "ForcedFollowsCounted":
        doc["forced_follows"] += d["without_consent"]
    elif name == "CreditOverridden":
        doc["overrides"] += 1
    return doc


def all_projections() -> list[DocumentProjection]:
    return [DocumentProjection(PROFILES, evolve_profile, event_types=PROFILE_EVENTS,
                               key=lambda e: e.data["account_id"])]
