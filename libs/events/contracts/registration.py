"""Events published by the registration service (topic ``registration.events``).

Stream: ``account-<account id>`` for an account's lifecycle; the subject is the account id.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from ..registry import EventRegistry
from ._common import AccountDecision, Capability, EntityType, Finding, Part, SealedIdentity

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
class AccountRegistrationSubmitted(AccountDecision):
    """An account was registered and awaits verification (A2, A6, A7.1, Art. 15)."""

    event_type: ClassVar[str] = "registration.AccountRegistrationSubmitted"
    entity_type: EntityType
    identity: SealedIdentity
    profile: Profile
    category: str
    province: str
    operations_province: str
    contact_sealed: str
    contact_masked: str
    # A9.2: an organization's contact shown on its public page only when it says so
    # (an optional field: events recorded before it read as False).
    contact_public: bool = False
    organization: Organization | None = None
    agreement_version: str
    # A10.1: above the per-identity threshold the registration needs extra verification.
    extra_verification_required: bool = False
    extra_verification_reasons: list[str] = []


@registry.contract
class ProfileChangeSubmitted(AccountDecision):
    """A new name, avatar or description awaits the same checks as at registration (A8.2).

    The old profile stays shown until verification passes the change.
    """

    event_type: ClassVar[str] = "registration.ProfileChangeSubmitted"
    change_id: str
    entity_type: EntityType
    category: str
    identity: SealedIdentity
    proposed: Profile


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
class AccountRegistrationRefused(AccountDecision):
    """A registration was refused and why (A10.1 beyond the limit, A10.3 velocity/batch,
    or a reviewer's refusal). Only blind indexes: the refused applicant is not stored."""

    event_type: ClassVar[str] = "registration.AccountRegistrationRefused"
    entity_type: EntityType
    code: str
    reasons: list[str]
    id_number_blind: str
    phone_blind: str
    device_blind: str | None = None
    network_blind: str | None = None


@registry.contract
class AccountRegistrationApproved(AccountDecision):
    """A reviewer let a held registration go on to verification."""

    event_type: ClassVar[str] = "registration.AccountRegistrationApproved"
    reviewer: str
    note: str = ""


@registry.contract
class ExtraVerificationRequired(AccountDecision):
    """The identity already runs accounts up to the threshold: verify more strictly (A10.1)."""

    event_type: ClassVar[str] = "registration.ExtraVerificationRequired"
    reasons: list[str]
    accounts_of_identity: int
    threshold: int


@registry.contract
class AccountActivated(AccountDecision):
    """Verification passed: the account is in service (A8.1, A8.2)."""

    event_type: ClassVar[str] = "registration.AccountActivated"


@registry.contract
class AccountCorrectionRequested(AccountDecision):
    """The profile must be corrected by ``deadline``, or service ceases (A8.2)."""

    event_type: ClassVar[str] = "registration.AccountCorrectionRequested"
    deadline: datetime
    findings: list[Finding]


@registry.contract
class AccountSuspended(AccountDecision):
    """Service is suspended for ``reason``; ``suspension_id`` is what lifts it (a measure
    id for enforcement, else the reason itself)."""

    event_type: ClassVar[str] = "registration.AccountSuspended"
    suspension_id: str
    reason: SuspensionReason
    until: datetime | None = None


@registry.contract
class AccountReinstated(AccountDecision):
    """A suspension ended (correction made, activity, measure lifted, transfer applied)."""

    event_type: ClassVar[str] = "registration.AccountReinstated"
    suspension_id: str
    reason: SuspensionReason


@registry.contract
class AccountRestricted(AccountDecision):
    """Functions withheld from the account (A17.2, A19.2 function limits and stopped ads)."""

    event_type: ClassVar[str] = "registration.AccountRestricted"
    restriction_id: str
    capabilities: list[Capability]
    until: datetime | None = None


@registry.contract
class AccountRestrictionLifted(AccountDecision):
    event_type: ClassVar[str] = "registration.AccountRestrictionLifted"
    restriction_id: str


@registry.contract
class AccountWarned(AccountDecision):
    """A warning measure, recorded on the account (A19.2)."""

    event_type: ClassVar[str] = "registration.AccountWarned"
    measure_id: str


@registry.contract
class CreditLevelApplied(AccountDecision):
    """The functions the account's credit level allows (A13.1, A17.2)."""

    event_type: ClassVar[str] = "registration.CreditLevelApplied"
    level: str
    withheld: list[Capability]


@registry.contract
class AccountClosed(AccountDecision):
    """Service ceased for good: enforcement closure or blacklist (A19.2), correction
    deadline passed (A8.2), false or borrowed identity (A8.1)."""

    event_type: ClassVar[str] = "registration.AccountClosed"
    reason: str
    measure_id: str | None = None


@registry.contract
class AccountDeregistered(AccountDecision):
    """The operator asked to terminate the account (A11.3); it still counts for A10.1."""

    event_type: ClassVar[str] = "registration.AccountDeregistered"
    requested_by: str


@registry.contract
class ReregistrationBanImposed(AccountDecision):
    """The identity, USCC and phone behind the account may not register again until
    ``until`` (``None``: permanently) (A8.3, A19.2). ``keys`` are blind indexes."""

    event_type: ClassVar[str] = "registration.ReregistrationBanImposed"
    measure_id: str
    severity: str
    until: datetime | None = None
    keys: list[str]


@registry.contract
class ReregistrationBanLifted(AccountDecision):
    event_type: ClassVar[str] = "registration.ReregistrationBanLifted"
    measure_id: str
    keys: list[str]


@registry.contract
class ProfileChangeApplied(AccountDecision):
    """The new profile passed verification and is now shown (A8.2)."""

    event_type: ClassVar[str] = "registration.ProfileChangeApplied"
    change_id: str
    profile: Profile


@registry.contract
class ProfileChangeRejected(AccountDecision):
    """The proposed profile failed verification; the old one stays (A8.2)."""

    event_type: ClassVar[str] = "registration.ProfileChangeRejected"
    change_id: str
    findings: list[Finding]


@registry.contract
class AccountActivityRecorded(AccountDecision):
    """A login or use of the account (A10.2 inactivity is measured from these)."""

    event_type: ClassVar[str] = "registration.AccountActivityRecorded"
    kind: str


@registry.contract
class OwnerChanged(AccountDecision):
    """An applied-for transfer completed: the account has a new operator (A11.2)."""

    event_type: ClassVar[str] = "registration.OwnerChanged"
    transfer_id: str
    new_owner: SealedIdentity


@registry.contract
class AgreementAccepted(AccountDecision):
    """The operator accepted a (new) version of the platform service agreement (A6)."""

    event_type: ClassVar[str] = "registration.AgreementAccepted"
    version: str
