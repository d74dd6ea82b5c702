"""Events published by the registration service (topic ``registration.events``).

Stream: ``account-<account id>`` for an account's lifecycle; the subject is the account id.
"""

from __future__ import annotations

from typing import ClassVar

from ..registry import EventPayload, EventRegistry
from ._common import EntityType, Part, SealedIdentity

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
