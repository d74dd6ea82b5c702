"""Events published by the verification service (topic ``verification.events``).

The registration service acts on ``AccountVerified`` (activate), ``ProfileMismatchFound``
(suspend and ask for correction), ``ProfileCheckPassed`` for a change (show the new
profile) and ``IdentityVerificationFailed`` (no service for a false or borrowed identity).

Streams: ``verification-<account id>`` (subject: the account id) for an account's checks,
qualifications, badge and re-inspections; ``protected-name-<id>`` for the registry of
protected names (subject: the protected name's id); ``prohibited-words`` for the
operator-managed word list. Personal data stays sealed or blind-indexed, as upstream.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from ..registry import EventPayload, EventRegistry
from ._common import AccountDecision, EntityType, Finding, Part, SealedIdentity
from .registration import Organization, Profile

registry = EventRegistry()

IdentityLevel = Literal["two_factor", "three_factor", "four_factor"]
CheckSource = Literal["registration", "profile_change", "reinspection"]
QualificationKind = Literal["professional", "news_permit", "licence"]
ProtectedKind = Literal["organ", "enterprise", "person", "media"]
Badge = Literal["personal", "enterprise", "organization", "government", "media"]


@registry.contract
class VerificationOpened(AccountDecision):
    """A registration arrived: what is to be verified, kept on verification's own stream
    (sealed as upstream) so that re-inspections and disclosure need no other service."""

    event_type: ClassVar[str] = "verification.VerificationOpened"
    entity_type: EntityType
    identity: SealedIdentity
    profile: Profile
    category: str
    province: str
    contact_sealed: str
    contact_masked: str
    contact_public: bool = False  # A9.2: as the registration declared it
    organization: Organization | None = None
    extra_verification_required: bool = False


@registry.contract
class IdentityVerified(AccountDecision):
    """At least two independent factors agreed on the operator's identity (A8.1)."""

    event_type: ClassVar[str] = "verification.IdentityVerified"
    level: IdentityLevel
    factors: list[str]
    provider: str
    extra_verification: bool = False


@registry.contract
class IdentityVerificationFailed(AccountDecision):
    """The identity is invalid, false or borrowed: the account gets no service (A8.1)."""

    event_type: ClassVar[str] = "verification.IdentityVerificationFailed"
    reasons: list[str]
    detail: str


@registry.contract
class ProfileCheckPassed(AccountDecision):
    """The profile (at registration, a change, or a re-inspection) is consistent (A8.2)."""

    event_type: ClassVar[str] = "verification.ProfileCheckPassed"
    change_id: str | None = None
    source: CheckSource
    # the profile that passed (a change's proposed profile becomes the current one)
    profile: Profile | None = None


@registry.contract
class ProfileMismatchFound(AccountDecision):
    """The profile does not match the identity, uses a protected name or holds prohibited
    content (A8.2), or a re-inspection failed (A9.3): suspend and ask for correction."""

    event_type: ClassVar[str] = "verification.ProfileMismatchFound"
    change_id: str | None = None
    source: CheckSource
    findings: list[Finding]
    reinspection_id: str | None = None


@registry.contract
class AccountVerified(AccountDecision):
    """Identity, profile and (where the field needs them) qualifications or a news permit
    are all verified: the account may be activated (A8.1, A8.2, A9.1, A5)."""

    event_type: ClassVar[str] = "verification.AccountVerified"
    identity_level: IdentityLevel
    badge: str
    qualifications: list[str] = []


# -- qualifications (A9.1) and news permits (A5) ----------------------------------------
# One family for both: a news-information-service permit is a qualification of kind
# ``news_permit`` (docs/decisions/0010-verification-qualifications-and-providers.md).

@registry.contract
class QualificationRequired(AccountDecision):
    """The account's field needs approved material before it is verified (A9.1, A5);
    also raised again when an approved qualification expired."""

    event_type: ClassVar[str] = "verification.QualificationRequired"
    kinds: list[QualificationKind]
    category: str
    reason: Literal["category", "expired"] = "category"


@registry.contract
class QualificationSubmitted(AccountDecision):
    """Material was submitted and waits for a reviewer (a review case)."""

    event_type: ClassVar[str] = "verification.QualificationSubmitted"
    case_id: str
    kind: QualificationKind
    qualification_type: str
    number: str
    issuer: str
    valid_from: datetime
    valid_until: datetime
    document_sha256: str
    document_content_type: str
    document_bytes: int
    submitted_by: str


@registry.contract
class QualificationApproved(AccountDecision):
    """A reviewer approved the material; ``label`` is shown with the account's field."""

    event_type: ClassVar[str] = "verification.QualificationApproved"
    case_id: str
    kind: QualificationKind
    label: str
    number: str
    valid_until: datetime
    reviewer: str
    note: str = ""


@registry.contract
class QualificationRejected(AccountDecision):
    event_type: ClassVar[str] = "verification.QualificationRejected"
    case_id: str
    kind: QualificationKind
    reviewer: str
    note: str = ""


@registry.contract
class QualificationExpired(AccountDecision):
    """An approved qualification's validity ended (found by the sweep's clock)."""

    event_type: ClassVar[str] = "verification.QualificationExpired"
    case_id: str
    kind: QualificationKind
    expired_at: datetime


# -- badges (A9.2) ------------------------------------------------------------------------
@registry.contract
class BadgeGranted(AccountDecision):
    """The verified badge, by entity type and field (A9.2)."""

    event_type: ClassVar[str] = "verification.BadgeGranted"
    badge: Badge


@registry.contract
class BadgeSuspended(AccountDecision):
    """The badge is withdrawn while what it vouches for no longer holds."""

    event_type: ClassVar[str] = "verification.BadgeSuspended"
    badge: Badge
    reason: str


Standing = Literal["in_service", "suspended", "closed", "deregistered"]


@registry.contract
class PublicStandingChanged(AccountDecision):
    """The account's standing as registration decided it, for its public page (A9.2): no
    badge while it is suspended (``suspensions`` names why), none once it is closed or
    deregistered. Follows ``registration.AccountSuspended``, ``AccountReinstated``,
    ``AccountClosed`` and ``AccountDeregistered``."""

    event_type: ClassVar[str] = "verification.PublicStandingChanged"
    standing: Standing
    suspensions: list[str] = []


# -- the protected-name registry and the prohibited words (A8.2) ------------------------
class ProtectedLogo(Part):
    sha256: str
    phash: str


@registry.contract
class ProtectedNameAdded(EventPayload):
    """A name (and aliases, and optionally a logo) only its holder may use (A8.2).
    The holder is known only by the blind index of its resident id or USCC."""

    event_type: ClassVar[str] = "verification.ProtectedNameAdded"
    protected_id: str
    name: str
    kind: ProtectedKind
    aliases: list[str] = []
    holder_blind: str | None = None
    logo: ProtectedLogo | None = None
    added_by: str
    legal_basis: list[str]


@registry.contract
class ProtectedNameRemoved(EventPayload):
    event_type: ClassVar[str] = "verification.ProtectedNameRemoved"
    protected_id: str
    removed_by: str
    legal_basis: list[str]


@registry.contract
class ProhibitedWordsChanged(EventPayload):
    """The operator-managed prohibited words (on top of the configured ones) (A8.2)."""

    event_type: ClassVar[str] = "verification.ProhibitedWordsChanged"
    added: list[str] = []
    removed: list[str] = []
    changed_by: str
    legal_basis: list[str]


# -- re-inspections (A9.3) ----------------------------------------------------------------
@registry.contract
class ReinspectionScheduled(AccountDecision):
    event_type: ClassVar[str] = "verification.ReinspectionScheduled"
    reinspection_id: str
    reason: Literal["periodic", "sample"]


@registry.contract
class ReinspectionPassed(AccountDecision):
    event_type: ClassVar[str] = "verification.ReinspectionPassed"
    reinspection_id: str


# -- transferees (A11.2): verified like a registrant -------------------------------------
# Stream ``transferee-<transfer id>``; the transfer service waits for one of these two.

@registry.contract
class TransfereeCheckOpened(AccountDecision):
    """A transfer application's transferee waits for the identity providers, asked outside
    the consumer's transaction like a registrant's (A11.2, A8.1, ADR 0026)."""

    event_type: ClassVar[str] = "verification.TransfereeCheckOpened"
    transfer_id: str
    entity_type: EntityType
    identity: SealedIdentity


@registry.contract
class TransfereeVerified(AccountDecision):
    """The transferee of an application passed the identity checks (A11.2, A8.1)."""

    event_type: ClassVar[str] = "verification.TransfereeVerified"
    transfer_id: str
    level: IdentityLevel
    factors: list[str]
    provider: str


@registry.contract
class TransfereeVerificationFailed(AccountDecision):
    """The transferee's identity is invalid, false or borrowed: the transfer is refused."""

    event_type: ClassVar[str] = "verification.TransfereeVerificationFailed"
    transfer_id: str
    reasons: list[str]
    detail: str


@registry.contract
class OwnerChangeDisclosed(AccountDecision):
    """A completed transfer's notice, shown on the public page (A11.2): the account's
    operator is now the new owner."""

    event_type: ClassVar[str] = "verification.OwnerChangeDisclosed"
    transfer_id: str
    changed_at: datetime
    previous_entity_type: str | None = None
    previous_name: str | None = None
    new_entity_type: EntityType
    new_name: str
    new_owner: SealedIdentity
    new_organization: Organization | None = None
    ad_revenue_paused_until: datetime | None = None


@registry.contract
class IdentityCheckDeferred(AccountDecision):
    """The providers gave no verdict (unavailable, timed out, no record): the identity
    stays pending and is asked again at ``retry_at``; a person reviews it if there is still
    no verdict at ``review_at`` (A8.1, ADR 0026). Never a failure of the identity."""

    event_type: ClassVar[str] = "verification.IdentityCheckDeferred"
    reasons: list[str]
    attempt: int
    retry_at: datetime
    review_at: datetime


@registry.contract
class IdentityReviewRequired(AccountDecision):
    """Still no verdict from the providers at the deadline: the identity goes to a
    person (A8.1, ADR 0026); the account stays without service until then."""

    event_type: ClassVar[str] = "verification.IdentityReviewRequired"
    case_id: str
    reasons: list[str]
    attempts: int
