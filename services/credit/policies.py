"""Other services' events -> the facts credit records of an account (choreography): pure
decisions on the typed payload; :func:`.handlers.when_event` gathers the context, appends
the facts on the account's stream, rescores it (``CreditLevelChanged`` when the level
moves) and keeps the identity's rumor strikes (A13.2). An event already recorded (a
redelivery) decides nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from libs.events import Envelope
from libs.events.contracts.credit import CreditFactRecorded
from libs.events.contracts.enforcement import (
    CaseResponded,
    MeasureApplied,
    MeasureLifted,
    ViolationConfirmed,
)
from libs.events.contracts.registration import (
    AccountRegistrationHeld,
    AccountRegistrationSubmitted,
)
from libs.events.contracts.verification import IdentityVerified

from .domain import Events, Profile


@dataclass(frozen=True)
class Context:
    """What the handler gathered for a policy: the time."""

    now: datetime


Reaction = Callable[[Profile | None, Any, Envelope, Context], Events]


def _fact(p: Any, e: Envelope, kind: str, basis: list[str], **fields: Any
          ) -> CreditFactRecorded:
    return CreditFactRecorded(account_id=p.account_id, kind=kind, source_event_id=e.id,
                              at=e.time, legal_basis=basis, evidence_event_ids=[e.id],
                              **fields)


def _new(profile: Profile | None, e: Envelope) -> bool:
    return profile is None or e.id not in profile.seen


def when_registration_submitted_record_identity(
        profile: Profile | None, p: AccountRegistrationSubmitted, e: Envelope,
        ctx: Context) -> Events:
    if not _new(profile, e):
        return []
    return [_fact(p, e, "registered", ["A13.1"], identity_blind=p.identity.id_number_blind)]


def when_identity_verified_record_level(profile: Profile | None, p: IdentityVerified,
                                        e: Envelope, ctx: Context) -> Events:
    if not _new(profile, e):
        return []
    return [_fact(p, e, "verification", ["A13.1", "A7.2"], detail=p.level)]


def when_violation_confirmed_record(profile: Profile | None, p: ViolationConfirmed,
                                    e: Envelope, ctx: Context) -> Events:
    if not _new(profile, e):
        return []
    return [_fact(p, e, "violation", ["A13.1", "A7.2"], category=p.category,
                  ref=p.violation_id)]


def when_measure_applied_record(profile: Profile | None, p: MeasureApplied, e: Envelope,
                                ctx: Context) -> Events:
    if not _new(profile, e):
        return []
    return [_fact(p, e, "measure", ["A13.1", "A7.2"], category=p.category, detail=p.measure,
                  ref=p.measure_id, related=p.violation_id)]


def _overrule(profile: Profile | None, p: Any, e: Envelope, measure_id: str) -> Events:
    if not _new(profile, e) or (profile and measure_id in profile.overruled):
        return []
    violation = profile.measure_violation(measure_id) if profile else None
    overrules = [measure_id, *([violation] if violation else [])]
    return [_fact(p, e, "appeal_upheld", ["A13.1", "A20.2"], ref=measure_id,
                  related=violation, overrules=overrules)]


def when_measure_lifted_overrule_on_appeal(profile: Profile | None, p: MeasureLifted,
                                           e: Envelope, ctx: Context) -> Events:
    if p.reason != "appeal_upheld":
        return []
    return _overrule(profile, p, e, p.measure_id)


def when_case_responded_overrule_if_upheld(profile: Profile | None, p: CaseResponded,
                                           e: Envelope, ctx: Context) -> Events:
    if p.outcome != "upheld" or not p.measure_id:
        return []
    return _overrule(profile, p, e, p.measure_id)


POLICIES: dict[str, Reaction] = {
    AccountRegistrationSubmitted.event_type: when_registration_submitted_record_identity,
    AccountRegistrationHeld.event_type: when_registration_submitted_record_identity,
    IdentityVerified.event_type: when_identity_verified_record_level,
    ViolationConfirmed.event_type: when_violation_confirmed_record,
    MeasureApplied.event_type: when_measure_applied_record,
    MeasureLifted.event_type: when_measure_lifted_overrule_on_appeal,
    CaseResponded.event_type: when_case_responded_overrule_if_upheld,
}
