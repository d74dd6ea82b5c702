"""Queries over the read models and how a score is presented: every contribution with the
event it rests on (A13.1: a level is explained)."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import orjson
from pydantic import BaseModel, Field
from sqlalchemy import text

from libs.events.db import Tx

from . import rules
from .domain import Identity, Profile
from .projections import PROFILES

_ALL = text("SELECT key, doc FROM projection_documents WHERE projection = :p ORDER BY key")


# -- what the reads answer (their response models) -------------------------------------------
# The routes validate what explain() and handlers.identity_credit build against these.
class Contribution(BaseModel):
    """One term of the score and the event it rests on (A13.1)."""

    kind: str
    points: int
    source_event_id: str | None
    note: str


class TrafficAnomaly(BaseModel):
    """A count the fake-traffic detector found out of its expected range (A12.1)."""

    kind: str
    metric: str
    at: str
    observed: float
    expected_low: float
    expected_high: float
    event_id: str


class ForcedFollows(BaseModel):
    """Follows without the follower's consent (A12.2)."""

    without_consent: int
    total_follows: int
    follower_swings: int


class OverrideView(BaseModel):
    override_id: str
    points: int
    reason: str
    by: str
    expires_at: str
    active: bool
    event_id: str


class RumorStrikes(BaseModel):
    """The identity's strikes (violation ids) and blacklists (A13.2)."""

    live: list[str]
    expired: list[str]
    overruled: list[str]
    blacklisted: bool
    blacklist_ids: list[str]
    lifted_blacklist_ids: list[str]


class AccountCredit(BaseModel):
    """The account's score at ``as_of``, its level and management grade, explained
    (views.explain)."""

    account_id: str
    score: int
    level: str
    management_grade: str
    announced_level: str = Field(description="the level last announced (CreditLevelChanged)")
    model_version: str
    as_of: str
    identity_blind: str | None
    contributions: list[Contribution]
    traffic_anomalies: list[TrafficAnomaly]
    forced_follows: ForcedFollows
    overrides: list[OverrideView]
    rumor_strikes: RumorStrikes
    legal_basis: list[str]


class AccountLevel(BaseModel):
    score: int
    level: str
    management_grade: str


class IdentityCredit(BaseModel):
    """An identity's accounts and levels (the worst one its own), strikes and blacklists."""

    identity_blind: str
    accounts: dict[str, AccountLevel] = Field(description="account id -> its level")
    level: str
    management_grade: str
    rumor_strikes: RumorStrikes
    as_of: str


async def profiles(tx: Tx) -> list[dict[str, Any]]:
    return [orjson.loads(r[1]) for r in await tx.fetch(_ALL, {"p": PROFILES})]


def state_hash(docs: list[dict[str, Any]]) -> str:
    """A digest of the read model (rebuilding it from the log must give the same)."""
    canon = [{k: v for k, v in d.items() if k != "updated_at"} for d in docs]
    return hashlib.sha256(orjson.dumps(canon, option=orjson.OPT_SORT_KEYS)).hexdigest()


def strikes(identity: Identity | None, now: datetime, model: rules.ScoringModel
            ) -> dict[str, Any]:
    if identity is None:
        return {"live": [], "expired": [], "overruled": [], "blacklisted": False,
                "blacklist_ids": [], "lifted_blacklist_ids": []}
    standing = identity.standing
    live = rules.live_strikes(standing, now, model)
    return {"live": live, "expired": sorted((set(standing) - set(live)) | identity.expired),
            "overruled": sorted(identity.overruled),
            "blacklisted": bool(identity.standing_blacklists),
            "blacklist_ids": list(identity.standing_blacklists),
            "lifted_blacklist_ids": sorted(identity.lifted)}


def explain(profile: Profile, identity: Identity | None, now: datetime,
            model: rules.ScoringModel) -> dict[str, Any]:
    """The score at ``now``, its level and grade, and every contribution with its event."""
    s = rules.score(profile, now, model)
    return {
        "account_id": profile.account_id, "score": s.score, "level": s.level,
        "management_grade": s.grade, "announced_level": profile.level,
        "model_version": s.model_version, "as_of": now.isoformat(),
        "identity_blind": profile.identity_blind,
        "contributions": [{"kind": c.kind, "points": c.points,
                           "source_event_id": c.source_event_id, "note": c.note}
                          for c in s.contributions],
        "traffic_anomalies": [{"kind": a.kind, "metric": a.metric, "at": a.at.isoformat(),
                               "observed": a.observed, "expected_low": a.expected_low,
                               "expected_high": a.expected_high, "event_id": a.event_id}
                              for a in profile.anomalies],
        "forced_follows": {"without_consent": sum(f.count for f in profile.follows),
                           "total_follows": sum(f.total for f in profile.follows),
                           "follower_swings": sum(1 for a in profile.anomalies
                                                  if a.kind == "follower_swing")},
        "overrides": [{"override_id": o.override_id, "points": o.points, "reason": o.reason,
                       "by": o.by, "expires_at": o.expires_at.isoformat(),
                       "active": o.expires_at > now, "event_id": o.event_id}
                      for o in profile.overrides],
        "rumor_strikes": strikes(identity, now, model),
        "legal_basis": ["A13.1", "A7.2", "A12.1", "A12.2", "A13.2"],
    }
