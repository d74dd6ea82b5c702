"""Request bodies and their translation into what handlers take: the transferee checked
and sealed exactly as a registrant (``services.registration.schemas.application``)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from libs import identity as ids
from libs.domain import Line, Name, Text
from libs.events.contracts._common import SealedIdentity
from libs.events.contracts.registration import Organization
from libs.runtime.pii import Sealer, mask_id_number, mask_name, mask_phone, seal_identity
from libs.runtime.problems import ProblemError

from .domain import Application
from .handlers import SignalIn

EntityType = Literal["natural_person", "legal_person", "unincorporated_organization"]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IdentityIn(Body):
    id_number: Line = Field(max_length=40, description="resident id, or USCC for organizations")
    name: Name = Field(min_length=1, max_length=100)
    phone: Line = Field(max_length=30)
    representative_name: Name | None = Field(None, max_length=100)
    representative_id_number: Line | None = Field(None, max_length=40)


class OrganizationIn(Body):
    business_name: Name = Field(min_length=1, max_length=200)
    registered_address: Text = Field(min_length=1, max_length=300)
    primary_business: Text = Field(min_length=1, max_length=200)
    business_scope: Text = Field(min_length=1, max_length=1000)


class TransferIn(Body):
    account_id: Line = Field(min_length=1, max_length=100)
    kind: Literal["transfer", "co_operator", "third_party"] = "transfer"
    transferee: IdentityIn
    entity_type: EntityType = "natural_person"
    organization: OrganizationIn | None = None
    contact: Line = Field(min_length=3, max_length=100)
    reason: Text = Field("", max_length=1000)


class ConfirmationIn(Body):
    party: Literal["transferor", "transferee"]


class OptOutIn(Body):
    follower_id: Line = Field(min_length=1, max_length=100)


class NoteIn(Body):
    reason: Text = Field("", max_length=1000)


class SignalBody(Body):
    account_id: Line = Field(min_length=1, max_length=100)
    signal: Literal["login_identity", "contact_changed"]
    identity: IdentityIn | None = Field(None, description="the verified person now acting")
    id_number: Line | None = Field(None, max_length=40)
    contact_phone: Line | None = Field(None, max_length=30)


class SweepIn(Body):
    now: datetime | None = None


def aware(t: datetime | None) -> datetime | None:
    return t if t is None or t.tzinfo else t.replace(tzinfo=UTC)


def _problem(exc: ids.IdentityNumberError, field: str) -> ProblemError:
    return ProblemError(exc.detail, status=422, code=exc.code, title="Invalid identity data",
                        field=field)


def _number(entity_type: str, number: str, field: str) -> str:
    try:
        return (ids.resident_id(number) if entity_type == "natural_person"
                else ids.social_credit_code(number))
    except ids.IdentityNumberError as exc:
        raise _problem(exc, field) from None


def sealed_identity(i: IdentityIn, entity_type: str, sealer: Sealer,
                    field: str = "transferee") -> SealedIdentity:
    """Checked (libs.identity) and sealed with blind indexes from the compact upper-case
    number and the E.164 phone, as registration seals a registrant."""
    org = entity_type != "natural_person"
    number = _number(entity_type, i.id_number, f"{field}.id_number")
    try:
        phone = ids.mobile_number(i.phone)
    except ids.IdentityNumberError as exc:
        raise _problem(exc, f"{field}.phone") from None
    rep_id = None
    if i.representative_id_number:
        try:
            rep_id = ids.resident_id(i.representative_id_number)
        except ids.IdentityNumberError as exc:
            raise _problem(exc, f"{field}.representative_id_number") from None
    return seal_identity(
        sealer, organization=org, number=number, name=i.name, phone=phone,
        representative_name=i.representative_name, representative_id=rep_id)


def _mask_contact(contact: str) -> str:
    return mask_phone(contact) if re.fullmatch(r"[+\d\s-]{7,}", contact) else mask_name(contact)


def application(body: TransferIn, sealer: Sealer) -> Application:
    if body.entity_type != "natural_person" and body.organization is None:
        raise ProblemError("an organization transferee needs its registration details",
                           status=422, code="organization-required", title="Invalid body",
                           field="organization")
    transferee = sealed_identity(body.transferee, body.entity_type, sealer)
    return Application(
        account_id=body.account_id, kind=body.kind, transferee=transferee,
        entity_type=body.entity_type,
        organization=(Organization(**body.organization.model_dump())
                      if body.organization else None),
        contact_sealed=sealer.seal(body.contact, subject=transferee.id_number_blind),
        contact_masked=_mask_contact(body.contact),
        reason=body.reason)


def signal(body: SignalBody, sealer: Sealer) -> SignalIn:
    """The identity now acting blind-indexed like a registrant's (resident id or USCC), and
    the changed contact phone like a registrant's phone (E.164), so that both match the
    blind indexes in registration's and transfer's events."""
    raw = body.identity.id_number if body.identity else body.id_number
    if not raw and not body.contact_phone:
        raise ProblemError("a signal names the identity now acting (identity or id_number) "
                           "or the changed contact (contact_phone)", status=422,
                           code="signal-identity-required", title="Invalid body",
                           field="identity")
    id_blind = masked = None
    if raw:
        compact = raw.replace(" ", "").upper()
        try:
            number = ids.social_credit_code(compact) if len(compact) == 18 and not re.fullmatch(
                r"\d{17}[\dX]", compact) else ids.resident_id(compact)
        except ids.IdentityNumberError as exc:
            raise _problem(exc, "identity.id_number") from None
        id_blind, masked = sealer.blind("id_number", number), mask_id_number(number)
    phone_blind = contact_masked = None
    if body.contact_phone:
        try:
            e164 = ids.mobile_number(body.contact_phone)
        except ids.IdentityNumberError as exc:
            raise _problem(exc, "contact_phone") from None
        phone_blind, contact_masked = sealer.blind("phone", e164), mask_phone(e164)
    return SignalIn(account_id=body.account_id, signal=body.signal, id_blind=id_blind,
                    masked=masked, phone_blind=phone_blind, contact_masked=contact_masked)
