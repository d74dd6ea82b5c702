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
from ._common import EntityType, Finding, Part, SealedIdentity
from .registration import Organization, Profile

registry = EventRegistry()

IdentityLevel = Literal["two_factor", "three_factor", "four_factor"]
CheckSource = Literal["registration", "profile_change", "reinspection"]
QualificationKind = Literal["professional", "news_permit", "licence"]
ProtectedKind = Literal["organ", "enterprise", "person", "media"]
Badge = Literal["personal", "enterprise", "organization", "government", "media"]


@registry.contract
class VerificationOpened(EventPayload):
    """A registration arrived: what is to be verified, kept on verification's own stream
    (sealed as upstream) so that re-inspections and disclosure need no other service."""

    event_type: ClassVar[str] = "verification.VerificationOpened"
    account_id: str
    entity_type: EntityType
    identity: SealedIdentity
    profile: Profile
    category: str
    province: str
    contact_sealed: str
    contact_masked: str
    organization: Organization | None = None
    extra_verification_required: bool = False
    legal_basis: list[str]
    evidence_event_ids: list[str]


@registry.contract
class IdentityVerified(EventPayload):
    """At least two independent factors agreed on the operator's identity (A8.1)."""

    event_type: ClassVar[str] = "verification.IdentityVerified"
    account_id: str
    level: IdentityLevel
    factors: list[str]
    provider: str
    legal_basis: list[str]
    extra_verification: bool = False
    evidence_event_ids: list[str] = []


@registry.contract
class IdentityVerificationFailed(EventPayload):
    """The identity is invalid, false or borrowed: the account gets no service (A8.1)."""

    event_type: ClassVar[str] = "verification.IdentityVerificationFailed"
    account_id: str
    reasons: list[str]
    detail: str
    legal_basis: list[str]
    evidence_event_ids: list[str] = []


@registry.contract
class ProfileCheckPassed(EventPayload):
    """The profile (at registration, a change, or a re-inspection) is consistent (A8.2)."""

    event_type: ClassVar[str] = "verification.ProfileCheckPassed"
    account_id: str
    change_id: str | None = None
    source: CheckSource
    legal_basis: list[str]
    # the profile that passed (a change's proposed profile becomes the current one)
    profile: Profile | None = None
    evidence_event_ids: list[str] = []


@registry.contract
class ProfileMismatchFound(EventPayload):
    """The profile does not match the identity, uses a protected name or holds prohibited
    content (A8.2), or a re-inspection failed (A9.3): suspend and ask for correction."""

    event_type: ClassVar[str] = "verification.ProfileMismatchFound"
    account_id: str
    change_id: str | None = None
    source: CheckSource
    findings: list[Finding]
    legal_basis: list[str]
    reinspection_id: str | None = None
    evidence_event_ids: list[str] = []


@registry.contract
class AccountVerified(EventPayload):
    """Identity, profile and (where the field needs them) qualifications or a news permit
    are all verified: the account may be activated (A8.1, A8.2, A9.1, A5)."""

    event_type: ClassVar[str] = "verification.AccountVerified"
    account_id: str
    identity_level: IdentityLevel
    badge: str
    qualifications: list[str] = []
    legal_basis: list[str]
    evidence_event_ids: list[str]


# -- qualifications (A9.1) and news permits (A5) ----------------------------------------
# One family for both: a news-information-service permit is a qualification of kind
# ``news_permit`` (docs/decisions/0010-verification-qualifications-and-providers.md).

@registry.contract
class QualificationRequired(EventPayload):
    """The account's field needs approved material before it is verified (A9.1, A5);
    also raised again when an approved qualification expired."""

    event_type: ClassVar[str] = "verification.QualificationRequired"
    account_id: str
    kinds: list[QualificationKind]
    category: str
    reason: Literal["category", "expired"] = "category"
    legal_basis: list[str]
    evidence_event_ids: list[str] = []


@registry.contract
class QualificationSubmitted(EventPayload):
    """Material was submitted and waits for a reviewer (a review case)."""

    event_type: ClassVar[str] = "verification.QualificationSubmitted"
    account_id: str
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
    legal_basis: list[str]


@registry.contract
class QualificationApproved(EventPayload):
    """A reviewer approved the material; ``label`` is shown with the account's field."""

    event_type: ClassVar[str] = "verification.QualificationApproved"
    account_id: str
    case_id: str
    kind: QualificationKind
    label: str
    number: str
    valid_until: datetime
    reviewer: str
    note: str = ""
    legal_basis: list[str]
    evidence_event_ids: list[str]


@registry.contract
class QualificationRejected(EventPayload):
    event_type: ClassVar[str] = "verification.QualificationRejected"
    account_id: str
    case_id: str
    kind: QualificationKind
    reviewer: str
    note: str = ""
    legal_basis: list[str]
    evidence_event_ids: list[str]


@registry.contract
class QualificationExpired(EventPayload):
    """An approved qualification's validity ended (found by the sweep's clock)."""

    event_type: ClassVar[str] = "verification.QualificationExpired"
    account_id: str
    case_id: str
    kind: QualificationKind
    expired_at: datetime
    legal_basis: list[str]
    evidence_event_ids: list[str]


# -- badges (A9.2) ------------------------------------------------------------------------
@registry.contract
class BadgeGranted(EventPayload):
    """The verified badge, by entity type and field (A9.2)."""

    event_type: ClassVar[str] = "verification.BadgeGranted"
    account_id: str
    badge: Badge
    legal_basis: list[str]
    evidence_event_ids: list[str]


@registry.contract
class BadgeSuspended(EventPayload):
    """The badge is withdrawn while what it vouches for no longer holds."""

    event_type: ClassVar[str] = "verification.BadgeSuspended"
    account_id: str
    badge: Badge
    reason: str
    legal_basis: list[str]
    evidence_event_ids: list[str]


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
class ReinspectionScheduled(EventPayload):
    event_type: ClassVar[str] = "verification.ReinspectionScheduled"
    account_id: str
    reinspection_id: str
    reason: Literal["periodic", "sample"]
    legal_basis: list[str]


@registry.contract
class ReinspectionPassed(EventPayload):
    event_type: ClassVar[str] = "verification.ReinspectionPassed"
    account_id: str
    reinspection_id: str
    legal_basis: list[str]
    evidence_event_ids: list[str]
