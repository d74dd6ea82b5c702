"""Other services' events -> transfer (choreography): pure decisions on the typed payload.

- registration's registrations: who owns the account, in which province (kept in the
  directory);
- verification's identity verified: the owner is a verified person, whose phone a changed
  contact may name (A11.2);
- enforcement's measures applied and lifted: the no-trading rules' input (A11.1);
- verification's answer on a transferee: the application goes on or is refused (A11.2).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from libs.domain import NotFoundError
from libs.events import Envelope, EventPayload
from libs.events.contracts.enforcement import MeasureApplied, MeasureLifted
from libs.events.contracts.registration import (
    AccountRegistrationHeld,
    AccountRegistrationSubmitted,
)
from libs.events.contracts.verification import (
    IdentityVerified,
    TransfereeVerificationFailed,
    TransfereeVerified,
)

from .domain import Closing, Transfer
from .rules import disclosed_name


@dataclass(frozen=True)
class OwnerKnown:
    account_id: str
    entity_type: str
    name: str | None
    identity: dict[str, Any]
    at: datetime
    province: str | None = None


@dataclass(frozen=True)
class MeasureNoted:
    measure_id: str
    account_id: str
    measure: str | None
    active: bool
    at: datetime


@dataclass(frozen=True)
class OwnerVerified:
    account_id: str
    at: datetime


Learned = OwnerKnown | MeasureNoted | OwnerVerified


def when_registration_submitted_know_owner(p: AccountRegistrationSubmitted, e: Envelope
                                           ) -> Learned:
    org = p.organization.model_dump() if p.organization else None
    return OwnerKnown(p.account_id, p.entity_type,
                      disclosed_name(p.entity_type, p.identity.holder_name_masked, org),
                      p.identity.model_dump(), e.time, p.province)


def when_identity_verified_note(p: IdentityVerified, e: Envelope) -> Learned:
    return OwnerVerified(p.account_id, e.time)


def when_measure_applied_note(p: MeasureApplied, e: Envelope) -> Learned:
    return MeasureNoted(p.measure_id, p.account_id, p.measure, True, e.time)


def when_measure_lifted_note(p: MeasureLifted, e: Envelope) -> Learned:
    return MeasureNoted(p.measure_id, p.account_id, None, False, e.time)


LEARN: dict[str, Callable[[Any, Envelope], Learned]] = {
    AccountRegistrationSubmitted.event_type: when_registration_submitted_know_owner,
    AccountRegistrationHeld.event_type: when_registration_submitted_know_owner,
    MeasureApplied.event_type: when_measure_applied_note,
    MeasureLifted.event_type: when_measure_lifted_note,
    IdentityVerified.event_type: when_identity_verified_note,
}


def when_transferee_verified_approve(state: Transfer | None, p: TransfereeVerified,
                                     e: Envelope, ctx: Closing) -> list[EventPayload]:
    if state is None:
        raise NotFoundError(f"no transfer {p.transfer_id}")
    return state.transferee_checked(verified=True, reasons=[], detail="", level=p.level,
                                    evidence=[e.id], closing=ctx)


def when_transferee_failed_reject(state: Transfer | None, p: TransfereeVerificationFailed,
                                  e: Envelope, ctx: Closing) -> list[EventPayload]:
    if state is None:
        raise NotFoundError(f"no transfer {p.transfer_id}")
    return state.transferee_checked(verified=False, reasons=p.reasons, detail=p.detail,
                                    level=None, evidence=[e.id], closing=ctx)


Reaction = Callable[[Transfer | None, Any, Envelope, Closing], list[EventPayload]]
POLICIES: dict[str, Reaction] = {
    TransfereeVerified.event_type: when_transferee_verified_approve,
    TransfereeVerificationFailed.event_type: when_transferee_failed_reject,
}
EVENT_TYPES = frozenset(LEARN) | frozenset(POLICIES)
