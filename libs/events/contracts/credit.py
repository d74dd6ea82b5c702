"""Events published by the credit service (topic ``credit.events``).

Defined ahead of the credit service's own issue so that registration can react to them;
that issue produces them (and may add fields only through a new schema version).
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from ..registry import EventRegistry
from ._common import AccountDecision

registry = EventRegistry()

# A is the best level; interactive capabilities are allowed by level (A13.1).
CreditLevel = Literal["A", "B", "C", "D", "E"]


@registry.contract
class CreditLevelChanged(AccountDecision):
    """An account's credit level moved (A13.1, A7.2)."""

    event_type: ClassVar[str] = "credit.CreditLevelChanged"
    level: CreditLevel
    previous_level: CreditLevel | None = None
    score: int
    reasons: list[str]


# -- what credit records of an account (its stream ``credit-account-<id>``) -------------------
FactKind = Literal["registered", "verification", "violation", "measure", "appeal_upheld"]


@registry.contract
class CreditFactRecorded(AccountDecision):
    """Another service's event that counts for the account's credit (A13.1, A7.2): a
    registration (its identity), a verification level, a confirmed violation, a measure, an
    upheld appeal (which overrules a measure and its violation)."""

    event_type: ClassVar[str] = "credit.CreditFactRecorded"
    kind: FactKind
    source_event_id: str
    at: datetime
    identity_blind: str | None = None
    category: int | str | None = None  # a violation's Art. 18 / Art. 14 category
    detail: str = ""  # the verification level, the measure
    ref: str | None = None  # the violation or measure id
    related: str | None = None  # a measure's violation id
    overrules: list[str] = []  # ids (violation, measure) an upheld appeal overrules


TrafficAnomalyKind = Literal["jump", "ratio", "follower_swing"]


@registry.contract
class TrafficAnomalyDetected(AccountDecision):
    """An abnormal jump or ratio of an account's traffic counters (A12.1) against its
    seasonal robust baseline (median/MAD per hour of week)."""

    event_type: ClassVar[str] = "credit.TrafficAnomalyDetected"
    anomaly_id: str
    kind: TrafficAnomalyKind
    metric: str
    window_start: datetime
    window_end: datetime
    expected_low: float
    expected_high: float
    observed: float
    score: float
    model_version: str


@registry.contract
class ForcedFollowsCounted(AccountDecision):
    """Follows gained without the follower's consent in one batch of samples (A12.2)."""

    event_type: ClassVar[str] = "credit.ForcedFollowsCounted"
    count_id: str
    without_consent: int
    total: int
    window_start: datetime
    window_end: datetime


@registry.contract
class CreditOverridden(AccountDecision):
    """An operator's manual adjustment of the score, with a reason and an expiry."""

    event_type: ClassVar[str] = "credit.CreditOverridden"
    override_id: str
    points: int
    reason: str
    by: str
    expires_at: datetime


# -- rumor strikes of an identity (its stream ``credit-identity-<blind index>``) ---------------
class _IdentityDecision(AccountDecision):
    identity_blind: str


@registry.contract
class RumorStrikeRecorded(_IdentityDecision):
    """A confirmed Art. 18(6) violation (rumors, false information) is a strike against the
    identity behind the account (A13.2)."""

    event_type: ClassVar[str] = "credit.RumorStrikeRecorded"
    strike_id: str  # the violation id
    at: datetime


@registry.contract
class RumorStrikeOverruled(_IdentityDecision):
    """An upheld appeal took a strike off (A20.2)."""

    event_type: ClassVar[str] = "credit.RumorStrikeOverruled"
    strike_id: str


@registry.contract
class RumorStrikeExpired(_IdentityDecision):
    """A strike older than the expiry no longer counts (A13.2); decided by the sweep."""

    event_type: ClassVar[str] = "credit.RumorStrikeExpired"
    strike_id: str
    struck_at: datetime


@registry.contract
class IdentityBlacklisted(_IdentityDecision):
    """Enough live strikes within the window: the identity is blacklisted (A13.2); one event
    per affected account (``account_id``), each listing them all (``account_ids``)."""

    event_type: ClassVar[str] = "credit.IdentityBlacklisted"
    blacklist_id: str
    account_ids: list[str]
    strike_ids: list[str]
    window_days: int
    at: datetime


@registry.contract
class IdentityBlacklistLifted(_IdentityDecision):
    """A blacklist no longer stands: an upheld appeal overruled one of the strikes it rested
    on, and fewer than the threshold remain (A13.2, A20.2). One event per account of the
    blacklist (``account_id``); registration lifts that blacklist's re-registration ban."""

    event_type: ClassVar[str] = "credit.IdentityBlacklistLifted"
    blacklist_id: str
    account_ids: list[str]
    overruled_strike_id: str
    remaining_strike_ids: list[str]
