"""Events published by the registration service (topic ``registration.events``).

Stream: ``account-<account id>`` for an account's lifecycle; the subject is the account id.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from ..registry import EventPayload, EventRegistry
from ._common import Capability, EntityType, Finding, Part, SealedIdentity

registry = EventRegistry()


class Profile(Part):
    """What the public sees of an account: name, avatar and description (A8.2)."""

    name: str
    description: str
    avatar_sha256: str
    avatar_phash: str | None = None  # perceptual hash when image bytes were uploaded
    avatar_url: str | None = None


class Organization(Part):
    """Legal persons and unincorporated organizations (Art. 15, disclosed per A9.2)."""

    business_name: str
    registered_address: str
    primary_business: str
    business_scope: str


@registry.contract
class AccountRegistrationSubmitted(EventPayload):
    """An account was registered and awaits verification (A2, A6, A7.1, Art. 15)."""

    event_type: ClassVar[str] = "registration.AccountRegistrationSubmitted"
    account_id: str
    entity_type: EntityType
    identity: SealedIdentity
    profile: Profile
    category: str
    province: str
    operations_province: str
    contact_sealed: str
    contact_masked: str
    organization: Organization | None = None
    agreement_version: str
    # A10.1: above the per-identity threshold the registration needs extra verification.
    extra_verification_required: bool = False
    extra_verification_reasons: list[str] = []
    legal_basis: list[str]


@registry.contract
class ProfileChangeSubmitted(EventPayload):
    """A new name, avatar or description awaits the same checks as at registration (A8.2).

    The old profile stays shown until verification passes the change.
    """

    event_type: ClassVar[str] = "registration.ProfileChangeSubmitted"
    account_id: str
    change_id: str
    entity_type: EntityType
    category: str
    identity: SealedIdentity
    proposed: Profile
    legal_basis: list[str]


# -- the rest of the account's lifecycle ----------------------------------------------
# Every decision carries its legal basis and the ids of the events that caused it
# (``evidence_event_ids``: the upstream verification/credit/enforcement/transfer event).

SuspensionReason = Literal[
    "correction_pending", "inactivity", "enforcement", "unapplied_transfer", "self_requested",
]


@registry.contract
class AccountRegistrationHeld(AccountRegistrationSubmitted):
    """A registration waits for a reviewer (A10.3 velocity, A8.3 similar name).

    Carries the whole application so that an approval can submit it unchanged; the
    verification service does not act on it (only on ``AccountRegistrationSubmitted``).
    """

    event_type: ClassVar[str] = "registration.AccountRegistrationHeld"
    reasons: list[str]
    findings: list[Finding] = []


@registry.contract
class AccountRegistrationRefused(EventPayload):
    """A registration was refused and why (A10.1 beyond the limit, A10.3 velocity/batch,
    or a reviewer's refusal). Only blind indexes: the refused applicant is not stored."""

    event_type: ClassVar[str] = "registration.AccountRegistrationRefused"
    account_id: str
    entity_type: EntityType
    code: str
    reasons: list[str]
    id_number_blind: str
    phone_blind: str
    device_blind: str | None = None
    network_blind: str | None = None
    legal_basis: list[str]
    evidence_event_ids: list[str] = []


@registry.contract
class AccountRegistrationApproved(EventPayload):
    """A reviewer let a held registration go on to verification."""

    event_type: ClassVar[str] = "registration.AccountRegistrationApproved"
    account_id: str
    reviewer: str
    note: str = ""
    legal_basis: list[str]
    evidence_event_ids: list[str]


@registry.contract
class ExtraVerificationRequired(EventPayload):
    """The identity already runs accounts up to the threshold: verify more strictly (A10.1)."""

    event_type: ClassVar[str] = "registration.ExtraVerificationRequired"
    account_id: str
    reasons: list[str]
    accounts_of_identity: int
    threshold: int
    legal_basis: list[str]


@registry.contract
class AccountActivated(EventPayload):
    """Verification passed: the account is in service (A8.1, A8.2)."""

    event_type: ClassVar[str] = "registration.AccountActivated"
    account_id: str
    legal_basis: list[str]
    evidence_event_ids: list[str]


@registry.contract
class AccountCorrectionRequested(EventPayload):
    """The profile must be corrected by ``deadline``, or service ceases (A8.2)."""

    event_type: ClassVar[str] = "registration.AccountCorrectionRequested"
    account_id: str
    deadline: datetime
    findings: list[Finding]
    legal_basis: list[str]
    evidence_event_ids: list[str]


@registry.contract
class AccountSuspended(EventPayload):
    """Service is suspended for ``reason``; ``suspension_id`` is what lifts it (a measure
    id for enforcement, else the reason itself)."""

    event_type: ClassVar[str] = "registration.AccountSuspended"
    account_id: str
    suspension_id: str
    reason: SuspensionReason
    until: datetime | None = None
    legal_basis: list[str]
    evidence_event_ids: list[str] = []


@registry.contract
class AccountReinstated(EventPayload):
    """A suspension ended (correction made, activity, measure lifted, transfer applied)."""

    event_type: ClassVar[str] = "registration.AccountReinstated"
    account_id: str
    suspension_id: str
    reason: SuspensionReason
    legal_basis: list[str]
    evidence_event_ids: list[str] = []


@registry.contract
class AccountRestricted(EventPayload):
    """Functions withheld from the account (A17.2, A19.2 function limits and stopped ads)."""

    event_type: ClassVar[str] = "registration.AccountRestricted"
    account_id: str
    restriction_id: str
    capabilities: list[Capability]
    until: datetime | None = None
    legal_basis: list[str]
    evidence_event_ids: list[str]


@registry.contract
class AccountRestrictionLifted(EventPayload):
    event_type: ClassVar[str] = "registration.AccountRestrictionLifted"
    account_id: str
    restriction_id: str
    legal_basis: list[str]
    evidence_event_ids: list[str]


@registry.contract
class AccountWarned(EventPayload):
    """A warning measure, recorded on the account (A19.2)."""

    event_type: ClassVar[str] = "registration.AccountWarned"
    account_id: str
    measure_id: str
    legal_basis: list[str]
    evidence_event_ids: list[str]


@registry.contract
class CreditLevelApplied(EventPayload):
    """The functions the account's credit level allows (A13.1, A17.2)."""

    event_type: ClassVar[str] = "registration.CreditLevelApplied"
    account_id: str
    level: str
    withheld: list[Capability]
    legal_basis: list[str]
    evidence_event_ids: list[str]


@registry.contract
class AccountClosed(EventPayload):
    """Service ceased for good: enforcement closure or blacklist (A19.2), correction
    deadline passed (A8.2), false or borrowed identity (A8.1)."""

    event_type: ClassVar[str] = "registration.AccountClosed"
    account_id: str
    reason: str
    measure_id: str | None = None
    legal_basis: list[str]
    evidence_event_ids: list[str] = []


@registry.contract
class AccountDeregistered(EventPayload):
    """The operator asked to terminate the account (A11.3); it still counts for A10.1."""

    event_type: ClassVar[str] = "registration.AccountDeregistered"
    account_id: str
    requested_by: str
    legal_basis: list[str]


@registry.contract
class ReregistrationBanImposed(EventPayload):
    """The identity, USCC and phone behind the account may not register again until
    ``until`` (``None``: permanently) (A8.3, A19.2). ``keys`` are blind indexes."""

    event_type: ClassVar[str] = "registration.ReregistrationBanImposed"
    account_id: str
    measure_id: str
    severity: str
    until: datetime | None = None
    keys: list[str]
    legal_basis: list[str]
    evidence_event_ids: list[str]


@registry.contract
class ReregistrationBanLifted(EventPayload):
    event_type: ClassVar[str] = "registration.ReregistrationBanLifted"
    account_id: str
    measure_id: str
    keys: list[str]
    legal_basis: list[str]
    evidence_event_ids: list[str]


@registry.contract
class ProfileChangeApplied(EventPayload):
    """The new profile passed verification and is now shown (A8.2)."""

    event_type: ClassVar[str] = "registration.ProfileChangeApplied"
    account_id: str
    change_id: str
    profile: Profile
    legal_basis: list[str]
    evidence_event_ids: list[str]


@registry.contract
class ProfileChangeRejected(EventPayload):
    """The proposed profile failed verification; the old one stays (A8.2)."""

    event_type: ClassVar[str] = "registration.ProfileChangeRejected"
    account_id: str
    change_id: str
    findings: list[Finding]
    legal_basis: list[str]
    evidence_event_ids: list[str]


@registry.contract
class AccountActivityRecorded(EventPayload):
    """A login or use of the account (A10.2 inactivity is measured from these)."""

    event_type: ClassVar[str] = "registration.AccountActivityRecorded"
    account_id: str
    kind: str
    legal_basis: list[str]


@registry.contract
class OwnerChanged(EventPayload):
    """An applied-for transfer completed: the account has a new operator (A11.2)."""

    event_type: ClassVar[str] = "registration.OwnerChanged"
    account_id: str
    transfer_id: str
    new_owner: SealedIdentity
    legal_basis: list[str]
    evidence_event_ids: list[str]


@registry.contract
class AgreementAccepted(EventPayload):
    """The operator accepted a (new) version of the platform service agreement (A6)."""

    event_type: ClassVar[str] = "registration.AgreementAccepted"
    account_id: str
    version: str
    legal_basis: list[str]
