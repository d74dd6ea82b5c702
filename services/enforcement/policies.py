"""Other services' events -> what enforcement learns of an account (choreography): pure
decisions on the typed payload; the handler keeps them in the account directory."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from libs.events import Envelope
from libs.events.contracts.credit import (
    CreditLevelChanged,
    IdentityBlacklisted,
    IdentityBlacklistLifted,
)
from libs.events.contracts.registration import (
    AccountRegistrationHeld,
    AccountRegistrationSubmitted,
)
from libs.events.contracts.transfer import SuspectedAccountTrading
from libs.events.contracts.verification import AccountVerified, IdentityVerificationFailed


@dataclass(frozen=True)
class Registered:
    """An account's province and category (A3, A7.1): for scoping and filings; for an
    organization also its business name, registered address and USCC (still sealed: the
    handler opens it, an organization's code being public registration data)."""

    account_id: str
    province: str
    category: str
    entity_type: str
    at: datetime
    business_name: str | None = None
    registered_address: str | None = None
    uscc_sealed: str | None = None
    owner_blind: str | None = None  # the subject the USCC is sealed for (ADR 0033)


@dataclass(frozen=True)
class VerificationNoted:
    """Where the account's verification stands, for the filing (A7.1, A8.1)."""

    account_id: str
    state: str  # verified | failed
    at: datetime


@dataclass(frozen=True)
class CreditNoted:
    """An account's credit level: an input of the measure policy (A19.2)."""

    account_id: str
    level: str
    at: datetime


@dataclass(frozen=True)
class BlacklistNoted:
    """An identity blacklisted for rumors (A13.2), or its blacklist lifted on appeal
    (A20.2): kept for operators and the regulator's reports."""

    event: Envelope


@dataclass(frozen=True)
class TradingSuspected:
    """Transfer saw repeated transfers among a group of identities (A11.1): a suspected
    Art. 18(8) violation for an operator to confirm or dismiss."""

    account_id: str
    transfer_id: str
    account_ids: tuple[str, ...]
    transfers_in_window: int
    window_days: int
    event: Envelope


Learned = Registered | CreditNoted | VerificationNoted | BlacklistNoted | TradingSuspected


def when_registration_submitted_index(p: AccountRegistrationSubmitted, event: Envelope
                                      ) -> Learned:
    org = p.organization
    return Registered(p.account_id, p.province, p.category, p.entity_type, event.time,
                      business_name=org.business_name if org else None,
                      registered_address=org.registered_address if org else None,
                      uscc_sealed=(p.identity.id_number_sealed
                                   if p.identity.id_kind == "uscc" else None),
                      owner_blind=p.identity.id_number_blind)


def when_account_verified_note(p: AccountVerified, event: Envelope) -> Learned:
    return VerificationNoted(p.account_id, "verified", event.time)


def when_identity_failed_note(p: IdentityVerificationFailed, event: Envelope) -> Learned:
    return VerificationNoted(p.account_id, "failed", event.time)


def when_credit_level_changed_note(p: CreditLevelChanged, event: Envelope) -> Learned:
    return CreditNoted(p.account_id, p.level, event.time)


def when_identity_blacklisted_record(p: IdentityBlacklisted, event: Envelope) -> Learned:
    return BlacklistNoted(event)


def when_suspected_trading_report(p: SuspectedAccountTrading, event: Envelope) -> Learned:
    return TradingSuspected(p.account_id, p.transfer_id, tuple(p.account_ids),
                            p.transfers_in_window, p.window_days, event)


POLICIES: dict[str, Callable[[Any, Envelope], Learned]] = {
    AccountRegistrationSubmitted.event_type: when_registration_submitted_index,
    AccountRegistrationHeld.event_type: when_registration_submitted_index,
    CreditLevelChanged.event_type: when_credit_level_changed_note,
    AccountVerified.event_type: when_account_verified_note,
    IdentityVerificationFailed.event_type: when_identity_failed_note,
    IdentityBlacklisted.event_type: when_identity_blacklisted_record,
    IdentityBlacklistLifted.event_type: when_identity_blacklisted_record,
    SuspectedAccountTrading.event_type: when_suspected_trading_report,
}
