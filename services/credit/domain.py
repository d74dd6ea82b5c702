"""The aggregates of credit, pure: an account's credit profile (``credit-account-<id>``) and
an identity's rumor strikes (``credit-identity-<blind index>``). Commands return contracts
of ``libs.events.contracts.credit``; the score itself is ``rules.score``."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from libs.events import Envelope, EventPayload
from libs.events.contracts.credit import (
    CreditLevelChanged,
    IdentityBlacklisted,
    IdentityBlacklistLifted,
    RumorStrikeExpired,
    RumorStrikeOverruled,
    RumorStrikeRecorded,
)

P = "credit."
Events = list[EventPayload]


def account_stream(account_id: str) -> str:
    return f"credit-account-{account_id}"


def identity_stream(identity_blind: str) -> str:
    return f"credit-identity-{identity_blind}"


def _ts(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


@dataclass(frozen=True)
class Contribution:
    """One term of the score: what, how many points, which event it rests on."""

    kind: str
    points: int
    source_event_id: str | None
    note: str


@dataclass(frozen=True)
class Fact:
    kind: str
    event_id: str  # the other service's event it records
    at: datetime
    category: int | str | None = None
    detail: str = ""
    ref: str | None = None
    related: str | None = None
    overrules: tuple[str, ...] = ()


@dataclass(frozen=True)
class Anomaly:
    event_id: str
    kind: str
    metric: str
    at: datetime
    observed: float
    expected_low: float
    expected_high: float


@dataclass(frozen=True)
class Follows:
    event_id: str
    at: datetime
    count: int
    total: int


@dataclass(frozen=True)
class Override:
    event_id: str
    override_id: str
    points: int
    reason: str
    by: str
    expires_at: datetime


@dataclass(frozen=True)
class Profile:
    """What credit knows of an account, folded from its stream."""

    account_id: str
    identity_blind: str | None = None
    facts: tuple[Fact, ...] = ()
    overruled: frozenset[str] = frozenset()
    anomalies: tuple[Anomaly, ...] = ()
    follows: tuple[Follows, ...] = ()
    overrides: tuple[Override, ...] = ()
    level: str = "A"  # the level last announced (A until a change)
    seen: frozenset[str] = frozenset()  # source events recorded (redelivery, replays)
    version: int = 0

    def measure_violation(self, measure_id: str) -> str | None:
        return next((f.related for f in self.facts if f.kind == "measure"
                     and f.ref == measure_id), None)

    def level_change(self, *, level: str, score: int, reasons: list[str], evidence: list[str]
                     ) -> Events:
        """``CreditLevelChanged`` when the level moved (A13.1, A17.2), nothing otherwise."""
        if level == self.level:
            return []
        return [CreditLevelChanged(account_id=self.account_id, level=level,
                                   previous_level=self.level, score=score, reasons=reasons,
                                   legal_basis=["A13.1", "A7.2", "A17.2"],
                                   evidence_event_ids=evidence)]


def apply(state: Profile | None, type_: str, d: dict[str, Any], event_id: str,
          time: datetime, version: int) -> Profile:
    """Fold one event's data (stored JSON, or a decided payload's dump) into the profile."""
    s = state or Profile(account_id=d["account_id"])
    name = type_.removeprefix(P)
    if name == "CreditFactRecorded":
        f = Fact(kind=d["kind"], event_id=d["source_event_id"], at=_ts(d["at"]),
                 category=d.get("category"), detail=d.get("detail") or "", ref=d.get("ref"),
                 related=d.get("related"), overrules=tuple(d.get("overrules") or ()))
        s = replace(s, facts=(*s.facts, f), seen=s.seen | {d["source_event_id"]},
                    overruled=s.overruled | set(f.overrules))
        if f.kind == "registered" and d.get("identity_blind"):
            s = replace(s, identity_blind=d["identity_blind"])
    elif name == "TrafficAnomalyDetected":
        s = replace(s, anomalies=(*s.anomalies, Anomaly(
            event_id, d["kind"], d["metric"], _ts(d["window_end"]), d["observed"],
            d["expected_low"], d["expected_high"])))
    elif name == "ForcedFollowsCounted":
        s = replace(s, follows=(*s.follows, Follows(event_id, _ts(d["window_end"]),
                                                    d["without_consent"], d["total"])))
    elif name == "CreditOverridden":
        s = replace(s, overrides=(*s.overrides, Override(
            event_id, d["override_id"], d["points"], d["reason"], d["by"],
            _ts(d["expires_at"]))))
    elif name == "CreditLevelChanged":
        s = replace(s, level=d["level"])
    return replace(s, version=version)


def evolve_profile(state: Profile | None, e: Envelope) -> Profile:
    return apply(state, e.type, e.data, e.id, e.time, e.stream_version)


def after(state: Profile | None, payloads: Events, time: datetime) -> Profile | None:
    """The profile once ``payloads`` (decided, not yet appended) are folded in."""
    for p in payloads:
        state = apply(state, p.event_type, p.to_data(), "pending", time,
                      state.version if state else 0)
    return state


# -- an identity's rumor strikes (A13.2) -------------------------------------------------------
@dataclass(frozen=True)
class Identity:
    identity_blind: str
    strikes: dict[str, datetime] = field(default_factory=dict)  # violation id -> when
    strike_events: dict[str, str] = field(default_factory=dict)  # violation id -> event id
    overruled: frozenset[str] = frozenset()
    expired: frozenset[str] = frozenset()
    blacklists: tuple[str, ...] = ()  # blacklist ids
    blacklisted_accounts: frozenset[str] = frozenset()
    blacklist_strikes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    blacklist_accounts: dict[str, tuple[str, ...]] = field(default_factory=dict)
    lifted: frozenset[str] = frozenset()  # blacklist ids lifted on appeal
    version: int = 0

    @property
    def standing_blacklists(self) -> tuple[str, ...]:
        return tuple(b for b in self.blacklists if b not in self.lifted)

    @property
    def standing(self) -> dict[str, datetime]:
        return {k: v for k, v in self.strikes.items()
                if k not in self.overruled and k not in self.expired}

    def strike(self, *, account_id: str, strike_id: str, at: datetime, evidence: list[str]
               ) -> Events:
        if strike_id in self.strikes:
            return []
        return [RumorStrikeRecorded(account_id=account_id, identity_blind=self.identity_blind,
                                    strike_id=strike_id, at=at, legal_basis=["A13.2"],
                                    evidence_event_ids=evidence)]

    def overrule(self, *, account_id: str, strike_id: str, evidence: list[str]) -> Events:
        if strike_id not in self.strikes or strike_id in self.overruled:
            return []
        return [RumorStrikeOverruled(account_id=account_id, identity_blind=self.identity_blind,
                                     strike_id=strike_id, legal_basis=["A13.2", "A20.2"],
                                     evidence_event_ids=evidence)]

    def expire(self, *, account_id: str, horizon: datetime) -> Events:
        """The standing strikes struck before ``horizon`` expire (A13.2)."""
        return [RumorStrikeExpired(account_id=account_id, identity_blind=self.identity_blind,
                                   strike_id=s, struck_at=at, legal_basis=["A13.2"],
                                   evidence_event_ids=[self.strike_events[s]]
                                   if s in self.strike_events else [])
                for s, at in sorted(self.standing.items(), key=lambda kv: kv[1])
                if at <= horizon]

    def blacklist(self, *, blacklist_id: str, strikes: list[str], accounts: list[str],
                  window_days: int, at: datetime, pending: str | None = None) -> Events:
        """One ``IdentityBlacklisted`` per account not blacklisted yet (A13.2); evidence:
        the strikes' events (``pending``: the event of a strike decided with it)."""
        todo = sorted(set(accounts) - self.blacklisted_accounts)
        evidence = [self.strike_events.get(s, pending) for s in strikes]
        evidence = [e for e in evidence if e]
        return [IdentityBlacklisted(account_id=a, identity_blind=self.identity_blind,
                                    blacklist_id=blacklist_id, account_ids=sorted(accounts),
                                    strike_ids=strikes, window_days=window_days, at=at,
                                    legal_basis=["A13.2"], evidence_event_ids=evidence)
                for a in todo]


    def lift_blacklists(self, *, account_id: str, overruled: str, threshold: int,
                        evidence: list[str]) -> Events:
        """Each standing blacklist that rested on the ``overruled`` strike and keeps fewer
        than ``threshold`` of its strikes is lifted (A13.2, A20.2): one event per account."""
        gone = self.overruled | {overruled}
        out: Events = []
        for b in self.standing_blacklists:
            strikes = self.blacklist_strikes.get(b, ())
            remaining = [x for x in strikes if x not in gone]
            if overruled not in strikes or len(remaining) >= threshold:
                continue
            accounts = sorted(self.blacklist_accounts.get(b, ()))
            out += [IdentityBlacklistLifted(
                account_id=a, identity_blind=self.identity_blind, blacklist_id=b,
                account_ids=accounts, overruled_strike_id=overruled,
                remaining_strike_ids=remaining, legal_basis=["A13.2", "A20.2"],
                evidence_event_ids=evidence) for a in accounts or [account_id]]
        return out


def evolve_identity(state: Identity | None, e: Envelope) -> Identity:
    d, name = e.data, e.type.removeprefix(P)
    s = state or Identity(identity_blind=d["identity_blind"])
    if name == "RumorStrikeRecorded":
        s = replace(s, strikes={**s.strikes, d["strike_id"]: _ts(d["at"])},
                    strike_events={**s.strike_events, d["strike_id"]: e.id})
    elif name == "RumorStrikeOverruled":
        s = replace(s, overruled=s.overruled | {d["strike_id"]})
    elif name == "RumorStrikeExpired":
        s = replace(s, expired=s.expired | {d["strike_id"]})
    elif name == "IdentityBlacklisted":
        blacklists = s.blacklists if d["blacklist_id"] in s.blacklists \
            else (*s.blacklists, d["blacklist_id"])
        b = d["blacklist_id"]
        s = replace(s, blacklists=blacklists,
                    blacklisted_accounts=s.blacklisted_accounts | {d["account_id"]},
                    blacklist_strikes={**s.blacklist_strikes, b: tuple(d["strike_ids"])},
                    blacklist_accounts={**s.blacklist_accounts, b: tuple(sorted(
                        {*s.blacklist_accounts.get(b, ()), d["account_id"]}))})
    elif name == "IdentityBlacklistLifted":
        s = replace(s, lifted=s.lifted | {d["blacklist_id"]},
                    blacklisted_accounts=s.blacklisted_accounts - {d["account_id"]})
    return replace(s, version=e.stream_version)
