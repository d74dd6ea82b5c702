"""Queries over the read models and how a score is presented: every contribution with the
event it rests on (A13.1: a level is explained)."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import text

from libs.events.db import Tx

from . import rules
from .domain import Identity, Profile
from .projections import PROFILES

_ALL = text("SELECT key, doc FROM projection_documents WHERE projection = :p ORDER BY key")


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
