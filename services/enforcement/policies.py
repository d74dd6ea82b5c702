"""Other services' events -> what enforcement learns of an account (choreography): pure
decisions on the typed payload; the handler keeps them in the account directory."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from libs.events import Envelope
from libs.events.contracts.credit import CreditLevelChanged, IdentityBlacklisted
from libs.events.contracts.registration import (
    AccountRegistrationHeld,
    AccountRegistrationSubmitted,
)


@dataclass(frozen=True)
class Registered:
    """An account's province and category (A3, A7.1): for scoping and filings."""

    account_id: str
    province: str
    category: str
    entity_type: str
    at: datetime


@dataclass(frozen=True)
class CreditNoted:
    """An account's credit level: an input of the measure policy (A19.2)."""

    account_id: str
    level: str
    at: datetime


@dataclass(frozen=True)
class BlacklistNoted:
    """An identity blacklisted for rumors (A13.2): kept for the regulator's reports."""

    event: Envelope


Learned = Registered | CreditNoted | BlacklistNoted


def when_registration_submitted_index(p: AccountRegistrationSubmitted, event: Envelope
                                      ) -> Learned:
    return Registered(p.account_id, p.province, p.category, p.entity_type, event.time)


def when_credit_level_changed_note(p: CreditLevelChanged, event: Envelope) -> Learned:
    return CreditNoted(p.account_id, p.level, event.time)


def when_identity_blacklisted_record(p: IdentityBlacklisted, event: Envelope) -> Learned:
    return BlacklistNoted(event)


POLICIES: dict[str, Callable[[Any, Envelope], Learned]] = {
    AccountRegistrationSubmitted.event_type: when_registration_submitted_index,
    AccountRegistrationHeld.event_type: when_registration_submitted_index,
    CreditLevelChanged.event_type: when_credit_level_changed_note,
    IdentityBlacklisted.event_type: when_identity_blacklisted_record,
}
