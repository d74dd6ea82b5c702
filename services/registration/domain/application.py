"""A registration: the application, the rules' verdict on it, and the account's first events."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from libs.events import EventPayload
from libs.events.contracts import registration as ev
from libs.events.contracts._common import SealedIdentity

# What every registration applies, whatever the rules decide (A2, A6, A7.1, A10.1).
REGISTRATION_BASIS = ("A2", "A6", "A7.1", "A10.1")


@dataclass(frozen=True)
class Application:
    """A registration to judge: numbers checked, personal data sealed and blind-indexed,
    the contract's parts built (schemas.py)."""

    entity_type: str
    category: str
    identity: SealedIdentity
    profile: ev.Profile
    province: str
    operations_province: str
    contact_sealed: str
    contact_masked: str
    agreement_version: str
    contact_public: bool = False
    organization: ev.Organization | None = None
    has_representative: bool = False
    device_blind: str | None = None
    network_blind: str | None = None


@dataclass(frozen=True)
class Verdict:
    """What the registration rules decided about an application (``rules.decide_registration``).

    A refusal names the ``kind`` of domain error it is (``conflict``, ``rate_limited``),
    which the API edge answers with its status, as it does for raised refusals.
    """

    outcome: str  # "accept" | "hold" | "refuse"
    code: str = ""
    kind: str = ""
    reasons: tuple[str, ...] = ()
    legal_basis: tuple[str, ...] = ()
    extra_verification: tuple[str, ...] = ()
    identity_accounts: int = 0
    threshold: int = 0
    findings: tuple[dict, ...] = ()


@dataclass(frozen=True)
class ProfileChange:
    """What an operator asks to change; ``avatar`` holds the avatar's fields of a Profile."""

    name: str | None = None
    description: str | None = None
    avatar: dict[str, Any] | None = None


def first_events(account_id: str, app: Application, verdict: Verdict
                 ) -> list[EventPayload]:
    """The account's first events: refused, held for review, or submitted for
    verification, with extra verification from the identity's threshold on (A10.1)."""
    if verdict.outcome == "refuse":  # only blind indexes: the applicant is not stored
        return [ev.AccountRegistrationRefused(
            account_id=account_id, entity_type=app.entity_type, code=verdict.code,
            reasons=list(verdict.reasons), id_number_blind=app.identity.id_number_blind,
            phone_blind=app.identity.phone_blind, device_blind=app.device_blind,
            network_blind=app.network_blind, legal_basis=list(verdict.legal_basis))]
    fields = {"account_id": account_id, "entity_type": app.entity_type,
              "identity": app.identity, "profile": app.profile, "category": app.category,
              "province": app.province, "operations_province": app.operations_province,
              "contact_sealed": app.contact_sealed, "contact_masked": app.contact_masked,
              "contact_public": app.contact_public,
              "organization": app.organization, "agreement_version": app.agreement_version,
              "legal_basis": list(REGISTRATION_BASIS)}
    if verdict.extra_verification:
        fields |= {"extra_verification_required": True,
                   "extra_verification_reasons": list(verdict.extra_verification)}
    if verdict.outcome == "hold":
        first: EventPayload = ev.AccountRegistrationHeld(**fields | {
            "reasons": list(verdict.reasons), "findings": list(verdict.findings),
            "legal_basis": sorted({*REGISTRATION_BASIS, *verdict.legal_basis})})
    else:
        first = ev.AccountRegistrationSubmitted(**fields)
    if not verdict.extra_verification:
        return [first]
    return [first, ev.ExtraVerificationRequired(
        account_id=account_id, reasons=list(verdict.extra_verification),
        accounts_of_identity=verdict.identity_accounts, threshold=verdict.threshold,
        legal_basis=["A10.1"])]
