"""Events published by the verification service (topic ``verification.events``).

The registration service acts on ``AccountVerified`` (activate), ``ProfileMismatchFound``
(suspend and ask for correction), ``ProfileCheckPassed`` for a change (show the new
profile) and ``IdentityVerificationFailed`` (no service for a false or borrowed identity).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from ..registry import EventPayload, EventRegistry
from ._common import Finding

registry = EventRegistry()

IdentityLevel = Literal["two_factor", "three_factor", "four_factor"]
CheckSource = Literal["registration", "profile_change", "reinspection"]


@registry.contract
class IdentityVerified(EventPayload):
    """At least two independent factors agreed on the operator's identity (A8.1)."""

    event_type: ClassVar[str] = "verification.IdentityVerified"
    account_id: str
    level: IdentityLevel
    factors: list[str]
    provider: str
    legal_basis: list[str]


@registry.contract
class IdentityVerificationFailed(EventPayload):
    """The identity is invalid, false or borrowed: the account gets no service (A8.1)."""

    event_type: ClassVar[str] = "verification.IdentityVerificationFailed"
    account_id: str
    reasons: list[str]
    detail: str
    legal_basis: list[str]


@registry.contract
class ProfileCheckPassed(EventPayload):
    """The profile (at registration, a change, or a re-inspection) is consistent (A8.2)."""

    event_type: ClassVar[str] = "verification.ProfileCheckPassed"
    account_id: str
    change_id: str | None = None
    source: CheckSource
    legal_basis: list[str]


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
